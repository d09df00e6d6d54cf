//go:build linux

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"

	"github.com/nfgate/nfgate/test/netlab"
)

// ctStats reads the namespace's conntrack count and limit (procfs) and sums
// the per-CPU drop counters (ctnetlink).
func ctStats(t *testing.T, lab *netlab.Lab) (entries, max int, drop, earlyDrop uint32) {
	n, _ := lab.Exec(netlab.GW, "cat", "/proc/sys/net/netfilter/nf_conntrack_count")
	m, _ := lab.Exec(netlab.GW, "cat", "/proc/sys/net/netfilter/nf_conntrack_max")
	entries, _ = strconv.Atoi(strings.TrimSpace(n))
	max, _ = strconv.Atoi(strings.TrimSpace(m))
	lab.Do(netlab.GW, func() error {
		c, err := ct.Dial(&netlink.Config{})
		if err != nil {
			return err
		}
		defer c.Close()
		if ss, err := c.Stats(); err == nil {
			for _, s := range ss {
				drop += s.Drop
				earlyDrop += s.EarlyDrop
			}
		}
		return nil
	})
	return
}

// TestConntrackTableFull fills the gateway namespace's conntrack table and
// pins down what happens to nfgate's traffic. nf_conntrack_max is read-only
// in a child network namespace on this kernel (it is the machine-wide
// limit), but the count it is compared with is per namespace: the test
// fills the gateway's own table up to it with assured entries created over
// ctnetlink (assured entries are never evicted for new ones), so nothing
// outside the lab is affected beyond the memory (~256 bytes an entry) for
// the test's duration.
func TestConntrackTableFull(t *testing.T) {
	if testing.Short() {
		t.Skip("conntrack table fill skipped in -short mode")
	}
	t.Parallel()
	lab := netlab.NewGateway(t)
	for _, p := range []string{"22", "80"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":22"))
	d := startDaemon(t, lab, fmt.Sprintf(maintTwoPorts, "22"), "")
	c := checker{t}
	ssh := dialEstablished(t, lab, netlab.MaintIP+":22")

	maxB, _ := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_max")
	t.Logf("nf_conntrack_max (machine-wide) = %s", strings.TrimSpace(string(maxB)))
	// Fill: UDP 198.19.a.b:port -> 198.19.255.254:9, assured, 5 minutes.
	t0 := time.Now()
	var created int
	var fillErr error
	lab.Do(netlab.GW, func() error {
		cn, err := ct.Dial(&netlink.Config{})
		if err != nil {
			fillErr = err
			return err
		}
		defer cn.Close()
		dst := netip.MustParseAddr("198.19.255.254")
		deadline := time.Now().Add(120 * time.Second)
		for i := 0; i < 400000 && time.Now().Before(deadline); i++ {
			src := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8 & 0x7f), byte(i)})
			// The kernel refuses status bits at creation; an update may
			// set SEEN_REPLY and ASSURED (with CONFIRMED, which it has).
			f := ct.NewFlow(17, 0, src, dst, uint16(1024+i>>15), 9, 300, 0)
			err := cn.Create(f)
			if err == nil {
				f.Status = ct.StatusAssured | ct.StatusSeenReply | ct.StatusConfirmed
				err = cn.Update(f)
			}
			if err != nil {
				fillErr = err
				break
			}
			created++
		}
		return nil
	})
	n, max, drop0, early0 := ctStats(t, lab)
	t.Logf("created %d assured entries in %v (stopped by: %v); table %d/%d", created, time.Since(t0).Round(time.Millisecond), fillErr, n, max)
	if n < max {
		t.Fatalf("table not full: %d of %d", n, max)
	}
	q0 := d.Stats().Queued["forward"]

	c.is("full: established SSH flow keeps flowing", netlab.Roundtrip(ssh, "f", 2*time.Second), true)
	c.is("full: new SSH client->maint:22 (policy allows)", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", shortWait), false)
	c.is("full: failsafe SSH maint->gw:22", lab.TCPWorks(netlab.Maint, netlab.GWMaint+":22", shortWait), false)
	c.is("full: new lana->lanb:80 (no endpoints)", lab.TCPWorks(netlab.LanA, netlab.LanBIP+":80", shortWait), false)
	_, _, drop1, early1 := ctStats(t, lab)
	s := d.Stats()
	t.Logf("full: conntrack drop +%d, early_drop +%d; nfgate forward queue +%d", drop1-drop0, early1-early0, s.Queued["forward"]-q0)
	c.is("full: the kernel drops new flows in conntrack (drop counter grows)", drop1 > drop0, true)
	c.is("full: nothing reaches nfgate's queue", s.Queued["forward"] == q0, true)

	// A reload walks the whole table for re-check.
	rss0, _, _ := sampleProc(d.cmd.Process.Pid)
	t1 := time.Now()
	s = d.Reload()
	rss1, _, _ := sampleProc(d.cmd.Process.Pid)
	t.Logf("reload with a full table (%d entries): %v, rechecked %d flows; daemon RSS %d -> %d KiB", n, time.Since(t1).Round(time.Millisecond), s.Rechecked, rss0, rss1)
	c.is("reload with a full table: daemon RSS grows by < 32 MiB", rss1-rss0 < 32*1024, true)
	c.is("reload with a full table goes live and re-checks the SSH flow", s.Gen == 2 && s.Rechecked >= 1, true)
	c.is("after the reload: established SSH flow keeps flowing", netlab.Roundtrip(ssh, "g", 2*time.Second), true)

	// Room again: delete the filler entries.
	var delErr error
	lab.Do(netlab.GW, func() error {
		cn, err := ct.Dial(&netlink.Config{})
		if err != nil {
			delErr = err
			return err
		}
		defer cn.Close()
		delErr = cn.FlushFilter(ct.NewFilter().Mark(0).MarkMask(0xffffffff))
		return nil
	})
	n, _, _, _ = ctStats(t, lab)
	t.Logf("flushed unmarked entries: %v; table now %d", delErr, n)
	c.is("room again: new SSH client->maint:22, decided by nfgate", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", 2*time.Second) && d.Stats().Queued["forward"] > q0, true)
	c.is("room again: new TCP/80 denied", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)
}
