package engine_test

import (
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// A denial answered from the deny cache is answered as the first packet
// of the flow was: with the deny action REJECT, a REJECT (NF_REPEAT with
// the Reject bit), not a silent drop; the trace says REJECT for both.
func TestDenyCacheKeepsReject(t *testing.T) {
	for _, c := range []struct {
		st   policy.Stage
		pkt  func(id uint32) *engine.Packet
		bits func(m engine.Marks) uint32
	}{
		{policy.StageForward, func(id uint32) *engine.Packet { return fwdPacket(id, 40001, 80, 0x5) },
			func(m engine.Marks) uint32 { return m.FwdDone() | m.Reject }},
		{policy.StageInput, func(id uint32) *engine.Packet {
			return &engine.Packet{ID: id, Hook: engine.HookInput, Mark: 0x5, InIf: ifClient,
				Payload: enginetest.TCP4("198.18.0.2", "198.18.0.1", 40001, 80)}
		}, func(m engine.Marks) uint32 { return m.InDone | m.Reject }},
	} {
		l := newRejectLab(t)
		deny := func(policy.EndpointID, policy.Dir, *classify.Packet) policy.Decision {
			return enginetest.Decide(policy.Drop, 1, 0)
		}
		l.pol.LocalFn = deny
		l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
			return deny(in, 0, pkt)
		}
		q, h := l.queue(c.st)
		h(c.pkt(1))
		h(c.pkt(2)) // the same flow: from the deny cache
		want := enginetest.Verdict{Action: engine.NfRepeat, Mark: 0x5 | c.bits(l.m)}
		got := q.Verdicts()
		if len(got) != 2 {
			t.Fatalf("%v: verdicts %+v", c.st, got)
		}
		for i, v := range got {
			want.ID = uint32(i + 1)
			if v != want {
				t.Errorf("%v packet %d: %+v, want %+v (REJECT)", c.st, i+1, v, want)
			}
		}
		if s := l.e.Snapshot(); s.DenyHits != 1 {
			t.Errorf("%v: deny-cache hits %d, want 1", c.st, s.DenyHits)
		}
		if r := l.tracer.Records; len(r) != 2 || r[0].Verdict != "REJECT" || r[1].Verdict != "REJECT" || r[1].Note != "deny-cache" {
			t.Errorf("%v: trace %+v, want REJECT twice, the second from the deny cache", c.st, r)
		}
	}
}

// Locally originated traffic that nat OUTPUT DNAT'd is judged in mangle
// POSTROUTING, where Calico's Allow only returns: the trace and the
// verdict counters say NONE, as explain does (issue 11 item 9); the kernel
// verdict still remembers the decision, so the flow is not queued again.
// A deny stays a DROP (never a REJECT: mangle cannot reject).
func TestDNATedOutputAllowIsNone(t *testing.T) {
	l := newRejectLab(t)
	l.pol.LocalFn = func(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision {
		if pkt.DstPort == 443 {
			return enginetest.Decide(policy.Accept, 0, 0)
		}
		return enginetest.Decide(policy.Drop, 1, 0)
	}
	q, h := l.queue(policy.StageOutput)
	post := func(id uint32, port uint16, hook uint8) *engine.Packet {
		return &engine.Packet{ID: id, Hook: hook, OutIf: ifServer, Payload: enginetest.TCP4("198.18.0.1", "198.19.0.2", 40000+port, port)}
	}
	h(post(1, 443, engine.HookPostrouting))
	h(post(2, 80, engine.HookPostrouting))
	h(post(3, 443, engine.HookOutput)) // not DNAT'd: filter OUTPUT, a real ACCEPT
	v := q.Verdicts()
	want := []enginetest.Verdict{
		{ID: 1, Action: engine.NfRepeat, Mark: l.m.OutDone},
		{ID: 2, Action: engine.NfDrop},
		{ID: 3, Action: engine.NfRepeat, Mark: l.m.OutDone},
	}
	if len(v) != len(want) {
		t.Fatalf("verdicts %+v", v)
	}
	for i := range want {
		if v[i] != want[i] {
			t.Errorf("packet %d: %+v, want %+v", i+1, v[i], want[i])
		}
	}
	r := l.tracer.Records
	if len(r) != 3 || r[0].Verdict != "NONE" || r[1].Verdict != "DROP" || r[2].Verdict != "ACCEPT" {
		t.Errorf("trace %+v, want NONE (DNAT'd allow), DROP (DNAT'd deny), ACCEPT (filter OUTPUT)", r)
	}
	s := l.e.Snapshot()
	if s.None["output"] != 1 || s.Accepted["output"] != 1 || s.Dropped["output"] != 1 {
		t.Errorf("output counters: none %d accepted %d dropped %d, want 1, 1, 1", s.None["output"], s.Accepted["output"], s.Dropped["output"])
	}
	vc := l.e.Stats()
	if n := vc.Verdicts[policy.StageOutput][policy.None][policy.ReasonRule].Load(); n != 1 {
		t.Errorf("verdict counter output/NONE/rule = %d, want 1", n)
	}
	if n := vc.Verdicts[policy.StageOutput][policy.Accept][policy.ReasonRule].Load(); n != 1 {
		t.Errorf("verdict counter output/ACCEPT/rule = %d, want 1 (the filter OUTPUT one)", n)
	}
}

// newRejectLab is newLab with the deny action REJECT.
func newRejectLab(t *testing.T) *lab {
	t.Helper()
	l := newLab(t, config.FailClosed)
	cfg := &policy.Config{Policies: []policy.GlobalNetworkPolicy{{Name: "allow"}, {Name: "deny"}},
		HostEndpoints: []policy.HostEndpoint{{Name: "client-side", InterfaceName: "eth0"}, {Name: "server-side", InterfaceName: "eth1"}}}
	cfg.Settings.DenyAction = policy.DenyReject
	if _, err := l.e.Swap(&engine.Loaded{Policy: l.pol, Config: cfg, Hash: "rej"}); err != nil {
		t.Fatal(err)
	}
	return l
}

// A reload whose hook plan equals the live one (rules changed, endpoints
// and interfaces not) keeps the installed hooks: no iptables rewrite. A
// plan that differs is installed.
func TestSwapSkipsUnchangedHooks(t *testing.T) {
	l := newLab(t, config.FailClosed)
	n := l.hooks.Count()
	cfg := &policy.Config{Policies: []policy.GlobalNetworkPolicy{{Name: "other"}},
		HostEndpoints: []policy.HostEndpoint{{Name: "client-side", InterfaceName: "eth0"}, {Name: "server-side", InterfaceName: "eth1"}}}
	res, err := l.e.Swap(&engine.Loaded{Policy: l.pol, Config: cfg, Hash: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	if l.hooks.Count() != n {
		t.Errorf("same plan: hooks applied %d more times, want 0", l.hooks.Count()-n)
	}
	if gen, _ := l.e.Gen(); gen != res.Gen || gen != 2 {
		t.Errorf("generation %d (result %d), want 2", gen, res.Gen)
	}
	cfg.Settings.DenyAction = policy.DenyReject // the plan's REJECT rules change
	if _, err := l.e.Swap(&engine.Loaded{Policy: l.pol, Config: cfg, Hash: "v3"}); err != nil {
		t.Fatal(err)
	}
	if l.hooks.Count() != n+1 || !l.hooks.Last().Reject {
		t.Errorf("changed plan: %d applies, last %+v; want the new plan applied", l.hooks.Count()-n, l.hooks.Last())
	}
}
