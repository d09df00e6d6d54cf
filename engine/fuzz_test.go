package engine_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/denycache"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// fuzzConfig polices every stage: doNotTrack and preDNAT on eth0, normal
// and applyOnForward policy on eth0 and eth1, a "*" endpoint for the rest.
const fuzzConfig = `
[gateway]
nodeName = "gw"

[[hostEndpoint]]
name = "gw.eth0"
labels = { side = "outside" }
interfaceName = "eth0"
node = "gw"
expectedIPs = ["198.18.0.1", "2001:db8::1"]

[[hostEndpoint]]
name = "gw.eth1"
labels = { side = "inside" }
interfaceName = "eth1"
node = "gw"

[[hostEndpoint]]
name = "gw.all"
labels = { side = "any" }
interfaceName = "*"
node = "gw"

[[globalNetworkPolicy]]
name = "dnt-drop-telnet"
selector = "side == 'outside'"
doNotTrack = true
applyOnForward = true
[[globalNetworkPolicy.ingress]]
action = "Deny"
protocol = "TCP"
destination = { ports = [23] }
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "UDP"
source = { ports = ["1000:2000"] }

[[globalNetworkPolicy]]
name = "pre-dnat"
selector = "side == 'outside'"
preDNAT = true
applyOnForward = true
[[globalNetworkPolicy.ingress]]
action = "Deny"
protocol = "ICMP"
icmp = { type = 8 }
[[globalNetworkPolicy.ingress]]
action = "Allow"
destination = { ports = [443] }
protocol = "TCP"

[[globalNetworkPolicy]]
name = "forward"
selector = "side == 'inside'"
applyOnForward = true
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [22, 80] }
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "UDP"
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "ICMPv6"
[[globalNetworkPolicy.egress]]
action = "Pass"
notProtocol = "TCP"

[[globalNetworkPolicy]]
name = "local"
selector = "has(side)"
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [179] }
[[globalNetworkPolicy.egress]]
action = "Allow"
`

// fuzzEngine is one engine with the real compiler, decoder and deny cache
// behind fake queues, one per stage.
type fuzzEngine struct {
	e  *engine.Engine
	qs [5]*countQueue
	hs [5]func(*engine.Packet)
	m  engine.Marks
}

func newFuzzEngine(tb testing.TB, mode config.FailureMode) *fuzzEngine {
	tb.Helper()
	ld, err := config.LoadBytes("nfgate.toml", []byte(fuzzConfig))
	if err != nil {
		tb.Fatal(err)
	}
	prog, err := policy.Compile(ld.Policy)
	if err != nil {
		tb.Fatal(err)
	}
	rt := config.DefaultRuntime()
	rt.Queues = 1
	rt.QueueBase = 100
	rt.FailureMode = mode
	links := enginetest.NewLinks(engine.Iface{Index: 1, Name: "lo"}, engine.Iface{Index: 2, Name: "eth0"},
		engine.Iface{Index: 3, Name: "eth1"}, engine.Iface{Index: 4, Name: "eth2"})
	e, err := engine.New(engine.Options{Runtime: rt, Hooks: &enginetest.Hooks{}, Links: links,
		Deny:   engine.DenyCacheOf(denycache.New(1024, time.Second, time.Now)),
		Tracer: &enginetest.Tracer{Discard: true}, Conntrack: &enginetest.Conntrack{},
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.Swap(&engine.Loaded{Policy: prog, Config: ld.Policy, Hash: "fuzz"}); err != nil {
		tb.Fatal(err)
	}
	fe := &fuzzEngine{e: e, m: e.Marks()}
	for st := range fe.qs {
		fe.qs[st] = &countQueue{n: 100 + uint16(st)}
		fe.hs[st] = e.HandlerForTest(fe.qs[st])
	}
	return fe
}

var stageHooks = [5][]uint8{
	{engine.HookPrerouting, engine.HookOutput},
	{engine.HookPrerouting},
	{engine.HookInput},
	{engine.HookOutput, engine.HookPostrouting},
	{engine.HookForward},
}

// FuzzEngine: any bytes, on any interface pair, at any stage and hook, with
// any incoming mark, get exactly one verdict from the whole decision path
// (decoder, bindings, deny cache, compiled policy, verdict mapping), never
// a panic, and the new mark differs from the old only inside the mask.
func FuzzEngine(f *testing.F) {
	fe := newFuzzEngine(f, config.FailClosed)
	f.Add(enginetest.TCP4("198.18.9.9", "198.18.0.1", 40000, 443), uint8(1), uint8(0), uint32(0), uint8(2), uint8(0))
	f.Add(enginetest.TCP4("198.18.9.9", "198.19.0.1", 40000, 22), uint8(4), uint8(0), uint32(0x100000), uint8(2), uint8(3))
	f.Add(enginetest.TCP4("198.18.9.9", "198.19.0.1", 40000, 23), uint8(0), uint8(0), uint32(0xdeadbeef), uint8(2), uint8(3))
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 0, 64}, uint8(3), uint8(1), uint32(0), uint8(0), uint8(3))
	f.Add([]byte{0x45}, uint8(2), uint8(0), uint32(0), uint8(4), uint8(0))
	for _, s := range malformedSeeds() {
		f.Add(s, uint8(4), uint8(0), uint32(0), uint8(2), uint8(3))
	}
	var id uint32
	f.Fuzz(func(t *testing.T, payload []byte, stage, hook uint8, mark uint32, in, out uint8) {
		st := int(stage) % 5
		hk := stageHooks[st][int(hook)%len(stageHooks[st])]
		id++
		q := fe.qs[st]
		before := q.count
		fe.hs[st](&engine.Packet{ID: id, Hook: hk, Mark: mark, InIf: uint32(in % 6), OutIf: uint32(out % 6), Payload: payload})
		if q.count != before+1 || q.last.ID != id {
			t.Fatalf("packet %d got %d verdicts", id, q.count-before)
		}
		got := q.last
		if got.Action != engine.NfDrop && got.Action != engine.NfRepeat {
			t.Fatalf("verdict %v", got.Action)
		}
		if got.Action == engine.NfRepeat && (got.Mark^mark)&^fe.m.Mask != 0 {
			t.Fatalf("mark %#x -> %#x changes bits outside the mask %#x", mark, got.Mark, fe.m.Mask)
		}
	})
}

// countQueue keeps only the last verdict and a count (fuzzing sends millions).
type countQueue struct {
	n     uint16
	count int
	last  enginetest.Verdict
}

func (q *countQueue) Num() uint16                                        { return q.n }
func (q *countQueue) Receive(context.Context, func(*engine.Burst)) error { return nil }
func (q *countQueue) SetVerdicts(vs []engine.Verdict) error {
	for _, v := range vs {
		q.count++
		q.last = v
	}
	return nil
}
