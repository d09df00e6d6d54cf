//go:build linux

package nfq_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/engine/nfq"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/test/netlab"
)

// queueRow returns the kernel's table line for queue num in lab namespace ns.
func queueRow(t *testing.T, lab *netlab.Lab, ns string, num uint16) []string {
	t.Helper()
	out, err := lab.Exec(ns, "cat", "/proc/net/netfilter/nfnetlink_queue")
	if err != nil {
		t.Fatalf("queue table: %v: %s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 7 && f[0] == strconv.Itoa(int(num)) {
			return f
		}
	}
	return nil
}

// Open returns only once the kernel lists the queue as held by this socket
// (the daemon installs its hooks after Open, so a hook never queues to an
// unbound queue); a queue another socket holds is an error, not a reader
// that never receives anything; Close unbinds.
func TestOpenBindsBeforeReturning(t *testing.T) {
	lab := netlab.New(t)
	lab.AddNS("a")
	fd := lab.NetNSFd("a")
	q, err := nfq.Open(300, nfq.Options{NetNS: int(fd.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	row := queueRow(t, lab, "a", 300)
	if row == nil || row[1] != strconv.FormatUint(uint64(q.PortID), 10) || row[3] != "2" || row[4] != "256" {
		t.Fatalf("after Open the kernel lists %q, want queue 300 held by port %d, copy mode 2, range 256", row, q.PortID)
	}
	if !q.GSOSet {
		t.Error("GSO flag not accepted by this kernel")
	}
	if _, err := nfq.Open(300, nfq.Options{NetNS: int(fd.Fd())}); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("second Open of a held queue: %v, want an error naming another process", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if row := queueRow(t, lab, "a", 300); row != nil {
		t.Errorf("after Close the kernel still lists %q", row)
	}
	q2, err := nfq.Open(300, nfq.Options{NetNS: int(fd.Fd()), FailOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if !q2.FailOpenSet {
		t.Error("fail-open flag not accepted by this kernel")
	}
}

// The engine behind the raw reader, on a real kernel queue: a sender
// queues thousands of UDP packets whose decisions vary in runs (accept,
// none, drop, by destination port), so bursts are answered with batch
// verdicts. Every packet must get its own decision: the accepted ones
// arrive with the accept mark's DSCP, the NONE ones with the pass mark's,
// the dropped ones never arrive, nothing stays queued and the kernel
// refused no verdict.
func TestBatchVerdictsAreExactInTheKernel(t *testing.T) {
	lab := netlab.New(t)
	lab.AddNS("a")
	lab.AddNS("b")
	lab.Link("a", "eth0", []string{"198.18.5.1/24"}, "b", "eth0", []string{"198.18.5.2/24"})
	rt := config.DefaultRuntime()
	rt.Queues, rt.QueueBase = 1, 300
	m, err := engine.NewMarks(rt.MarkMask)
	if err != nil {
		t.Fatal(err)
	}
	const first, n = 40000, 6000
	// class: 0 accept, 1 none, 2 drop, in runs of varying length.
	class := func(port int) int { return (port - first) / (1 + (port-first)%7) % 3 }
	ifindex := lab.IfIndex("a", "eth0")
	pol := &enginetest.Policy{
		BindFn: func(ifc policy.Interface) policy.Binding {
			b := policy.NoBinding()
			if ifc.Name == "eth0" {
				b.Filter, b.ForwardIn = 0, 0
			}
			return b
		},
		LocalFn: func(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision {
			switch class(int(pkt.DstPort)) {
			case 0:
				return enginetest.Decide(policy.Accept, 0, 0)
			case 2:
				return enginetest.Decide(policy.Drop, 0, 1)
			}
			return enginetest.NoDecision
		},
	}
	e, err := engine.New(engine.Options{Runtime: rt, Hooks: &enginetest.Hooks{}, Log: slog.New(slog.DiscardHandler),
		Links: enginetest.NewLinks(engine.Iface{Index: ifindex, Name: "eth0"})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Swap(&engine.Loaded{Policy: pol, Hash: "t"}); err != nil {
		t.Fatal(err)
	}
	out := rt.QueueBase + uint16(policy.StageOutput)
	fd := lab.NetNSFd("a")
	q, err := nfq.Open(out, nfq.Options{NetNS: int(fd.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	rules := fmt.Sprintf(`*mangle
-A OUTPUT -o eth0 -p udp --dport %d:%d -m mark --mark 0/%#x -j NFQUEUE --queue-num %d
-A POSTROUTING -m mark --mark %#x/%#x -j DSCP --set-dscp 10
-A POSTROUTING -m mark --mark %#x/%#x -j DSCP --set-dscp 20
COMMIT
`, first, first+n-1, m.Mask, out, m.OutDone, m.OutDone, m.Pass, m.Pass)
	rf := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rf, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	lab.MustNS("a", "iptables-restore", rf)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- e.Run(ctx, []engine.Queue{q}) }()

	// The receiver: a raw socket sees the IP header (the DSCP) of every
	// UDP packet reaching b.
	type got struct {
		dscp  uint8
		count int
	}
	var mu sync.Mutex
	seen := map[int]*got{}
	var rfd int
	if err := lab.Do("b", func() (err error) {
		rfd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
		if err == nil {
			unix.SetsockoptInt(rfd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
			tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
			unix.SetsockoptTimeval(rfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rfd)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		buf := make([]byte, 2048)
		idle := 0
		for idle < 10 && ctx.Err() == nil {
			k, _, err := unix.Recvfrom(rfd, buf, 0)
			if err != nil {
				idle++
				continue
			}
			idle = 0
			if k < 28 || buf[9] != unix.IPPROTO_UDP {
				continue
			}
			ihl := int(buf[0]&0x0f) * 4
			port := int(binary.BigEndian.Uint16(buf[ihl+2:]))
			if port < first || port >= first+n {
				continue
			}
			mu.Lock()
			g := seen[port]
			if g == nil {
				g = &got{dscp: buf[1] >> 2}
				seen[port] = g
			}
			g.count++
			mu.Unlock()
		}
	}()

	// The sender: bursts as fast as one socket goes.
	var conn net.PacketConn
	if err := lab.Do("a", func() (err error) { conn, err = net.ListenPacket("udp4", "198.18.5.1:0"); return }); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for p := first; p < first+n; p++ {
		if _, err := conn.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP("198.18.5.2"), Port: p}); err != nil {
			t.Fatalf("send to port %d: %v", p, err)
		}
	}
	<-recvDone

	wantDSCP := [2]uint8{10, 20}
	bad := 0
	for p := first; p < first+n; p++ {
		g, c := seen[p], class(p)
		switch {
		case c == 2 && g != nil:
			bad++
			if bad <= 10 {
				t.Errorf("port %d: denied packet arrived (dscp %d)", p, g.dscp)
			}
		case c < 2 && g == nil:
			bad++
			if bad <= 10 {
				t.Errorf("port %d: packet decided %v never arrived", p, []string{"accept", "none"}[c])
			}
		case c < 2 && (g.dscp != wantDSCP[c] || g.count != 1):
			bad++
			if bad <= 10 {
				t.Errorf("port %d: arrived %d times with dscp %d, want once with %d (its own verdict's mark)", p, g.count, g.dscp, wantDSCP[c])
			}
		}
	}
	st := e.Snapshot()
	row := queueRow(t, lab, "a", out)
	t.Logf("queued %d, accepted %d, none %d, dropped %d, verdict errors %d, undelivered %d; kernel row %q",
		st.Queued["output"], st.Accepted["output"], st.None["output"], st.Dropped["output"], st.VerdictErr, st.Undelivered, row)
	if st.Queued["output"] != n || st.VerdictErr != 0 || st.Undelivered != 0 {
		t.Errorf("engine counted %d queued (want %d), %d verdict errors, %d undelivered", st.Queued["output"], n, st.VerdictErr, st.Undelivered)
	}
	qs := q.Stats()
	t.Logf("reader: %+v (%.1f packets per read)", qs, float64(qs.Packets)/float64(max(qs.Reads, 1)))
	if qs.Batches == 0 {
		t.Error("no batch verdict was sent: the test did not exercise batching")
	}
	if row == nil || row[2] != "0" {
		t.Errorf("kernel queue row %q: packets left waiting", row)
	}

	// A verdict the kernel refuses (the packet is gone: a hook that was
	// removed flushes its queued packets) is counted, and the reader goes
	// on. (Before nfgate had its own reader, the refusal ended the reader
	// and the daemon, its hooks left in place: closed mode dropped every
	// new flow with no queue bound.)
	if err := q.SetVerdicts([]engine.Verdict{{ID: 1 << 30, Action: engine.NfAccept}}); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); e.Snapshot().VerdictErr == 0 && time.Now().Before(end); {
		conn.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP("198.18.5.2"), Port: first})
		time.Sleep(10 * time.Millisecond)
	}
	before := e.Snapshot().Queued["output"]
	conn.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP("198.18.5.2"), Port: first})
	for end := time.Now().Add(5 * time.Second); e.Snapshot().Queued["output"] == before && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	if st := e.Snapshot(); st.VerdictErr != 1 || st.Queued["output"] == before {
		t.Errorf("after a refused verdict: %d verdict errors (want 1), queued %d -> %d (the reader must go on)", st.VerdictErr, before, st.Queued["output"])
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
}
