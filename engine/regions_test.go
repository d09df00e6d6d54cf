package engine_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/denycache"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/policy/dtree"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// Interfaces of the region tests: eth0 (clients, 1), eth1 (servers, 2),
// eth2 (no endpoint, 3).
const (
	rgClient = 1
	rgServer = 2
	rgOther  = 3
)

// regionConfig: servers on eth1 take SSH and HTTP from anyone forwarded
// to them (everything else forwarded to them is denied); the gateway
// takes HTTP on eth0 (everything else to it is denied, failsafe SSH
// aside); a log rule logs UDP 514 before the deny.
func regionConfig(deny policy.DenyAction) *policy.Config {
	return &policy.Config{
		Settings: policy.Settings{NodeName: "gw", InterfacePrefix: []string{"cali"}, DenyAction: deny,
			FailsafeInbound: []policy.ProtoPort{{Protocol: 6, Port: 22}}, FailsafeOutbound: policy.DefaultFailsafeOutbound()},
		HostEndpoints: []policy.HostEndpoint{
			{Name: "gw.eth0", Node: "gw", InterfaceName: "eth0", Labels: Labels("net=clients")},
			{Name: "gw.eth1", Node: "gw", InterfaceName: "eth1", Labels: Labels("net=servers")},
		},
		Policies: []policy.GlobalNetworkPolicy{{
			Name: "servers", Selector: Sel("net == 'servers'"), ApplyOnForward: true,
			Types: []policy.PolicyType{policy.Egress},
			Egress: []policy.Rule{Log(P("UDP"), DstPorts("514")), Deny(P("UDP"), DstPorts("514")),
				Allow(P("TCP"), DstPorts("22", "80"))},
		}, {
			Name: "clients", Selector: Sel("net == 'clients'"),
			Types:   []policy.PolicyType{policy.Ingress},
			Ingress: []policy.Rule{Allow(P("TCP"), DstPorts("80"))},
		}},
	}
}

type regionLab struct {
	t      *testing.T
	e      *engine.Engine
	sets   *enginetest.RegionSets
	tracer *enginetest.RegionTracer
	deny   engine.DenyCache
	clock  *fakeClock
	links  *enginetest.Links
	hooks  *enginetest.Hooks
	fwd    func(*engine.Packet)
	in     func(*engine.Packet)
	pre    func(*engine.Packet)
	id     uint32
}

func newRegionLab(t *testing.T, cfg *policy.Config, tune func(*config.Runtime)) *regionLab {
	t.Helper()
	l := &regionLab{t: t, sets: enginetest.NewRegionSets(), tracer: &enginetest.RegionTracer{Tracer: &enginetest.Tracer{Discard: true}},
		hooks: &enginetest.Hooks{},
		clock: &fakeClock{t: time.Unix(1000, 0)},
		links: enginetest.NewLinks(engine.Iface{Index: rgClient, Name: "eth0"}, engine.Iface{Index: rgServer, Name: "eth1"}, engine.Iface{Index: rgOther, Name: "eth2"})}
	l.deny = engine.DenyCacheOf(denycache.New(1024, time.Minute, l.clock.Now))
	rt := config.DefaultRuntime()
	rt.Queues = 1
	if tune != nil {
		tune(&rt)
	}
	e, err := engine.New(engine.Options{Runtime: rt, Hooks: l.hooks, Links: l.links, Conntrack: &enginetest.Conntrack{},
		Deny: l.deny, Tracer: l.tracer, Now: l.clock.Now, Log: slog.New(slog.DiscardHandler), Regions: l.sets})
	if err != nil {
		t.Fatal(err)
	}
	l.e = e
	l.swap(cfg)
	l.fwd = e.HandlerForTest(nullQueue{100 + uint16(policy.StageForward)})
	l.in = e.HandlerForTest(nullQueue{100 + uint16(policy.StageInput)})
	l.pre = e.HandlerForTest(nullQueue{100 + uint16(policy.StagePreDNAT)})
	return l
}

func (l *regionLab) swap(cfg *policy.Config) {
	l.t.Helper()
	prog, err := policy.Compile(cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	if _, err := l.e.Swap(&engine.Loaded{Policy: prog, Config: cfg, Hash: "h"}); err != nil {
		l.t.Fatal(err)
	}
}

func udp4(src, dst string, sport, dport uint16) []byte {
	b := make([]byte, 28)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], 28)
	b[8], b[9] = 64, classify.ProtoUDP
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	binary.BigEndian.PutUint16(b[24:], 8)
	return b
}

// forward queues one forwarded packet eth0 -> eth1 and runs the installer.
func (l *regionLab) forward(payload []byte, mark uint32) {
	l.id++
	l.fwd(&engine.Packet{ID: l.id, Hook: engine.HookForward, Mark: mark, InIf: rgClient, OutIf: rgServer, Payload: payload})
	l.e.InstallRegionsForTest()
}

func key4(t *testing.T, payload []byte) (uint8, dtree.Key) {
	var d classify.Decoder
	var p classify.Packet
	d.Decode(payload, &p)
	fam, k, ok := policy.KeyOf(&p)
	if !ok {
		t.Fatal("undecodable test packet")
	}
	return fam, k
}

// covered reports whether an installed element of the interface pair
// holds the packet.
func (l *regionLab) covered(stage policy.Stage, in, out uint32, payload []byte) bool {
	_, k := key4(l.t, payload)
	for _, el := range l.sets.Elements() {
		if el.Stage == stage && el.InIf == in && el.OutIf == out && engine.ElemHasKey(&el, &k) {
			return true
		}
	}
	return false
}

func TestRegionFromAForwardDenial(t *testing.T) {
	l := newRegionLab(t, regionConfig(policy.DenyDrop), nil)
	c := checker{t}
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40000, 9999), 0)
	st := l.e.Snapshot().Regions
	c.is("a denied UDP packet makes one installer request and elements", st.Offers == 1 && st.Installed >= 1, true)
	els := l.sets.Elements()
	for _, el := range els {
		t.Logf("element %s in=%d out=%d: %s", el.Stage, el.InIf, el.OutIf, engine.ElemBox(el))
	}
	c.is("it covers the same service from another source port", l.covered(policy.StageForward, rgClient, rgServer, udp4("198.18.1.2", "198.18.2.2", 1, 9999)), true)
	c.is("and from a spoofed source address", l.covered(policy.StageForward, rgClient, rgServer, udp4("198.19.77.1", "198.18.2.2", 5000, 9999)), true)
	c.is("not TCP to the allowed port 22", l.covered(policy.StageForward, rgClient, rgServer, enginetest.TCP4("198.18.1.2", "198.18.2.2", 40000, 22)), false)
	c.is("not the same service on another interface pair", l.covered(policy.StageForward, rgOther, rgServer, udp4("198.18.1.2", "198.18.2.2", 1, 9999)), false)
	c.is("not UDP 514, which a Log rule logs", l.covered(policy.StageForward, rgClient, rgServer, udp4("198.18.1.2", "198.18.2.2", 1, 514)), false)

	// The flow was not deny-cached (the kernel has it): a repeat queued
	// before the element worked is evaluated, and coalesces.
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40000, 9999), 0)
	c.is("an installed region's flow is not in the deny cache", l.e.Snapshot().DenyHits, 0)
	// A covered packet queued before the element worked coalesces.
	n := len(els)
	l.forward(udp4("198.19.0.9", "198.18.2.2", 3333, 9999), 0)
	c.is("a packet already covered adds nothing", len(l.sets.Elements()) == n && l.e.Snapshot().Regions.Coalesced >= 1, true)

	// Logged denials stay in userspace (Calico logs, then drops).
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40000, 514), 0)
	c.is("a logged denial is not offered", l.e.Snapshot().Regions.Offers, 3)
	// Packets whose marks the kernel rule excludes, or re-checked flows.
	m := l.e.Marks()
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40000, 7777), m.Recheck)
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40000, 7778), m.PreDone)
	c.is("a re-checked flow's denial is not offered; one after a preDNAT NONE is", l.e.Snapshot().Regions.Offers == 4, true)
}

// checker logs and asserts one observation (values compare as printed).
type checker struct{ t *testing.T }

func (c checker) is(what string, got, want any) {
	c.t.Helper()
	c.t.Logf("checked: %-70s %v", what, got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		c.t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func (c checker) isN(what string, got, want uint64) {
	c.t.Helper()
	c.is(what, got, want)
}

func TestRegionInputKeepsFailsafes(t *testing.T) {
	l := newRegionLab(t, regionConfig(policy.DenyReject), nil)
	c := checker{t}
	for i, dport := range []uint16{21, 23, 8080} {
		l.in(&engine.Packet{ID: uint32(i + 1), Hook: engine.HookInput, InIf: rgClient, Payload: enginetest.TCP4("198.19.5.5", "198.18.1.1", 40000, dport)})
	}
	l.e.InstallRegionsForTest()
	els := l.sets.Elements()
	c.is("input denials make elements", len(els) > 0, true)
	for _, el := range els {
		t.Logf("element %s in=%d: %s", el.Stage, el.InIf, engine.ElemBox(el))
		if el.Stage == policy.StageInput && el.Kind == engine.RegionPorts && el.Proto[0] <= 6 && 6 <= el.Proto[1] && el.B[0] <= 22 && 22 <= el.B[1] {
			t.Errorf("an element holds the failsafe port 22: %+v", el)
		}
	}
	c.is("the chains are rendered for REJECT with the failsafe list", len(l.sets.Specs) > 0 && l.sets.Specs[len(l.sets.Specs)-1].Reject &&
		len(l.sets.Specs[len(l.sets.Specs)-1].FailsafeIn) == 1, true)
	c.is("the allowed HTTP port is not covered", l.covered(policy.StageInput, rgClient, 0, enginetest.TCP4("198.19.5.5", "198.18.1.1", 1, 80)), false)
}

// A reload removes every element before the new policy is live, and no
// request computed under the old one is installed after it.
func TestRegionsFlushedBeforeTheSwap(t *testing.T) {
	l := newRegionLab(t, regionConfig(policy.DenyDrop), nil)
	c := checker{t}
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40000, 9999), 0)
	c.is("an element is installed", len(l.sets.Elements()) > 0, true)
	l.sets.Count(l.sets.Elements()[0], 42)

	// A packet denied by the old policy whose request waits while the
	// reload runs.
	l.id++
	l.fwd(&engine.Packet{ID: l.id, Hook: engine.HookForward, InIf: rgClient, OutIf: rgServer, Payload: udp4("198.18.1.2", "198.18.2.2", 40000, 8888)})
	gens := []uint64{}
	l.sets.Note("swap")
	allow := regionConfig(policy.DenyDrop)
	allow.Policies[0].Egress = append(allow.Policies[0].Egress, Allow(P("UDP"), DstPorts("9999")))
	l.swap(allow)
	gen, _ := l.e.Gen()
	gens = append(gens, gen)
	c.is("after the reload no element is left", len(l.sets.Elements()), 0)
	c.is("the table was reset (after the first policy's reset)", l.sets.Resets, 2)
	l.e.InstallRegionsForTest()
	c.is("the old policy's waiting request is not installed", len(l.sets.Elements()), 0)
	c.is("it is counted as stale", l.e.Snapshot().Regions.Stale, 1)
	lines := l.tracer.Lines()
	var n42, flushed int
	for _, ln := range lines {
		if ln.End == "flushed" {
			flushed++
		}
		if ln.Packets == 42 {
			n42++
		}
	}
	c.is("every flushed element has its trace line, with its counter", len(lines) > 0 && flushed == len(lines) && n42 == 1, true)
	// The first packet after the reload is evaluated by the new policy.
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40001, 9999), 0)
	c.is("the newly allowed service makes no element", len(l.sets.Elements()), 0)
	_ = gens
}

// The swap happens after the reset: the kernel's reset sees the old
// generation live.
func TestRegionResetOrder(t *testing.T) {
	l := newRegionLab(t, regionConfig(policy.DenyDrop), nil)
	var seen []uint64
	l.sets.OnReset = func() { g, _ := l.e.Gen(); seen = append(seen, g) }
	before, _ := l.e.Gen()
	l.swap(regionConfig(policy.DenyDrop))
	after, _ := l.e.Gen()
	if len(seen) != 1 || seen[0] != before || after != before+1 {
		t.Errorf("reset saw generations %v; live before %d, after %d: the reset must come before the new policy is live", seen, before, after)
	}
	// A failed reset whose removal also fails keeps the old policy live.
	l.sets.Fail["Reset"], l.sets.Fail["Remove"] = true, true
	prog, _ := policy.Compile(regionConfig(policy.DenyDrop))
	if _, err := l.e.Swap(&engine.Loaded{Policy: prog, Config: regionConfig(policy.DenyDrop), Hash: "x"}); err == nil {
		t.Error("a reload whose old elements cannot be removed went live")
	}
	if g, _ := l.e.Gen(); g != after {
		t.Errorf("generation %d live, want %d", g, after)
	}
	// A failed reset whose removal works goes live without regions.
	l.sets.Fail["Remove"] = false
	if _, err := l.e.Swap(&engine.Loaded{Policy: prog, Config: regionConfig(policy.DenyDrop), Hash: "y"}); err != nil {
		t.Fatal(err)
	}
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40000, 9999), 0)
	if n := len(l.sets.Elements()); n != 0 {
		t.Errorf("%d elements installed without a table", n)
	}
}

func TestRegionExpiryAndRepair(t *testing.T) {
	l := newRegionLab(t, regionConfig(policy.DenyDrop), func(rt *config.Runtime) { rt.DenyRegionTTL = 5 * time.Second })
	c := checker{t}
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40000, 9999), 0)
	els := l.sets.Elements()
	c.is("installed", len(els) > 0, true)
	for _, el := range els {
		l.sets.Count(el, 1000)
	}
	c.is("the kernel timeout is past the installer's own TTL", l.sets.Els[els[0]] > 5*time.Second, true)
	l.clock.Add(4 * time.Second)
	l.e.MaintainRegionsForTest()
	c.is("live before the TTL", len(l.sets.Elements()), len(els))
	c.isN("the packets counted so far are in the stats", l.e.Snapshot().Regions.Packets, uint64(1000*len(els)))
	l.clock.Add(2 * time.Second)
	l.e.MaintainRegionsForTest()
	c.is("removed at the TTL", len(l.sets.Elements()), 0)
	lines := l.tracer.Lines()
	c.is("one trace line per element, with its counter", len(lines) == len(els) && lines[0].End == "expired" && lines[0].Packets == 1000 &&
		lines[0].Stage == "forward" && lines[0].In == "eth0" && lines[0].Out == "eth1" && lines[0].Policy == "" && lines[0].Verdict == "DROP", true)
	t.Logf("line: %+v", lines[0])

	// Someone flushes the table: the installer restores it (empty). (A
	// new flow: the deny cache answers a repeat of the old one.)
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40001, 9999), 0)
	c.is("installed again", len(l.sets.Elements()) > 0, true)
	l.sets.Tamper("table missing")
	l.e.RepairRegionsForTest()
	c.is("repaired: a new reset, counted", l.sets.Resets == 2 && l.e.Snapshot().Regions.Repairs == 1, true)
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40002, 9999), 0)
	c.is("and the region comes back with the next denial", len(l.sets.Elements()) > 0, true)
}

func TestRegionSetFull(t *testing.T) {
	l := newRegionLab(t, regionConfig(policy.DenyDrop), func(rt *config.Runtime) { rt.DenyRegionSize = 1 })
	c := checker{t}
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40000, 9999), 0)
	l.forward(enginetest.TCP4("198.18.1.2", "198.18.2.2", 40000, 9998), 0)
	st := l.e.Snapshot()
	c.is("one element per set at most", len(l.sets.Elements()), 1)
	c.is("the refusal is counted", st.Regions.SetFull >= 1, true)
	// Today's behaviour: the deny cache still answers the flow.
	l.forward(enginetest.TCP4("198.18.1.2", "198.18.2.2", 40000, 9998), 0)
	c.is("the deny cache answers a repeat of the uncovered flow", l.e.Snapshot().DenyHits >= 1, true)
}

func TestRegionsRebound(t *testing.T) {
	l := newRegionLab(t, regionConfig(policy.DenyDrop), nil)
	c := checker{t}
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40000, 9999), 0)
	c.is("installed", len(l.sets.Elements()) > 0, true)
	// An unrelated address change leaves the bindings: elements stay.
	l.links.Set(engine.Iface{Index: rgClient, Name: "eth0"}, engine.Iface{Index: rgServer, Name: "eth1"}, engine.Iface{Index: rgOther, Name: "eth2"},
		engine.Iface{Index: 9, Name: "dummy9"})
	if err := l.e.RefreshLinks(); err != nil {
		t.Fatal(err)
	}
	c.is("a new interface leaves the elements of the others", len(l.sets.Elements()) > 0, true)
	// eth1 renamed: its binding changes.
	l.links.Set(engine.Iface{Index: rgClient, Name: "eth0"}, engine.Iface{Index: rgServer, Name: "eth7"}, engine.Iface{Index: rgOther, Name: "eth2"})
	if err := l.e.RefreshLinks(); err != nil {
		t.Fatal(err)
	}
	c.is("a binding change removes every element", len(l.sets.Elements()), 0)
	lines := l.tracer.Lines()
	c.is("with trace lines saying why", len(lines) > 0 && lines[len(lines)-1].End == "rebound", true)
}

// The packet path stays allocation-free with regions on: a denied packet
// is offered by value over a bounded channel (here always full).
func TestNoAllocsWithRegions(t *testing.T) {
	l := newRegionLab(t, regionConfig(policy.DenyDrop), nil)
	l.tracer.Tracer.Discard = true
	ps := make([]*engine.Packet, 6000)
	for i := range ps {
		ps[i] = &engine.Packet{ID: uint32(i + 1), Hook: engine.HookForward, InIf: rgClient, OutIf: rgServer,
			Payload: udp4("198.18.1.2", "198.18.2.2", uint16(1000+i), 9999)}
	}
	i := 0
	if n := testing.AllocsPerRun(5000, func() { l.fwd(ps[i%len(ps)]); i++ }); n != 0 {
		t.Errorf("denied packets with regions on: %v allocations per packet", n)
	}
	if l.e.Snapshot().Regions.QueueFull == 0 {
		t.Error("the request queue never filled: the test did not take that path")
	}
}

// A reload whose hooks cannot be installed leaves the old policy live: the
// region table, already re-rendered for the new one, is rendered for the
// old one again, and its regions come back.
func TestRegionsWhenTheHooksFail(t *testing.T) {
	l := newRegionLab(t, regionConfig(policy.DenyDrop), nil)
	c := checker{t}
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40000, 9999), 0)
	c.is("installed", len(l.sets.Elements()) > 0, true)
	l.hooks.Err = errors.New("iptables-restore: no")
	prog, _ := policy.Compile(regionConfig(policy.DenyReject))
	if _, err := l.e.Swap(&engine.Loaded{Policy: prog, Config: regionConfig(policy.DenyReject), Hash: "r"}); err == nil {
		t.Fatal("the swap went on without hooks")
	}
	specs := l.sets.Specs
	c.is("the table is rendered for the policy still live (DROP)", len(specs) >= 3 && specs[len(specs)-2].Reject && !specs[len(specs)-1].Reject, true)
	c.is("no element is left from before", len(l.sets.Elements()), 0)
	l.forward(udp4("198.18.1.2", "198.18.2.2", 40001, 9999), 0)
	c.is("the live policy's regions are installed again", len(l.sets.Elements()) > 0, true)
}
