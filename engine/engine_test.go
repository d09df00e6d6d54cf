package engine_test

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

const (
	ifClient = 2 // eth0: host endpoint 0
	ifServer = 3 // eth1: host endpoint 1
	ifOther  = 4 // eth2: no endpoint
)

type lab struct {
	e      *engine.Engine
	pol    *enginetest.Policy
	hooks  *enginetest.Hooks
	links  *enginetest.Links
	ct     *enginetest.Conntrack
	deny   *enginetest.DenyCache
	tracer *enginetest.Tracer
	m      engine.Marks
	clock  *fakeClock
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func bindByName(ifc policy.Interface) policy.Binding {
	b := policy.NoBinding()
	switch ifc.Name {
	case "eth0":
		b.Filter, b.ForwardIn, b.PreDNAT = 0, 0, 0
	case "eth1", "eth7":
		b.Filter, b.ForwardIn = 1, 1
	}
	return b
}

func newLab(t *testing.T, mode config.FailureMode) *lab {
	t.Helper()
	l := &lab{
		pol:    &enginetest.Policy{BindFn: bindByName},
		hooks:  &enginetest.Hooks{},
		links:  enginetest.NewLinks(engine.Iface{Index: ifClient, Name: "eth0"}, engine.Iface{Index: ifServer, Name: "eth1"}, engine.Iface{Index: ifOther, Name: "eth2"}),
		ct:     &enginetest.Conntrack{Flows: 3},
		deny:   enginetest.NewDenyCache(),
		tracer: &enginetest.Tracer{},
		clock:  &fakeClock{t: time.Unix(1000, 0)},
	}
	rt := config.DefaultRuntime()
	rt.Queues = 1
	rt.FailureMode = mode
	e, err := engine.New(engine.Options{Runtime: rt, Hooks: l.hooks, Links: l.links, Conntrack: l.ct, Deny: l.deny,
		Tracer: l.tracer, Now: l.clock.Now, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &policy.Config{Policies: []policy.GlobalNetworkPolicy{{Name: "allow-ssh"}, {Name: "deny-rest"}},
		HostEndpoints: []policy.HostEndpoint{{Name: "client-side", InterfaceName: "eth0"}, {Name: "server-side", InterfaceName: "eth1"}}}
	if _, err := e.Swap(&engine.Loaded{Policy: l.pol, Config: cfg, Hash: "abc"}); err != nil {
		t.Fatal(err)
	}
	l.e, l.m = e, e.Marks()
	return l
}

// queue returns a fake queue for stage st and its handler.
func (l *lab) queue(st policy.Stage) (*enginetest.Queue, func(*engine.Packet)) {
	q := enginetest.NewQueue(100 + uint16(st))
	return q, l.e.HandlerForTest(q)
}

func fwdPacket(id uint32, sport, dport uint16, mark uint32) *engine.Packet {
	return &engine.Packet{ID: id, Hook: engine.HookForward, Mark: mark, InIf: ifClient, OutIf: ifServer,
		Payload: enginetest.TCP4("198.18.0.2", "198.19.0.2", sport, dport)}
}

func TestVerdictMarks(t *testing.T) {
	m, _ := engine.NewMarks(0x00ff0000)
	const other = 0x1 // a bit outside the mask, owned by someone else
	for _, c := range []struct {
		st     policy.Stage
		hook   uint8
		v      policy.Verdict
		reject bool
		want   engine.Action
		bits   uint32
	}{
		{policy.StageUntracked, engine.HookPrerouting, policy.Accept, false, engine.NfRepeat, m.Accepted},
		{policy.StageUntracked, engine.HookPrerouting, policy.None, false, engine.NfRepeat, m.Pass},
		{policy.StageUntracked, engine.HookPrerouting, policy.Drop, true, engine.NfDrop, 0},
		{policy.StagePreDNAT, engine.HookPrerouting, policy.Accept, false, engine.NfRepeat, m.PreDone | m.Accepted},
		{policy.StagePreDNAT, engine.HookPrerouting, policy.None, false, engine.NfRepeat, m.PreDone},
		{policy.StagePreDNAT, engine.HookPrerouting, policy.Drop, true, engine.NfDrop, 0},
		{policy.StageInput, engine.HookInput, policy.Accept, false, engine.NfRepeat, m.InDone},
		{policy.StageInput, engine.HookInput, policy.None, false, engine.NfRepeat, m.Pass},
		{policy.StageInput, engine.HookInput, policy.Drop, false, engine.NfDrop, 0},
		{policy.StageInput, engine.HookInput, policy.Drop, true, engine.NfRepeat, m.InDone | m.Reject},
		{policy.StageOutput, engine.HookOutput, policy.Accept, false, engine.NfRepeat, m.OutDone},
		{policy.StageOutput, engine.HookOutput, policy.Drop, true, engine.NfRepeat, m.OutDone | m.Reject},
		{policy.StageOutput, engine.HookPostrouting, policy.Drop, true, engine.NfDrop, 0}, // no REJECT in mangle POSTROUTING
		{policy.StageForward, engine.HookForward, policy.Accept, false, engine.NfRepeat, m.FwdDone() | m.FwdAccept()},
		{policy.StageForward, engine.HookForward, policy.None, false, engine.NfRepeat, m.FwdDone()},
		{policy.StageForward, engine.HookForward, policy.Drop, false, engine.NfDrop, 0},
		{policy.StageForward, engine.HookForward, policy.Drop, true, engine.NfRepeat, m.FwdDone() | m.Reject},
	} {
		a, mark := engine.VerdictFor(m, c.st, c.hook, c.v, c.reject, other)
		if a != c.want || mark != other|c.bits {
			t.Errorf("%v %v reject=%v: got %v %#x, want %v %#x", c.st, c.v, c.reject, a, mark, c.want, other|c.bits)
		}
	}
}

func TestMarksNeedSevenBits(t *testing.T) {
	if _, err := engine.NewMarks(0x3f); err == nil {
		t.Fatal("a 6-bit mask was accepted")
	}
	m, err := engine.NewMarks(0xf0f00000)
	if err != nil {
		t.Fatal(err)
	}
	if m.All()&^0xf0f00000 != 0 || m.All() == 0 {
		t.Fatalf("bits %#x outside mask", m.All())
	}
}

func TestForwardedFlowAcceptedOnce(t *testing.T) {
	l := newLab(t, config.FailClosed)
	calls := 0
	l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
		calls++
		if in != 0 || out != 1 || acc {
			t.Errorf("Forward(in=%d, out=%d, accepted=%v)", in, out, acc)
		}
		if pkt.DstPort == 22 {
			return enginetest.Decide(policy.Accept, 0, 0)
		}
		return enginetest.Decide(policy.Drop, 1, 0)
	}
	q, h := l.queue(policy.StageForward)
	h(fwdPacket(1, 40000, 22, 0x5))
	h(fwdPacket(2, 40001, 80, 0x5))
	h(fwdPacket(3, 40001, 80, 0x5)) // same denied flow again: deny cache
	got := q.Verdicts()
	want := []enginetest.Verdict{
		{ID: 1, Action: engine.NfRepeat, Mark: 0x5 | l.m.FwdDone() | l.m.FwdAccept()},
		{ID: 2, Action: engine.NfDrop, Mark: 0x5},
		{ID: 3, Action: engine.NfDrop, Mark: 0x5},
	}
	if len(got) != len(want) {
		t.Fatalf("verdicts %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("packet %d: %+v, want %+v", i+1, got[i], want[i])
		}
	}
	if calls != 2 {
		t.Errorf("policy evaluated %d times, want 2 (third packet from the deny cache)", calls)
	}
	recs := l.tracer.Records
	if len(recs) != 3 || recs[0].Policy != "allow-ssh" || recs[0].Verdict != "ACCEPT" || recs[0].In != "eth0" || recs[0].Out != "eth1" ||
		recs[0].Stage != "forward" || recs[0].Endpoint != "client-side" || recs[2].Note != "deny-cache" || recs[1].Policy != "deny-rest" {
		t.Errorf("trace records: %+v", recs)
	}
	s := l.e.Snapshot()
	if s.Queued["forward"] != 3 || s.Accepted["forward"] != 1 || s.Dropped["forward"] != 2 || s.DenyHits != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestUnpolicedInterfaceGetsNone(t *testing.T) {
	l := newLab(t, config.FailClosed)
	l.pol.LocalFn = func(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision {
		t.Error("policy evaluated for an interface without endpoint")
		return enginetest.NoDecision
	}
	q, h := l.queue(policy.StageInput)
	h(&engine.Packet{ID: 7, Hook: engine.HookInput, InIf: ifOther, Payload: enginetest.TCP4("198.18.0.2", "198.18.0.1", 1, 2)})
	h(&engine.Packet{ID: 8, Hook: engine.HookInput, InIf: 99, Payload: enginetest.TCP4("198.18.0.2", "198.18.0.1", 1, 2)})
	for _, v := range q.Verdicts() {
		if v.Action != engine.NfRepeat || v.Mark != l.m.Pass {
			t.Errorf("packet %d: %+v, want NF_REPEAT with the pass bit (host rules decide)", v.ID, v)
		}
	}
}

func TestMalformedOnPolicedInterfaceIsDropped(t *testing.T) {
	l := newLab(t, config.FailClosed)
	q, h := l.queue(policy.StageInput)
	h(&engine.Packet{ID: 1, Hook: engine.HookInput, InIf: ifClient, Payload: []byte{0x45, 0}})
	h(&engine.Packet{ID: 2, Hook: engine.HookInput, InIf: ifClient, Payload: nil})
	for _, v := range q.Verdicts() {
		if v.Action != engine.NfDrop {
			t.Errorf("packet %d: %+v, want NF_DROP", v.ID, v)
		}
	}
	if n := l.e.Snapshot().Malformed; n != 2 {
		t.Errorf("malformed counter %d, want 2", n)
	}
	if r := l.tracer.Records[0]; r.Reason != "malformed" || r.Verdict != "DROP" {
		t.Errorf("trace %+v", r)
	}
}

func TestPreDNATAcceptMarkReachesForward(t *testing.T) {
	l := newLab(t, config.FailClosed)
	l.pol.PreDNATFn = func(ep policy.EndpointID, pkt *classify.Packet) policy.Decision {
		return enginetest.Decide(policy.Accept, 0, 0)
	}
	var sawAccepted bool
	l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
		sawAccepted = acc
		return enginetest.NoDecision
	}
	qp, hp := l.queue(policy.StagePreDNAT)
	hp(&engine.Packet{ID: 1, Hook: engine.HookPrerouting, InIf: ifClient, Payload: enginetest.TCP4("198.18.0.2", "198.18.0.1", 5, 30080)})
	v := qp.Verdicts()[0]
	if v.Mark != l.m.PreDone|l.m.Accepted {
		t.Fatalf("preDNAT verdict %+v", v)
	}
	qf, hf := l.queue(policy.StageForward)
	hf(fwdPacket(2, 5, 8080, v.Mark))
	if !sawAccepted {
		t.Error("forward stage did not see the preDNAT accept-mark")
	}
	if f := qf.Verdicts()[0]; f.Mark != v.Mark|l.m.FwdDone() || f.Action != engine.NfRepeat {
		t.Errorf("forward NONE verdict %+v", f)
	}
}

func TestRecheckDenyCutsFlow(t *testing.T) {
	l := newLab(t, config.FailClosed)
	l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
		return enginetest.Decide(policy.Drop, 1, 0)
	}
	q, h := l.queue(policy.StageForward)
	h(fwdPacket(1, 40000, 22, l.m.Recheck))
	if v := q.Verdicts()[0]; v.Action != engine.NfDrop {
		t.Errorf("recheck verdict %+v", v)
	}
	cuts := l.e.CutsForTest()
	if len(cuts) != 1 || cuts[0].DstPort != 22 || cuts[0].Src != netip.MustParseAddr("198.18.0.2") {
		t.Errorf("cuts %+v", cuts)
	}
	if s := l.e.Snapshot(); s.Cut != 1 {
		t.Errorf("cut counter %d", s.Cut)
	}
}

func TestReloadRechecksAndPurges(t *testing.T) {
	l := newLab(t, config.FailClosed)
	res, err := l.e.Reload(&engine.Loaded{Policy: l.pol, Config: &policy.Config{}, Hash: "def"}, nil, []string{"a.toml"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Gen != 2 || res.Rechecked != 3 {
		t.Errorf("reload result %+v", res)
	}
	if len(l.ct.Rechecks) != 1 || l.ct.Rechecks[0] != [3]uint32{l.m.Persist(), l.m.Persist(), l.m.Recheck} {
		t.Errorf("recheck calls %v", l.ct.Rechecks)
	}
	if l.deny.Purges != 1 {
		t.Errorf("deny cache purged %d times", l.deny.Purges)
	}
	// A failed reload keeps generation 2 and says why in the trace.
	if _, err := l.e.Reload(nil, []string{"a.toml:3: bad"}, []string{"a.toml"}); err == nil {
		t.Fatal("bad reload succeeded")
	}
	l.hooks.Err = context.DeadlineExceeded
	// (a different hook plan, REJECT rules: an unchanged one is not rewritten)
	rej := &policy.Config{Settings: policy.Settings{DenyAction: policy.DenyReject}}
	if _, err := l.e.Reload(&engine.Loaded{Policy: l.pol, Config: rej, Hash: "xyz"}, nil, nil); err == nil {
		t.Fatal("reload with failing hooks succeeded")
	}
	if g, h := l.e.Gen(); g != 2 || h != "def" {
		t.Errorf("live generation %d %s, want 2 def", g, h)
	}
	rl := l.tracer.Reloads
	if len(rl) != 3 || !rl[0].OK || rl[1].OK || rl[1].Errors[0] != "a.toml:3: bad" || rl[2].OK {
		t.Errorf("reload trace %+v", rl)
	}
	if s := l.e.Snapshot(); s.Reloads != 1 || s.ReloadErrs != 2 {
		t.Errorf("stats %+v", s)
	}
}

// A hung decision gets the failure-mode verdict from the watchdog, and the
// late decision is not sent: exactly one verdict per packet.
func TestDeadlineGivesExactlyOneVerdict(t *testing.T) {
	for _, c := range []struct {
		mode config.FailureMode
		want engine.Action
	}{{config.FailClosed, engine.NfDrop}, {config.FailOpen, engine.NfRepeat}} {
		l := newLab(t, c.mode)
		release := make(chan struct{})
		entered := make(chan struct{})
		l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
			close(entered)
			<-release
			return enginetest.Decide(policy.Accept, 0, 0)
		}
		q, h := l.queue(policy.StageForward)
		done := make(chan struct{})
		go func() { h(fwdPacket(9, 1, 22, 0)); close(done) }()
		<-entered
		l.e.CheckDeadlines() // not yet late
		if n := len(q.Verdicts()); n != 0 {
			t.Fatalf("%v: verdict before the deadline", c.mode)
		}
		l.clock.Add(time.Second)
		l.e.CheckDeadlines()
		close(release)
		<-done
		v := q.Verdicts()
		if len(v) != 1 || v[0].Action != c.want {
			t.Errorf("%v: verdicts %+v, want one %v", c.mode, v, c.want)
		}
		if c.mode == config.FailOpen && v[0].Mark != l.m.Pass {
			t.Errorf("open mode mark %#x, want pass bit", v[0].Mark)
		}
		if l.e.Snapshot().Deadline != 1 {
			t.Errorf("%v: deadline counter", c.mode)
		}
	}
}

type nullQueue struct{ n uint16 }

func (q nullQueue) Num() uint16                                             { return q.n }
func (nullQueue) Receive(ctx context.Context, fn func(*engine.Burst)) error { return nil }
func (nullQueue) SetVerdicts([]engine.Verdict) error                        { return nil }

func TestNoAllocs(t *testing.T) {
	l := newLab(t, config.FailClosed)
	l.tracer.Discard = true
	l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
		return enginetest.Decide(policy.Accept, 0, 0)
	}
	h := l.e.HandlerForTest(nullQueue{100 + uint16(policy.StageForward)})
	p := fwdPacket(1, 40000, 22, 0)
	if n := testing.AllocsPerRun(1000, func() { h(p) }); n != 0 {
		t.Errorf("forward path: %v allocations per packet", n)
	}
	hi := l.e.HandlerForTest(nullQueue{100 + uint16(policy.StageInput)})
	pi := &engine.Packet{ID: 2, Hook: engine.HookInput, InIf: ifOther, Payload: p.Payload}
	if n := testing.AllocsPerRun(1000, func() { hi(pi) }); n != 0 {
		t.Errorf("unpoliced path: %v allocations per packet", n)
	}
	// With cut flows remembered, every new packet is looked up in the
	// memory: an accepted one and a cut flow's packet allocate nothing.
	l.e.CutFlowForTest(engine.FlowTuple{Family: 4, Proto: 6, Src: netip.MustParseAddr("198.18.0.2"),
		Dst: netip.MustParseAddr("198.19.0.2"), SrcPort: 40001, DstPort: 22})
	if n := testing.AllocsPerRun(1000, func() { h(p) }); n != 0 {
		t.Errorf("forward path with cut flows remembered: %v allocations per packet", n)
	}
	pc := fwdPacket(3, 40001, 22, 0)
	if n := testing.AllocsPerRun(1000, func() { h(pc) }); n != 0 {
		t.Errorf("a cut flow's packet: %v allocations per packet", n)
	}
	if l.e.Snapshot().CutFlowDrops == 0 {
		t.Error("the cut flow's packet was not dropped as cut-flow")
	}
}

func BenchmarkForward(b *testing.B) {
	t := &testing.T{}
	l := newLab(t, config.FailClosed)
	l.tracer.Discard = true
	l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
		return enginetest.Decide(policy.Accept, 0, 0)
	}
	h := l.e.HandlerForTest(nullQueue{100 + uint16(policy.StageForward)})
	p := fwdPacket(1, 40000, 22, 0)
	b.ReportAllocs()
	for b.Loop() {
		h(p)
	}
}

func TestRunServesQueues(t *testing.T) {
	l := newLab(t, config.FailClosed)
	l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
		return enginetest.Decide(policy.Accept, 0, 0)
	}
	var qs []engine.Queue
	var fq []*enginetest.Queue
	for _, n := range l.e.QueueNums() {
		q := enginetest.NewQueue(n)
		qs = append(qs, q)
		fq = append(fq, q)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- l.e.Run(ctx, qs) }()
	fwd := fq[policy.StageForward]
	fwd.In <- fwdPacket(1, 1, 22, 0)
	select {
	case v := <-fwd.Out:
		if v.Action != engine.NfRepeat {
			t.Errorf("verdict %+v", v)
		}
	case <-ctx.Done():
		t.Fatal("no verdict")
	}
	// An interface change re-derives the hooks.
	before := l.hooks.Count()
	l.links.Set(engine.Iface{Index: ifClient, Name: "eth0"}, engine.Iface{Index: 7, Name: "eth7"})
	deadline := time.Now().Add(2 * time.Second)
	for l.hooks.Count() == before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if l.hooks.Count() == before {
		t.Error("hooks not re-derived after an interface change")
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestRenderPlan(t *testing.T) {
	m, _ := engine.NewMarks(0x00ff0000)
	p := &engine.HookPlan{Marks: m, QueueBase: 100, Queues: 2, InvalidDrop: true, Reject: true,
		FailsafeIn:  []policy.ProtoPort{{Protocol: 6, Port: 22}, {Protocol: 6, Port: 179, Net: netip.MustParsePrefix("198.18.0.0/15")}},
		FailsafeOut: []policy.ProtoPort{{Protocol: 17, Port: 53}},
		Filter:      engine.Dispatch{Names: []string{"eth0", "eth1"}}}
	rs := engine.Render(p, 4)
	text := engine.RestoreText(rs, map[string]int{"filter/INPUT/NFGATE-INPUT": 1})
	for _, want := range []string{
		"-A NFGATE-INPUT -i eth0 -g NFGATE-IN",
		"-A NFGATE-FORWARD -o eth1 -g NFGATE-FWD",
		"-A NFGATE-IN -p tcp -m tcp --dport 22 -j ACCEPT",
		"-A NFGATE-IN -p tcp -m tcp --dport 179 -s 198.18.0.0/15 -j ACCEPT",
		"-A NFGATE-OUT -p udp -m udp --dport 53 -j ACCEPT",
		"-A NFGATE-IN -j NFQUEUE --queue-balance 104:105",
		"-A NFGATE-FWD -j NFQUEUE --queue-balance 108:109",
		"-A NFGATE-OUT -j NFQUEUE --queue-balance 106:107",
		"-A NFGATE-IN -m conntrack --ctstate INVALID -j DROP",
		"-I FORWARD 1 -j NFGATE-FORWARD",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("missing %q", want)
		}
	}
	for _, bad := range []string{"-I INPUT 1", "--queue-bypass", "NFGATE-UNT-IN -j NFQUEUE", "NFGATE-PRE -j NFQUEUE"} {
		if strings.Contains(text, bad) {
			t.Errorf("unexpected %q", bad)
		}
	}
	// No failsafes in forward.
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "-A NFGATE-FWD") && strings.Contains(l, "--dport") {
			t.Errorf("failsafe in forward chain: %s", l)
		}
	}
	// IPv6 skips IPv4-only failsafes.
	if t6 := engine.RestoreText(engine.Render(p, 6), nil); strings.Contains(t6, "198.18.0.0/15") {
		t.Error("IPv4 failsafe net in the IPv6 ruleset")
	}
}

func TestPlanDispatch(t *testing.T) {
	ifaces := []engine.Iface{{Index: 2, Name: "eth0"}, {Index: 3, Name: "eth1"}, {Index: 4, Name: "cali123"}}
	named := &enginetest.Policy{BindFn: bindByName}
	cfg := &policy.Config{Settings: policy.Settings{InterfacePrefix: []string{"cali"}},
		HostEndpoints: []policy.HostEndpoint{{Name: "later", InterfaceName: "eth9"}}}
	unt, pre, filt := engine.PlanDispatch(named, cfg, ifaces)
	if !unt.Empty() || pre.CatchAll || strings.Join(pre.Names, ",") != "eth0" || strings.Join(filt.Names, ",") != "eth0,eth1" {
		t.Errorf("named: unt=%+v pre=%+v filt=%+v", unt, pre, filt)
	}
	star := &enginetest.Policy{BindFn: func(ifc policy.Interface) policy.Binding {
		b := policy.NoBinding()
		b.Filter, b.ForwardIn = 0, 0
		if strings.HasPrefix(ifc.Name, "cali") {
			b.Filter, b.Workload = policy.NoEndpoint, true
		}
		return b
	}}
	_, pre, filt = engine.PlanDispatch(star, cfg, ifaces)
	if !pre.Empty() || !filt.CatchAll || strings.Join(filt.Names, ",") != "cali123,cali+" {
		t.Errorf("star: pre=%+v filt=%+v", pre, filt)
	}
}

// A flow a re-check cut stays cut: the peer's retransmission, which the
// kernel's loose pickup makes a new flow the other way round, is dropped
// though the policy has nothing to say about that direction (NONE), and
// so is a new packet the original way; other flows are not touched; a
// reload forgets the cut flows (the new policy decides again).
func TestCutFlowStaysCut(t *testing.T) {
	l := newLab(t, config.FailClosed)
	deny := true
	l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
		if deny && pkt.DstPort == 80 {
			return enginetest.Decide(policy.Drop, 1, 0)
		}
		return enginetest.NoDecision
	}
	q, h := l.queue(policy.StageForward)
	h(fwdPacket(1, 40000, 80, l.m.Recheck))
	for _, c := range l.e.CutsForTest() {
		l.e.CutFlowForTest(c)
	}
	if n := l.ct.CutCount(); n != 1 {
		t.Fatalf("%d conntrack entries deleted, want 1", n)
	}
	reversed := &engine.Packet{ID: 2, Hook: engine.HookForward, InIf: ifServer, OutIf: ifClient,
		Payload: enginetest.TCP4("198.19.0.2", "198.18.0.2", 80, 40000)}
	h(reversed)
	deny = false // even where the policy would now accept the original way
	h(fwdPacket(3, 40000, 80, 0))
	h(fwdPacket(4, 40001, 80, 0)) // another flow
	vs := q.Verdicts()
	for i, want := range []engine.Action{engine.NfDrop, engine.NfDrop, engine.NfDrop, engine.NfRepeat} {
		if vs[i].Action != want {
			t.Errorf("packet %d: %+v, want action %v", vs[i].ID, vs[i], want)
		}
	}
	if r := l.tracer.Records[1]; r.Reason != "cut-flow" || r.Verdict != "DROP" {
		t.Errorf("reversed packet's trace %+v, want DROP cut-flow", r)
	}
	// (packet 3 may be answered by the deny cache the re-check filled)
	if s := l.e.Snapshot(); s.CutFlowDrops < 1 {
		t.Errorf("cut_flow_drops %d, want at least 1", s.CutFlowDrops)
	}
	if _, err := l.e.Reload(&engine.Loaded{Policy: l.pol, Config: &policy.Config{}, Hash: "def"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	reversed.ID = 5
	h(reversed)
	if v := q.Verdicts()[4]; v.Action != engine.NfRepeat {
		t.Errorf("after a reload the reversed packet got %+v, want the policy's NONE", v)
	}
}
