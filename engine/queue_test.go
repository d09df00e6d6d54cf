package engine_test

import (
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/denycache"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// denyLab is an engine with the real deny cache and three policed
// interfaces: eth0 (endpoint 0), eth1 (endpoint 1), eth3 (endpoint 2).
// Forwarding to endpoint 1 is denied, to endpoint 2 allowed.
func denyLab(t *testing.T) (*engine.Engine, *denycache.Cache, func(*engine.Packet), *enginetest.Queue) {
	t.Helper()
	pol := &enginetest.Policy{
		BindFn: func(ifc policy.Interface) policy.Binding {
			b := policy.NoBinding()
			switch ifc.Name {
			case "eth0":
				b.Filter, b.ForwardIn = 0, 0
			case "eth1":
				b.Filter, b.ForwardIn = 1, 1
			case "eth3":
				b.Filter, b.ForwardIn = 2, 2
			}
			return b
		},
		ForwardFn: func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
			if out == 1 {
				return enginetest.Decide(policy.Drop, 0, 1)
			}
			return enginetest.Decide(policy.Accept, 0, 0)
		},
		LocalFn: func(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision {
			return enginetest.Decide(policy.Accept, 0, 0)
		},
	}
	rt := config.DefaultRuntime()
	rt.Queues = 1
	dc := denycache.New(1024, time.Minute, nil)
	e, err := engine.New(engine.Options{Runtime: rt, Hooks: &enginetest.Hooks{}, Log: slog.New(slog.DiscardHandler),
		Deny: engine.DenyCacheOf(dc),
		Links: enginetest.NewLinks(engine.Iface{Index: 2, Name: "eth0"}, engine.Iface{Index: 3, Name: "eth1"},
			engine.Iface{Index: 5, Name: "eth3"})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Swap(&engine.Loaded{Policy: pol, Hash: "d"}); err != nil {
		t.Fatal(err)
	}
	q := enginetest.NewQueue(100 + uint16(policy.StageForward))
	return e, dc, e.HandlerForTest(q), q
}

// The deny cache answers only for the scope that denied the flow: the same
// 5-tuple forwarded to another endpoint is evaluated, not dropped.
func TestDenyCacheKeyedByScope(t *testing.T) {
	e, _, h, q := denyLab(t)
	pkt := func(id uint32, out uint32) *engine.Packet {
		return &engine.Packet{ID: id, Hook: engine.HookForward, InIf: 2, OutIf: out,
			Payload: enginetest.TCP4("198.18.0.2", "198.19.0.2", 40000, 80)}
	}
	h(pkt(1, 3)) // to eth1: denied, cached
	h(pkt(2, 3)) // again: the deny cache answers
	h(pkt(3, 5)) // the same flow to eth3: allowed by its policy
	v := q.Verdicts()
	if len(v) != 3 || v[0].Action != engine.NfDrop || v[1].Action != engine.NfDrop || v[2].Action != engine.NfRepeat {
		t.Fatalf("verdicts %+v, want drop, drop (cache), repeat (evaluated for eth3)", v)
	}
	if s := e.Snapshot(); s.DenyHits != 1 {
		t.Errorf("deny-cache hits %d, want 1 (the second packet to eth1 only)", s.DenyHits)
	}
}

// Without a denial cached at a stage in the live generation, the packet
// path does not look the deny cache up at all.
func TestDenyCacheLookupSkippedWhenNothingCached(t *testing.T) {
	e, dc, h, _ := denyLab(t)
	for i := range 10 {
		h(&engine.Packet{ID: uint32(i + 1), Hook: engine.HookForward, InIf: 2, OutIf: 5,
			Payload: enginetest.TCP4("198.18.0.2", "198.19.0.2", uint16(40000+i), 80)})
	}
	if st := dc.Stats(); st.Hits+st.Misses != 0 {
		t.Fatalf("%d lookups with nothing cached", st.Hits+st.Misses)
	}
	h(&engine.Packet{ID: 11, Hook: engine.HookForward, InIf: 2, OutIf: 3,
		Payload: enginetest.TCP4("198.18.0.2", "198.19.0.2", 41000, 80)}) // denied: cached
	h(&engine.Packet{ID: 12, Hook: engine.HookForward, InIf: 2, OutIf: 5,
		Payload: enginetest.TCP4("198.18.0.2", "198.19.0.2", 41001, 80)})
	if st := dc.Stats(); st.Misses == 0 {
		t.Error("a denial is cached at the forward stage, yet the next forward packet was not looked up")
	}
	// Another stage has nothing cached: no lookup.
	before := dc.Stats()
	hi := e.HandlerForTest(enginetest.NewQueue(100 + uint16(policy.StageInput)))
	hi(&engine.Packet{ID: 1, Hook: engine.HookInput, InIf: 2, Payload: enginetest.TCP4("198.18.0.2", "198.19.0.2", 41002, 80)})
	if after := dc.Stats(); after.Hits+after.Misses != before.Hits+before.Misses {
		t.Error("input stage looked up the deny cache with nothing cached there")
	}
}

// A packet whose headers did not fit in the queue's copy range is dropped
// on a policed interface and counted apart from malformed packets; the
// same bytes from a packet that really ends there are malformed.
func TestTruncatedCopy(t *testing.T) {
	l := newLab(t, config.FailOpen)
	l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
		return enginetest.Decide(policy.Accept, 0, 0)
	}
	q, h := l.queue(policy.StageForward)
	// IPv6 with a 256-byte hop-by-hop header, then TCP: cut at 200 bytes.
	full := classify.BuildTCP6("2001:db8::1", "2001:db8::2", 40000, 22, classify.TCPFlagSYN)
	hbh := make([]byte, 256)
	hbh[0], hbh[1] = full[6], 256/8-1
	b := append(append(append([]byte{}, full[:40]...), hbh...), full[40:]...)
	b[6] = 0 // next header: hop-by-hop
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	cut := b[:200]
	h(&engine.Packet{ID: 1, Hook: engine.HookForward, InIf: ifClient, OutIf: ifServer, Payload: cut, Truncated: true})
	h(&engine.Packet{ID: 2, Hook: engine.HookForward, InIf: ifClient, OutIf: ifServer, Payload: cut})
	h(&engine.Packet{ID: 3, Hook: engine.HookForward, InIf: ifClient, OutIf: ifServer, Payload: b})
	v := q.Verdicts()
	if len(v) != 3 || v[0].Action != engine.NfDrop || v[1].Action != engine.NfDrop || v[2].Action != engine.NfRepeat {
		t.Fatalf("verdicts %+v: want the truncated copy dropped (even in fail-open mode), the short packet dropped, the whole one decided", v)
	}
	if s := l.e.Snapshot(); s.Truncated != 1 || s.Malformed != 1 {
		t.Errorf("truncated %d malformed %d, want 1 and 1", s.Truncated, s.Malformed)
	}
	if r := l.tracer.Records; len(r) != 3 || r[0].Note != "truncated-copy" {
		t.Errorf("trace %+v", r)
	}
}
