package engine_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/denycache"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/engine/trace"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/policy/policytest"
)

// TestNoAllocsRealPath drives the packet path with the parts the daemon
// runs: the compiled Program, the decoder, the deny cache and the trace
// writer (to io.Discard). Every kind of decision allocates nothing: accept,
// a first drop (deny cache add), a deny-cache hit, a malformed packet, and
// a packet no endpoint polices.
func TestNoAllocsRealPath(t *testing.T) {
	cfg := &policy.Config{
		Settings: policy.Settings{NodeName: "gw", InterfacePrefix: []string{"cali"}},
		HostEndpoints: []policy.HostEndpoint{
			{Name: "gw.eth1", Node: "gw", InterfaceName: "eth1", Labels: policytest.Labels("net=maint")},
		},
		Policies: []policy.GlobalNetworkPolicy{{
			Name: "allow-ssh", Selector: policytest.Sel("net == 'maint'"), ApplyOnForward: true,
			Types:  []policy.PolicyType{policy.Egress},
			Egress: []policy.Rule{policytest.Allow(policytest.P("TCP"), policytest.DstPorts("22"))},
		}},
	}
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tw := trace.New(io.Discard, 1<<16)
	defer tw.Close()
	rt := config.DefaultRuntime()
	rt.Queues = 1
	e, err := engine.New(engine.Options{Runtime: rt, Hooks: &enginetest.Hooks{},
		Links:     enginetest.NewLinks(engine.Iface{Index: 1, Name: "eth0"}, engine.Iface{Index: 2, Name: "eth1"}, engine.Iface{Index: 3, Name: "eth2"}),
		Conntrack: &enginetest.Conntrack{},
		Deny:      engine.DenyCacheOf(denycache.New(1024, time.Minute, time.Now)),
		Tracer:    engine.TracerOf(tw), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Swap(&engine.Loaded{Policy: prog, Config: cfg, Hash: "abc"}); err != nil {
		t.Fatal(err)
	}
	h := e.HandlerForTest(nullQueue{100 + uint16(policy.StageForward)})
	pkt := func(dport uint16) *engine.Packet {
		return &engine.Packet{ID: 1, Hook: engine.HookForward, InIf: 1, OutIf: 2,
			Payload: enginetest.TCP4("198.18.0.2", "198.19.0.2", 40000, dport)}
	}
	truncated := pkt(22)
	truncated.Payload = truncated.Payload[:24] // IPv4 header plus 4 bytes of TCP
	unpoliced := pkt(80)
	unpoliced.OutIf = 3
	for _, c := range []struct {
		name string
		p    *engine.Packet
	}{
		{"accept", pkt(22)},
		{"drop, then deny-cache hits", pkt(80)},
		{"malformed", truncated},
		{"not policed", unpoliced},
	} {
		h(c.p) // warm: the first drop fills the deny cache
		if n := testing.AllocsPerRun(1000, func() { h(c.p) }); n != 0 {
			t.Errorf("%s: %v allocations per packet", c.name, n)
		}
	}
	st := e.Snapshot()
	if st.Accepted["forward"] == 0 || st.Dropped["forward"] == 0 || st.None["forward"] == 0 || st.DenyHits == 0 || st.Malformed == 0 {
		t.Errorf("the cases did not take the paths they name: %+v", st)
	}
}
