package engine_test

import (
	"testing"
	"time"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

func ruleDecision(v policy.Verdict, pol, rule int32, dir policy.Dir) policy.Decision {
	d := enginetest.Decide(v, pol, rule)
	d.Dir = dir
	return d
}

func TestCountersByStageVerdictReasonAndRule(t *testing.T) {
	l := newLab(t, config.FailClosed)
	cfg := &policy.Config{
		Policies: []policy.GlobalNetworkPolicy{
			{Name: "allow-ssh", Tier: "ops", Ingress: []policy.Rule{{Action: policy.Allow}}},
			{Name: "deny-rest", Ingress: []policy.Rule{{Action: policy.Log}, {Action: policy.Deny}}, Egress: []policy.Rule{{Action: policy.Allow}}},
		},
		HostEndpoints: []policy.HostEndpoint{{Name: "client-side", InterfaceName: "eth0"}, {Name: "server-side", InterfaceName: "eth1"}},
	}
	if _, err := l.e.Swap(&engine.Loaded{Policy: l.pol, Config: cfg, Hash: "def"}); err != nil {
		t.Fatal(err)
	}
	l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
		if pkt.DstPort == 22 {
			return ruleDecision(policy.Accept, 0, 0, policy.Ingress)
		}
		return ruleDecision(policy.Drop, 1, 1, policy.Ingress)
	}
	_, h := l.queue(policy.StageForward)
	h(fwdPacket(1, 40000, 22, 0))
	h(fwdPacket(2, 40001, 22, 0))
	h(fwdPacket(3, 40002, 80, 0))
	h(fwdPacket(4, 40002, 80, 0)) // the same denied flow: answered from the deny cache
	_, hi := l.queue(policy.StageInput)
	hi(&engine.Packet{ID: 5, Hook: engine.HookInput, InIf: ifOther, Payload: fwdPacket(0, 1, 2, 0).Payload})

	s := l.e.Stats()
	fwd, in := int(policy.StageForward), int(policy.StageInput)
	for _, c := range []struct {
		name string
		got  uint64
		want uint64
	}{
		{"forward ACCEPT rule", s.Verdicts[fwd][policy.Accept][policy.ReasonRule].Load(), 2},
		{"forward DROP rule (one evaluated, one from the deny cache)", s.Verdicts[fwd][policy.Drop][policy.ReasonRule].Load(), 2},
		{"input NONE not-policed", s.Verdicts[in][policy.None][policy.ReasonNotPoliced].Load(), 1},
		{"latency observations", sumLatency(s), 5},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}

	hits := map[string]uint64{}
	for _, r := range l.e.RuleHits() {
		hits[r.Tier+"/"+r.Name+"/"+r.Dir+"/"+r.Action+"/"+string(rune('0'+r.Rule))] = r.Hits
	}
	want := map[string]uint64{
		"ops/allow-ssh/ingress/Allow/0":    2,
		"default/deny-rest/ingress/Log/0":  0,
		"default/deny-rest/ingress/Deny/1": 1, // the deny-cache answer is not a rule evaluation
		"default/deny-rest/egress/Allow/0": 0,
	}
	if len(hits) != len(want) {
		t.Errorf("rule hits %v, want %v", hits, want)
	}
	for k, v := range want {
		if hits[k] != v {
			t.Errorf("rule %s: %d hits, want %d", k, hits[k], v)
		}
	}

	// An interface refresh keeps the generation's counts; a new generation starts at zero.
	if err := l.e.RefreshLinks(); err != nil {
		t.Fatal(err)
	}
	if got := l.e.RuleHits()[0].Hits; got != 2 {
		t.Errorf("after an interface refresh allow-ssh has %d hits, want 2", got)
	}
	if _, err := l.e.Swap(&engine.Loaded{Policy: l.pol, Config: cfg, Hash: "def"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range l.e.RuleHits() {
		if r.Hits != 0 {
			t.Errorf("new generation: %s rule %d has %d hits", r.Name, r.Rule, r.Hits)
		}
	}
}

func sumLatency(s *engine.Stats) uint64 {
	var n uint64
	for i := range s.Latency {
		n += s.Latency[i].Load()
	}
	return n
}

func TestReadersReportProgressAndBusy(t *testing.T) {
	l := newLab(t, config.FailClosed)
	stuck := make(chan struct{})
	release := make(chan struct{})
	l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
		if pkt.DstPort == 9 {
			close(stuck)
			<-release
		}
		return enginetest.Decide(policy.Accept, 0, 0)
	}
	_, h := l.queue(policy.StageForward)
	h(fwdPacket(1, 40000, 22, 0))
	r := l.e.Readers()
	if len(r) != 1 || r[0].Queue != 100+uint16(policy.StageForward) || r[0].Handled != 1 || !r[0].Busy.IsZero() {
		t.Fatalf("after one packet: %+v", r)
	}
	go h(fwdPacket(2, 40000, 9, 0))
	<-stuck
	if r := l.e.Readers(); r[0].Busy.IsZero() || r[0].Handled != 1 {
		t.Errorf("while deciding: %+v, want busy since the packet arrived", r[0])
	}
	close(release)
	deadline := time.Now().Add(2 * time.Second)
	for l.e.Readers()[0].Handled != 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if r := l.e.Readers(); r[0].Handled != 2 || !r[0].Busy.IsZero() {
		t.Errorf("after the slow packet: %+v", r[0])
	}
}
