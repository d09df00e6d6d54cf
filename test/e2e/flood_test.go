//go:build linux

package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nfgate/nfgate/test/netlab"
)

// TestDenyFlood measures a flood of denied packets against the queue: a
// dropped first packet frees its conntrack entry, so every packet of a
// denied flow comes back to userspace. Same-flow floods are answered from
// the deny cache; new-flow floods are evaluated. Meanwhile a legitimate
// SSH connection is attempted every 200ms; the test reports how many got
// through and how slowly, and requires most of them to succeed.
func TestDenyFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("flood measurement skipped in -short mode")
	}
	lab := netlab.NewGateway(t)
	netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":22"))
	d := startDaemon(t, lab, tutorialConfig, "")
	c := checker{t}

	for _, mode := range []string{"same flow", "new flow per packet"} {
		before := d.Stats()
		const dur = 2 * time.Second
		const maxPkts = 400000
		sent := 0
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := lab.Dial(netlab.Client, "udp", netlab.MaintIP+":9999", time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			pc := conn
			payload := []byte("flood")
			end := time.Now().Add(dur)
			for sent < maxPkts && time.Now().Before(end) {
				if mode == "same flow" {
					pc.Write(payload)
				} else {
					// A new destination port per packet: a new flow each time.
					raw, err := lab.Dial(netlab.Client, "udp", fmt.Sprintf("%s:%d", netlab.MaintIP, 20000+sent%40000), time.Second)
					if err != nil {
						continue
					}
					raw.Write(payload)
					raw.Close()
				}
				sent++
			}
		}()
		ok, attempts := 0, 0
		var worst time.Duration
		for i := 0; i < int(dur/(200*time.Millisecond)); i++ {
			t0 := time.Now()
			attempts++
			if lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", 3*time.Second) {
				ok++
				if e := time.Since(t0); e > worst {
					worst = e
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		wg.Wait()
		after := d.Stats()
		q := after.Queued["forward"] - before.Queued["forward"]
		hits := after.DenyHits - before.DenyHits
		t.Logf("flood (%s): sent %d UDP packets in %v (%.0f/s); queued at forward %d (%.0f/s); deny-cache hits %d; SSH during flood %d/%d ok, slowest %v",
			mode, sent, dur, float64(sent)/dur.Seconds(), q, float64(q)/dur.Seconds(), hits, ok, attempts, worst.Round(time.Millisecond))
		if out, err := lab.Exec(netlab.GW, "cat", "/proc/net/netfilter/nfnetlink_queue"); err == nil {
			t.Logf("kernel queues (queue peer total copy range queue_dropped user_dropped id 1):\n%s", out)
		}
		c.is(fmt.Sprintf("%s flood: most SSH connections during the flood succeed", mode), ok*10 >= attempts*8, true)
		if mode == "same flow" {
			// Since issue 14 a kernel deny region takes such a flood over
			// (and the deny cache keeps only what the kernel cannot hold).
			c.is("same-flow flood answered from the deny cache or a kernel region", hits > 0 || d.regions().Installed > 0, true)
		}
	}
}
