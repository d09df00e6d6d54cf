package engine_test

import (
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/policy/dtree"
	"github.com/nfgate/nfgate/policy/oracle"
	"github.com/nfgate/nfgate/policy/policytest"
)

// tableDecoder "decodes" a payload holding an index into a table of
// packets: the property test hands the engine any packet policytest makes.
type tableDecoder struct{ pkts *[]classify.Packet }

func (d tableDecoder) Decode(b []byte, p *classify.Packet) {
	ct := p.CT
	*p = (*d.pkts)[binary.BigEndian.Uint32(b)]
	p.CT = ct
}

// randIn is a random value of [lo, hi], often a bound.
func randIn(r *rand.Rand, lo, hi dtree.U128) dtree.U128 {
	switch r.IntN(4) {
	case 0:
		return lo
	case 1:
		return hi
	}
	if lo.Hi == hi.Hi {
		if hi.Lo-lo.Lo == ^uint64(0) {
			return dtree.U128{Hi: lo.Hi, Lo: r.Uint64()}
		}
		return dtree.U128{Hi: lo.Hi, Lo: lo.Lo + r.Uint64N(hi.Lo-lo.Lo+1)}
	}
	h := r.Uint64()
	if hi.Hi-lo.Hi != ^uint64(0) {
		h = lo.Hi + r.Uint64N(hi.Hi-lo.Hi+1)
	}
	v := dtree.U128{Hi: h, Lo: r.Uint64()}
	if h == lo.Hi && v.Lo < lo.Lo {
		v.Lo = lo.Lo
	}
	if h == hi.Hi && v.Lo > hi.Lo {
		v.Lo = hi.Lo
	}
	return v
}

func randSmall(r *rand.Rand, lo, hi uint32) uint32 {
	switch r.IntN(4) {
	case 0:
		return lo
	case 1:
		return hi
	}
	return lo + r.Uint32N(hi-lo+1)
}

// TestRegionsAgainstTheOracle: random configurations, random packets
// denied at the preDNAT, input and forward stages on random interfaces;
// every element the installer makes is checked on random packets inside
// it against the in-order oracle, the way the kernel applies it: the
// packet reaches the element's chain unless an earlier stage on its
// in-interface dropped it or set the accept-mark (untracked or preDNAT
// Allow: the element's rule lets marked packets through), and there the
// oracle must deny it, at that stage, for the bindings of the element's
// own interfaces, without a Log rule.
func TestRegionsAgainstTheOracle(t *testing.T) {
	seeds, samples := 400, 40
	if testing.Short() {
		seeds = 60
	}
	names := map[uint32]string{1: "eth0", 2: "eth1", 3: "eth2", 4: "cali0"}
	var ifaces []engine.Iface
	for i := uint32(1); i <= 4; i++ {
		ifaces = append(ifaces, engine.Iface{Index: i, Name: names[i]})
	}
	stages := []policy.Stage{policy.StagePreDNAT, policy.StageInput, policy.StageForward}
	hooks := map[policy.Stage]uint8{policy.StagePreDNAT: engine.HookPrerouting, policy.StageInput: engine.HookInput, policy.StageForward: engine.HookForward}
	total, checked := 0, 0
	for seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 14))
		cfg := policytest.RandConfig(r)
		prog, err := policy.Compile(cfg)
		if err != nil {
			continue
		}
		var pkts []classify.Packet
		sets := enginetest.NewRegionSets()
		rt := config.DefaultRuntime()
		rt.Queues = 1
		e, err := engine.New(engine.Options{Runtime: rt, Hooks: &enginetest.Hooks{}, Links: enginetest.NewLinks(ifaces...),
			Conntrack: &enginetest.Conntrack{}, Tracer: &enginetest.Tracer{Discard: true}, Log: slog.New(slog.DiscardHandler),
			Regions: sets, NewDecoder: func() engine.Decoder { return tableDecoder{&pkts} }})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Swap(&engine.Loaded{Policy: prog, Config: cfg, Hash: "h"}); err != nil {
			t.Fatal(err)
		}
		handlers := map[policy.Stage]func(*engine.Packet){}
		for _, st := range stages {
			handlers[st] = e.HandlerForTest(nullQueue{100 + uint16(st)})
		}
		m := e.Marks()
		for i := range 200 {
			p := policytest.RandPacket(r)
			pkts = append(pkts, p)
			st := policytest.Pick(r, stages)
			qp := &engine.Packet{ID: uint32(i + 1), Hook: hooks[st], InIf: uint32(1 + r.IntN(4)),
				Payload: binary.BigEndian.AppendUint32(nil, uint32(len(pkts)-1))}
			if st == policy.StageForward {
				qp.OutIf = uint32(1 + r.IntN(4))
				if r.IntN(8) == 0 {
					qp.Mark = m.Accepted
				}
			}
			handlers[st](qp)
			if i%16 == 15 {
				e.InstallRegionsForTest()
			}
		}
		e.InstallRegionsForTest()
		if st := e.Snapshot().Regions; st.Mismatch != 0 || st.Errors != 0 {
			t.Fatalf("seed %d: the installer saw %d mismatches and %d kernel errors", seed, st.Mismatch, st.Errors)
		}
		o := oracle.New(prog)
		bind := func(idx uint32) policy.Binding { return prog.Bind(policy.Interface{Name: names[idx]}) }
		for _, el := range sets.Elements() {
			total++
			box := engine.ElemBox(el)
			in, out := bind(el.InIf), bind(el.OutIf)
			for range samples {
				k := dtree.Key{Src: randIn(r, box.Src[0], box.Src[1]), Dst: randIn(r, box.Dst[0], box.Dst[1]),
					Proto: randSmall(r, box.Proto[0], box.Proto[1]), SPort: randSmall(r, box.SPort[0], box.SPort[1]),
					DPort: randSmall(r, box.DPort[0], box.DPort[1]), ICMPType: randSmall(r, box.ICMPType[0], box.ICMPType[1]),
					ICMPCode: randSmall(r, box.ICMPCode[0], box.ICMPCode[1])}
				if !engine.ElemHasKey(&el, &k) {
					continue // a special protocol inside an "other" range: the kernel set never sees it
				}
				pkt := policy.PacketAt(el.Fam, &k, classify.CTNew)
				// Earlier stages on the in-interface (the kernel runs them
				// first): a drop there or an accept-mark means the element
				// never sees the packet.
				up := pkt
				up.CT = classify.CTUntracked
				if d := o.Untracked(in.Untracked, policy.Ingress, &up); d.Verdict != policy.None {
					continue
				}
				if el.Stage != policy.StagePreDNAT {
					if d := o.PreDNAT(in.PreDNAT, &pkt); d.Verdict != policy.None {
						continue
					}
				}
				var d policy.Decision
				switch el.Stage {
				case policy.StagePreDNAT:
					d = o.PreDNAT(in.PreDNAT, &pkt)
				case policy.StageInput:
					d = o.Local(in.Filter, policy.Ingress, &pkt)
				case policy.StageForward:
					d = o.Forward(in.ForwardIn, out.Filter, false, &pkt)
				}
				checked++
				if d.Verdict != policy.Drop || d.Logged {
					t.Fatalf("seed %d: element %s in=%s out=%s %s holds %+v, which the oracle gives %+v",
						seed, el.Stage, names[el.InIf], names[el.OutIf], box, pkt, d)
				}
			}
		}
	}
	t.Logf("%d elements, %d packets inside them checked against the oracle", total, checked)
	if total < seeds/2 || checked < total {
		t.Errorf("too few elements (%d) or checks (%d) for the test to mean much", total, checked)
	}
	_ = time.Second
}
