//go:build linux

package nfq

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/denycache"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// packetMsg builds an NFQNL_MSG_PACKET as the kernel sends it (capLen 0:
// not truncated).
func packetMsg(q uint16, id uint32, hook uint8, mark, in, out uint32, payload []byte, capLen uint32) []byte {
	b, off := appendHeader(nil, msgPacket, 0, 0, q)
	b = appendAttr(b, attrPacketHdr, append(be32(id), 0x08, 0x00, hook)...)
	if mark != 0 {
		b = appendAttr(b, attrMark, be32(mark)...)
	}
	if in != 0 {
		b = appendAttr(b, attrInDev, be32(in)...)
	}
	if out != 0 {
		b = appendAttr(b, attrOutDev, be32(out)...)
	}
	b = appendAttr(b, attrPayload, payload...)
	if capLen != 0 {
		b = appendAttr(b, attrCapLen, be32(capLen)...)
	}
	return appendDone(b, off)
}

// errorMsg builds an NLMSG_ERROR answer with errno e.
func errorMsg(e int32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 36)
	b = binary.LittleEndian.AppendUint16(b, nlmsgError)
	b = append(b, make([]byte, 10)...)
	b = binary.LittleEndian.AppendUint32(b, uint32(-e))
	return append(b, make([]byte, 16)...) // the offending message's header
}

// decodeVerdicts parses verdict messages as the kernel would.
func decodeVerdicts(tb testing.TB, b []byte) []engine.Verdict {
	var vs []engine.Verdict
	for len(b) > 0 {
		typ, body, rest, ok := next(b)
		if !ok {
			tb.Fatalf("malformed verdict message % x", b)
		}
		b = rest
		v := engine.Verdict{Batch: typ == msgVerdictBatch}
		if typ != msgVerdict && typ != msgVerdictBatch {
			tb.Fatalf("message type %#x is not a verdict", typ)
		}
		a := body[nfgenHdrLen:]
		for len(a) >= attrHdrLen {
			l := int(binary.LittleEndian.Uint16(a))
			d := a[attrHdrLen:l]
			switch binary.LittleEndian.Uint16(a[2:]) {
			case attrVerdictHdr:
				switch binary.BigEndian.Uint32(d) {
				case nfDrop:
					v.Action = engine.NfDrop
				case nfAccept:
					v.Action = engine.NfAccept
				case nfRepeat:
					v.Action = engine.NfRepeat
				default:
					tb.Fatalf("verdict %d", binary.BigEndian.Uint32(d))
				}
				v.ID = binary.BigEndian.Uint32(d[4:])
			case attrMark:
				v.Mark = binary.BigEndian.Uint32(d)
			}
			a = a[align4(l):]
		}
		vs = append(vs, v)
	}
	return vs
}

// fakeSock delivers bursts of datagrams and hands verdicts to a kernel model.
type fakeSock struct {
	tb   testing.TB
	bufs [][]byte
	in   chan [][]byte
	k    *enginetest.Kernel
	mu   sync.Mutex
	sent int // verdict sendto calls
}

func (f *fakeSock) recv(ns []int, cut []bool) (int, error) {
	select {
	case dg := <-f.in:
		for i, d := range dg {
			ns[i] = copy(f.bufs[i], d)
			cut[i] = len(d) > len(f.bufs[i])
		}
		return len(dg), nil
	case <-time.After(5 * time.Millisecond):
		return 0, unix.EAGAIN
	}
}

func (f *fakeSock) recvOne([]byte) (int, error) { return 0, unix.EAGAIN }
func (f *fakeSock) send(b []byte) error {
	f.mu.Lock()
	f.sent++
	f.mu.Unlock()
	f.k.Apply(decodeVerdicts(f.tb, b))
	return nil
}
func (f *fakeSock) close() error { return nil }

func fakeQueue(tb testing.TB, num uint16, k *enginetest.Kernel) (*Queue, *fakeSock) {
	q := newQueue(num, Options{}.withDefaults())
	f := &fakeSock{tb: tb, bufs: q.bufs, in: make(chan [][]byte, 16), k: k}
	q.s = f
	return q, f
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const (
	ifIn, ifOut = 2, 3
	fwdQueue    = 100 + uint16(policy.StageForward)
)

// testEngine is an engine with one forward queue (100 + 4) whose decision
// is decideFn of the destination port.
func testEngine(t *testing.T, mode config.FailureMode, decideFn func(port uint16) policy.Verdict) (*engine.Engine, *clock, *enginetest.Tracer) {
	t.Helper()
	rt := config.DefaultRuntime()
	rt.Queues, rt.QueueBase, rt.FailureMode = 1, 100, mode
	clk := &clock{t: time.Unix(1000, 0)}
	tr := &enginetest.Tracer{}
	pol := &enginetest.Policy{
		BindFn: func(ifc policy.Interface) policy.Binding {
			b := policy.NoBinding()
			if ifc.Name == "eth1" {
				b.Filter, b.ForwardIn = 0, 0
			}
			return b
		},
		ForwardFn: func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
			switch decideFn(pkt.DstPort) {
			case policy.Accept:
				return enginetest.Decide(policy.Accept, 0, 0)
			case policy.Drop:
				return enginetest.Decide(policy.Drop, 0, 1)
			}
			return enginetest.NoDecision
		},
	}
	e, err := engine.New(engine.Options{Runtime: rt, Hooks: &enginetest.Hooks{}, Now: clk.Now, Tracer: tr,
		Log:   slog.New(slog.DiscardHandler),
		Links: enginetest.NewLinks(engine.Iface{Index: ifIn, Name: "eth0"}, engine.Iface{Index: ifOut, Name: "eth1"})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Swap(&engine.Loaded{Policy: pol, Hash: "t"}); err != nil {
		t.Fatal(err)
	}
	return e, clk, tr
}

// want is the kernel verdict the engine's decision v maps to (forward).
func want(m engine.Marks, v policy.Verdict, mark uint32) engine.Verdict {
	switch v {
	case policy.Accept:
		return engine.Verdict{Action: engine.NfRepeat, Mark: mark | m.FwdDone() | m.FwdAccept()}
	case policy.Drop:
		return engine.Verdict{Action: engine.NfDrop}
	}
	return engine.Verdict{Action: engine.NfRepeat, Mark: mark | m.FwdDone()}
}

func payload(port uint16) []byte { return enginetest.TCP4("198.18.0.2", "198.19.0.2", 40000, port) }

// Random bursts (1 to 100 packets: some datagrams carry two messages, so a
// read can exceed MaxBurst), decisions in runs of random length, original
// marks that differ, ids the kernel skipped (socket full) and refused
// verdicts: every packet gets exactly one verdict, its own decision; the
// batches never answer a packet twice or one that is not waiting; gaps and
// refusals are counted.
func TestEveryPacketGetsItsOwnVerdict(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Decisions come in runs: the port's high bits pick the class.
	decide := func(port uint16) policy.Verdict {
		return []policy.Verdict{policy.Accept, policy.None, policy.Drop}[int(port>>4)%3]
	}
	e, _, _ := testEngine(t, config.FailClosed, decide)
	m := e.Marks()
	k := enginetest.NewKernel()
	q, f := fakeQueue(t, fwdQueue, k)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- e.Run(ctx, []engine.Queue{q}) }()

	type sent struct {
		port uint16
		mark uint32
	}
	expect := map[uint32]sent{}
	id, gaps, refusals := uint32(0), 0, 0
	port := uint16(1000)
	for burst := 0; burst < 300; burst++ {
		var dgs [][]byte
		for i, n := 0, 1+rng.IntN(64); i < n; i++ {
			var dg []byte
			for j, two := 0, rng.IntN(5) == 0; j < 1 || (two && j < 2); j++ {
				id++
				if rng.IntN(40) == 0 { // the kernel numbered one it could not deliver
					id++
					gaps++
				}
				port += uint16(1 + rng.IntN(6))
				mark := []uint32{0x1, 0x2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}[rng.IntN(16)]
				expect[id] = sent{port, mark}
				k.Queue(id)
				dg = append(dg, packetMsg(fwdQueue, id, engine.HookForward, mark, ifIn, ifOut, payload(port), 0)...)
			}
			if rng.IntN(50) == 0 {
				dg = append(dg, errorMsg(-int32(unix.ENOENT))...)
				refusals++
			}
			dgs = append(dgs, dg)
		}
		f.in <- dgs
	}
	end := time.Now().Add(10 * time.Second)
	for len(k.Waiting()) > 0 && time.Now().Before(end) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	if w := k.Waiting(); len(w) != 0 {
		t.Fatalf("%d packets never answered, first %d", len(w), w[0])
	}
	if errs := k.Errs(); len(errs) != 0 {
		t.Fatalf("verdicts for packets not waiting: %v", errs[:min(len(errs), 5)])
	}
	bad := 0
	for i, s := range expect {
		g, w := k.Got(i), want(m, decide(s.port), s.mark)
		if len(g) != 1 || g[0].Action != w.Action || (w.Action != engine.NfDrop && g[0].Mark != w.Mark) {
			if bad++; bad <= 10 {
				t.Errorf("packet %d (port %d, mark %#x): got %+v, want one %v mark %#x", i, s.port, s.mark, g, w.Action, w.Mark)
			}
		}
	}
	st, qs := e.Snapshot(), q.Stats()
	t.Logf("%d packets in %d reads, %d verdict messages (%d batches) in %d sends", qs.Packets, qs.Reads, qs.Verdicts, qs.Batches, qs.Sends)
	if qs.Batches == 0 || qs.Verdicts >= qs.Packets*3/4 {
		t.Errorf("batching did not happen: %+v", qs)
	}
	if st.Undelivered != uint64(gaps) || st.VerdictErr != uint64(refusals) {
		t.Errorf("counted %d undelivered and %d refused verdicts, want %d and %d", st.Undelivered, st.VerdictErr, gaps, refusals)
	}
}

// A burst of 64 whose third packet hangs: the watchdog answers at the
// deadline, not after the burst: packets 1 and 2 with their decisions,
// 3..64 with the failure-mode verdict; the worker, when it comes back,
// sends nothing for that burst (no batch covers a packet the watchdog
// answered), traces 3..64 with the verdict the kernel got, and the next
// burst is answered normally.
func TestWatchdogAnswersAStuckBurstAtOnce(t *testing.T) {
	for _, mode := range []config.FailureMode{config.FailClosed, config.FailOpen} {
		t.Run(mode.String(), func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			const hang = 3000
			decide := func(port uint16) policy.Verdict {
				if port == hang {
					close(entered)
					<-release
				}
				return policy.Accept
			}
			e, clk, tr := testEngine(t, mode, decide)
			m := e.Marks()
			k := enginetest.NewKernel()
			q, f := fakeQueue(t, fwdQueue, k)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			runErr := make(chan error, 1)
			go func() { runErr <- e.Run(ctx, []engine.Queue{q}) }()

			burst := func(first uint32, ports func(i int) uint16) {
				var dgs [][]byte
				for i := 0; i < 64; i++ {
					id := first + uint32(i)
					k.Queue(id)
					dgs = append(dgs, packetMsg(fwdQueue, id, engine.HookForward, 0, ifIn, ifOut, payload(ports(i)), 0))
				}
				f.in <- dgs
			}
			burst(1, func(i int) uint16 {
				if i == 2 {
					return hang
				}
				return uint16(2000 + i)
			})
			<-entered
			e.CheckDeadlines() // not late yet
			if g := k.Got(1); len(g) != 0 {
				t.Fatalf("answered before the deadline: %+v", g)
			}
			clk.Add(time.Second)
			e.CheckDeadlines()
			// Answered now, while packet 3 is still being decided.
			if w := k.Waiting(); len(w) != 0 {
				t.Fatalf("after the deadline %d packets still wait", len(w))
			}
			fa, fm := engine.NfDrop, uint32(0)
			if mode == config.FailOpen {
				fa, fm = engine.NfRepeat, m.Pass
			}
			acc := want(m, policy.Accept, 0)
			for id := uint32(1); id <= 64; id++ {
				g := k.Got(id)
				wa, wm := fa, fm
				if id <= 2 {
					wa, wm = acc.Action, acc.Mark
				}
				if len(g) != 1 || g[0].Action != wa || (wa != engine.NfDrop && g[0].Mark != wm) {
					t.Errorf("packet %d: %+v, want one %v mark %#x", id, g, wa, wm)
				}
			}
			close(release)
			burst(65, func(i int) uint16 { return uint16(4000 + i) })
			end := time.Now().Add(5 * time.Second)
			for len(k.Waiting()) > 0 && time.Now().Before(end) {
				time.Sleep(time.Millisecond)
			}
			cancel()
			if err := <-runErr; err != nil {
				t.Fatal(err)
			}
			if errs := k.Errs(); len(errs) != 0 {
				t.Errorf("verdicts for packets not waiting (the stuck burst answered twice?): %v", errs[:min(5, len(errs))])
			}
			for id := uint32(65); id <= 128; id++ {
				if g := k.Got(id); len(g) != 1 || g[0].Action != acc.Action || g[0].Mark != acc.Mark {
					t.Errorf("next burst, packet %d: %+v", id, g)
				}
			}
			if d := e.Snapshot().Deadline; d != 62 {
				t.Errorf("deadline verdicts counted %d, want 62", d)
			}
			late := 0
			for _, r := range tr.Records {
				if r.Note == "deadline" {
					late++
					if want := map[config.FailureMode]string{config.FailClosed: "DROP", config.FailOpen: "NONE"}[mode]; r.Verdict != want {
						t.Errorf("deadline trace line says %s, the kernel got %s", r.Verdict, want)
					}
				}
			}
			if late != 62 || len(tr.Records) != 128 {
				t.Errorf("trace: %d lines, %d noted deadline; want 128 and 62", len(tr.Records), late)
			}
		})
	}
}

// A panic in the middle of a burst costs that packet only.
func TestPanicMidBurst(t *testing.T) {
	decide := func(port uint16) policy.Verdict {
		if port == 2005 {
			var m map[int]int
			m[0]++
		}
		return policy.Accept
	}
	e, _, _ := testEngine(t, config.FailClosed, decide)
	m := e.Marks()
	k := enginetest.NewKernel()
	q, f := fakeQueue(t, fwdQueue, k)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go e.Run(ctx, []engine.Queue{q})
	var dgs [][]byte
	for i := 0; i < 20; i++ {
		k.Queue(uint32(i + 1))
		dgs = append(dgs, packetMsg(fwdQueue, uint32(i+1), engine.HookForward, 0, ifIn, ifOut, payload(uint16(2000+i)), 0))
	}
	f.in <- dgs
	end := time.Now().Add(5 * time.Second)
	for len(k.Waiting()) > 0 && time.Now().Before(end) {
		time.Sleep(time.Millisecond)
	}
	acc := want(m, policy.Accept, 0)
	for id := uint32(1); id <= 20; id++ {
		g := k.Got(id)
		wa := acc.Action
		if id == 6 {
			wa = engine.NfDrop
		}
		if len(g) != 1 || g[0].Action != wa {
			t.Errorf("packet %d: %+v, want one %v", id, g, wa)
		}
	}
	if p := e.Snapshot().Panics; p != 1 {
		t.Errorf("panics %d", p)
	}
}

func TestParsePacket(t *testing.T) {
	pl := payload(22)
	var p engine.Packet
	body := packetMsg(7, 42, engine.HookForward, 0x10, 2, 3, pl, 0)[nlmsgHdrLen:]
	if !parsePacket(body, false, &p) || p.ID != 42 || p.Hook != engine.HookForward || p.Mark != 0x10 || p.InIf != 2 || p.OutIf != 3 ||
		string(p.Payload) != string(pl) || p.Truncated {
		t.Errorf("parsed %+v", p)
	}
	body = packetMsg(7, 43, engine.HookForward, 0, 2, 3, pl[:20], 1500)[nlmsgHdrLen:]
	if !parsePacket(body, false, &p) || !p.Truncated || len(p.Payload) != 20 {
		t.Errorf("with NFQA_CAP_LEN: %+v", p)
	}
	if !parsePacket(packetMsg(7, 44, 0, 0, 0, 0, pl, 0)[nlmsgHdrLen:], true, &p) || !p.Truncated {
		t.Errorf("cut datagram: %+v", p)
	}
	body = packetMsg(7, 45, 0, 0, 0, 0, pl, 0)[nlmsgHdrLen:]
	if !parsePacket(body[:len(body)-8], false, &p) || p.ID != 45 || !p.Truncated || p.Payload != nil {
		t.Errorf("attribute cut short: %+v", p)
	}
	if parsePacket(body[:6], false, &p) {
		t.Error("no packet header: parsed")
	}
}

// A verdict message's layout: 40 bytes with a mark, 32 without (a drop).
func TestVerdictMessage(t *testing.T) {
	b := appendVerdict(nil, 0x0104, engine.Verdict{ID: 0x01020304, Action: engine.NfRepeat, Mark: 0x00110000, Batch: true})
	want := fmt.Sprintf("% x", []byte{40, 0, 0, 0, 3, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 4,
		12, 0, 2, 0, 0, 0, 0, 4, 1, 2, 3, 4, 8, 0, 3, 0, 0, 0x11, 0, 0})
	if got := fmt.Sprintf("% x", b); got != want {
		t.Errorf("batch repeat:\n got %s\nwant %s", got, want)
	}
	if b := appendVerdict(nil, 1, engine.Verdict{ID: 9, Action: engine.NfDrop, Mark: 5}); len(b) != 32 || b[4] != 1 {
		t.Errorf("drop: % x", b)
	}
}

// staticSock serves the same burst forever and counts verdicts, without
// allocating.
type staticSock struct {
	bufs  [][]byte
	dgs   [][]byte
	sends int
	bytes int
}

func (s *staticSock) recv(ns []int, cut []bool) (int, error) {
	for i, d := range s.dgs {
		ns[i] = copy(s.bufs[i], d)
		cut[i] = false
	}
	return len(s.dgs), nil
}
func (s *staticSock) recvOne([]byte) (int, error) { return 0, unix.EAGAIN }
func (s *staticSock) send(b []byte) error         { s.sends++; s.bytes += len(b); return nil }
func (s *staticSock) close() error                { return nil }

// The whole queue path, reader included, allocates nothing: parse a burst
// of 64, decide (deny cache, trace writer fake), answer with batches.
func readerPath(tb testing.TB, dropEvery uint16) (*Queue, *staticSock, func(*engine.Burst)) {
	rt := config.DefaultRuntime()
	rt.Queues, rt.QueueBase = 1, 100
	pol := &enginetest.Policy{
		BindFn: func(ifc policy.Interface) policy.Binding {
			b := policy.NoBinding()
			if ifc.Name == "eth1" {
				b.Filter, b.ForwardIn = 0, 0
			}
			return b
		},
		ForwardFn: func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
			if dropEvery != 0 && pkt.DstPort%dropEvery == 0 {
				return enginetest.Decide(policy.Drop, 0, 1)
			}
			return enginetest.Decide(policy.Accept, 0, 0)
		},
	}
	e, err := engine.New(engine.Options{Runtime: rt, Hooks: &enginetest.Hooks{}, Log: slog.New(slog.DiscardHandler),
		Tracer: &enginetest.Tracer{Discard: true}, Deny: engine.DenyCacheOf(denycache.New(1024, time.Minute, time.Now)),
		Links: enginetest.NewLinks(engine.Iface{Index: ifIn, Name: "eth0"}, engine.Iface{Index: ifOut, Name: "eth1"})})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.Swap(&engine.Loaded{Policy: pol, Hash: "t"}); err != nil {
		tb.Fatal(err)
	}
	q := newQueue(fwdQueue, Options{}.withDefaults())
	s := &staticSock{bufs: q.bufs}
	for i := 0; i < engine.MaxBurst; i++ {
		s.dgs = append(s.dgs, packetMsg(fwdQueue, uint32(i+1), engine.HookForward, 0, ifIn, ifOut, payload(uint16(1000+i)), 0))
	}
	q.s = s
	// The engine's handler for the queue, as Run hands it to Receive.
	c := capture{q, make(chan func(*engine.Burst), 1)}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	go e.Run(ctx, []engine.Queue{c})
	return q, s, <-c.fn
}

// capture is a queue whose Receive only hands the engine's handler over.
type capture struct {
	*Queue
	fn chan func(*engine.Burst)
}

func (c capture) Receive(ctx context.Context, fn func(*engine.Burst)) error {
	c.fn <- fn
	<-ctx.Done()
	return nil
}

func TestReaderPathAllocatesNothing(t *testing.T) {
	q, s, h := readerPath(t, 16)
	var b engine.Burst
	q.read(h, &b) // warm: the first drops fill the deny cache
	if n := testing.AllocsPerRun(200, func() { q.read(h, &b) }); n != 0 {
		t.Errorf("%v allocations per burst of %d", n, engine.MaxBurst)
	}
	if s.sends == 0 {
		t.Fatal("no verdicts sent")
	}
}

// BenchmarkReaderPath: bursts of 64 through parse, decide (a fake policy)
// and the verdict encoding; "accept" is netbench's traffic, "mixed" drops
// one packet in 16 (deny-cache lookups on).
func BenchmarkReaderPath(b *testing.B) {
	for _, c := range []struct {
		name string
		drop uint16
	}{{"accept", 0}, {"mixed", 16}} {
		b.Run(c.name, func(b *testing.B) {
			q, s, h := readerPath(b, c.drop)
			var bu engine.Burst
			b.ReportAllocs()
			for b.Loop() {
				q.read(h, &bu)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*engine.MaxBurst), "ns/packet")
			b.ReportMetric(float64(s.bytes)/float64(b.N*engine.MaxBurst), "verdict-bytes/packet")
		})
	}
}

// verifyBound reads the kernel's queue table: a queue it does not list, or
// lists with another socket's port or another copy range, is not bound.
func TestVerifyBound(t *testing.T) {
	table := "  100  11111     0 2   256     0     0        0  1\n  104  22222     3 2   256     0     0       17  1\n  105  33333     0 2  0xffff     0     0        0  1\n"
	path := filepath.Join(t.TempDir(), "nfnetlink_queue")
	if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		num  uint16
		port uint32
		ok   bool
	}{{104, 22222, true}, {104, 11111, false}, {101, 11111, false}, {105, 33333, false}} {
		err := verifyBound(path, c.num, c.port, 256)
		if (err == nil) != c.ok {
			t.Errorf("queue %d port %d: %v, want ok=%v", c.num, c.port, err, c.ok)
		}
	}
	if err := verifyBound(filepath.Join(t.TempDir(), "absent"), 104, 1, 256); err != nil {
		t.Errorf("no table (no /proc): %v, want the acknowledgement to suffice", err)
	}
}
