//go:build linux

package e2e

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/test/netlab"
)

// queueLine returns a kernel queue's counters from
// /proc/net/netfilter/nfnetlink_queue: waiting, queue_dropped, user_dropped
// (ok false when no reader is bound to it).
func queueLine(lab *netlab.Lab, num int) (waiting, qdrop, udrop uint64, ok bool) {
	out, _ := lab.Exec(netlab.GW, "cat", "/proc/net/netfilter/nfnetlink_queue")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 7 || f[0] != strconv.Itoa(num) {
			continue
		}
		w, _ := strconv.ParseUint(f[2], 10, 64)
		q, _ := strconv.ParseUint(f[5], 10, 64)
		u, _ := strconv.ParseUint(f[6], 10, 64)
		return w, q, u, true
	}
	return 0, 0, 0, false
}

// sigstop stops a process and waits until every thread is stopped.
func sigstop(t *testing.T, pid int) {
	t.Helper()
	unix.Kill(pid, unix.SIGSTOP)
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		stopped := 0
		for _, tk := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, tk.Name()))
			if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && b[i+2] == 'T' {
				stopped++
			}
		}
		if len(tasks) > 0 && stopped == len(tasks) {
			return
		}
	}
	t.Errorf("process %d did not stop", pid)
}

// newFlows sends n UDP datagrams from the client to maint:80xx-range ports,
// each from a new socket: n new forwarded flows (bounded in count and time).
func newFlows(t *testing.T, lab *netlab.Lab, n int) int {
	sent := 0
	lab.Do(netlab.Client, func() error {
		end := time.Now().Add(10 * time.Second)
		pc, err := net.ListenPacket("udp4", ":0")
		if err != nil {
			return err
		}
		defer pc.Close()
		for i := 0; i < n && time.Now().Before(end); i++ {
			addr := &net.UDPAddr{IP: net.ParseIP(netlab.MaintIP), Port: 20000 + i}
			if _, err := pc.WriteTo([]byte("x"), addr); err == nil {
				sent++
			}
		}
		return nil
	})
	return sent
}

// TestFailureMatrix walks one daemon per failure mode through every cell of
// docs/operations.md's failure-mode table: never started (hooks, no
// reader), restarted, killed with SIGKILL mid-traffic, hung with SIGSTOP,
// queue overloaded. In every cell: failsafe SSH to the gateway connects,
// an established SSH flow keeps flowing, traffic between interfaces
// without endpoints is untouched, and new policed flows get the documented
// outcome. Policy: forwarded TCP/22 to the maintenance network allowed,
// anything else to it denied.
func TestFailureMatrix(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"closed", "open"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			open := mode == "open"
			lab := netlab.NewGateway(t)
			for _, p := range []string{"22", "80"} {
				netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
			}
			netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":22"))
			netlab.EchoServer(lab.Listen(netlab.LanB, "tcp", ":80"))
			c := checker{t}
			d := startDaemon(t, lab, fmt.Sprintf(maintTwoPorts, "22"), fmt.Sprintf("failureMode = %q\ndenyRegionSize = 0", mode)) // the queue's failure modes alone (regions outlive a failure: TestRegionsOutliveTheDaemon)
			fwdQueue := 100 + 4                                                                                                   // queueBase + forward stage (one queue per stage)
			cell := func(name string) func(string, bool, bool) {
				return func(what string, got, want bool) {
					t.Helper()
					c.is(fmt.Sprintf("%-7s %-11s %s", mode, name, what), got, want)
				}
			}
			always := func(is func(string, bool, bool), ssh net.Conn) {
				t.Helper()
				is("failsafe SSH maint->gw:22", lab.TCPWorks(netlab.Maint, netlab.GWMaint+":22", 2*time.Second), true)
				is("lana->lanb:80 (no endpoints)", lab.TCPWorks(netlab.LanA, netlab.LanBIP+":80", 2*time.Second), true)
				if ssh != nil {
					is("established SSH flow keeps flowing", netlab.Roundtrip(ssh, "e", 2*time.Second), true)
				}
			}

			// Never started: the hooks are installed, nobody reads the queues.
			d.Kill()
			is := cell("absent")
			is("new SSH client->maint:22", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", shortWait), open)
			is("new TCP/80 client->maint:80 (policy denies)", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), open)
			always(is, nil)
			out, _ := lab.Exec(netlab.GW, "iptables-save", "-t", "filter")
			is("nfgate's rules stay in place", strings.Contains(out, "NFGATE-FWD"), true)

			// Restarted from absent: enforcing again.
			d.start()
			is = cell("started")
			is("new SSH client->maint:22", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", 2*time.Second), true)
			is("new TCP/80 (policy denies)", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)
			ssh := dialEstablished(t, lab, netlab.MaintIP+":22")
			always(is, ssh)

			// Killed with SIGKILL while an established flow carries traffic.
			var fails, trips atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					trips.Add(1)
					if !netlab.Roundtrip(ssh, "k", 2*time.Second) {
						fails.Add(1)
					}
				}
			}()
			time.Sleep(300 * time.Millisecond)
			d.Kill()
			time.Sleep(700 * time.Millisecond)
			close(stop)
			wg.Wait()
			is = cell("killed")
			is(fmt.Sprintf("established flow mid-traffic: %d/%d round trips failed", fails.Load(), trips.Load()), fails.Load() == 0 && trips.Load() > 10, true)
			is("new SSH client->maint:22", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", shortWait), open)
			is("new TCP/80 (policy denies)", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), open)
			always(is, ssh)

			// A second copy of a jump rule (two daemons racing at start, a
			// hand-made copy): the restart must converge to one.
			lab.MustNS(netlab.GW, "iptables", "-I", "FORWARD", "1", "-j", "NFGATE-FORWARD")

			// Restarted: the flow decided before keeps flowing, enforcement resumes.
			d.start()
			is = cell("restarted")
			is("new SSH client->maint:22", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", 2*time.Second), true)
			is("new TCP/80 (policy denies)", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)
			always(is, ssh)
			out, _ = lab.Exec(netlab.GW, "iptables-save", "-t", "filter")
			is("one jump rule after two restarts and a duplicate", strings.Count(out, "-A FORWARD -j NFGATE-FORWARD") == 1, true)

			// Hung (SIGSTOP): packets wait in the queue (nobody answers, no
			// kernel timeout) until it is full.
			pid := d.cmd.Process.Pid
			sigstop(t, pid)
			is = cell("hung")
			is("new SSH client->maint:22 (first packet waits in the queue)", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", shortWait), false)
			waiting, _, _, _ := queueLine(lab, fwdQueue)
			is(fmt.Sprintf("packets wait in the forward queue (%d)", waiting), waiting >= 1, true)
			always(is, ssh)
			unix.Kill(pid, unix.SIGCONT)
			time.Sleep(300 * time.Millisecond)
			is("continued: new SSH client->maint:22", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", 2*time.Second), true)
			is("continued: new TCP/80 (policy denies)", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)

			// Overloaded: the queue holds 4096 packets; more new flows than
			// that while nobody answers fill it.
			sigstop(t, pid)
			_, qd0, _, _ := queueLine(lab, fwdQueue)
			sent := newFlows(t, lab, 4500)
			waiting, qd1, ud1, _ := queueLine(lab, fwdQueue)
			is = cell("overloaded")
			t.Logf("%s overloaded: sent %d new UDP flows; forward queue waiting=%d queue_dropped +%d user_dropped %d", mode, sent, waiting, qd1-qd0, ud1)
			is(fmt.Sprintf("forward queue full (%d waiting)", waiting), waiting >= 4000, true)
			is("new SSH client->maint:22 (queue full)", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", shortWait), open)
			is("new TCP/80 (policy denies; queue full)", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), open)
			_, qd2, _, _ := queueLine(lab, fwdQueue)
			if !open {
				is("closed: the kernel drops what does not fit (queue_dropped grows)", qd2 > qd0, true)
			}
			always(is, ssh)
			unix.Kill(pid, unix.SIGCONT)
			var drained bool
			for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				if w, _, _, _ := queueLine(lab, fwdQueue); w == 0 {
					drained = true
					break
				}
			}
			is("continued: the queue drains", drained, true)
			is("continued: new SSH client->maint:22", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", 2*time.Second), true)
			is("continued: new TCP/80 (policy denies)", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)
			s := d.Stats()
			t.Logf("%s: after the matrix: queued %v dropped %v deadline %d deny-cache hits %d", mode, s.Queued, s.Dropped, s.Deadline, s.DenyHits)
			always(is, ssh)

			// Stopped for good: `nfgate cleanup` removes every rule, even a
			// duplicated jump (a chain still referenced cannot be deleted).
			d.Kill()
			lab.MustNS(netlab.GW, "iptables", "-I", "INPUT", "1", "-j", "NFGATE-INPUT")
			lab.MustNS(netlab.GW, "iptables", "-I", "INPUT", "1", "-j", "NFGATE-INPUT")
			_, err := lab.Exec(netlab.GW, nfgateBin, "cleanup")
			out, _ = lab.Exec(netlab.GW, "iptables-save")
			out6, _ := lab.Exec(netlab.GW, "ip6tables-save")
			is = cell("cleaned")
			is("`nfgate cleanup` removes every NFGATE rule (3 copies of a jump)", err == nil && !strings.Contains(out+out6, "NFGATE"), true)
			is("new TCP/80 passes again (no nfgate)", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", 2*time.Second), true)
		})
	}
}
