package dtree

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// linearIn is the reference for Region: the lowest priority in [from, to)
// among the rules matching k.
func linearIn(rules []Rule, k *Key, from, to int32) int32 {
	best := int32(-1)
	for i := range rules {
		r := &rules[i]
		if r.Priority < from || r.Priority >= to || (best >= 0 && r.Priority >= best) {
			continue
		}
		if matches(r, k) && !empty(r) {
			best = r.Priority
		}
	}
	return best
}

// sampleIn returns a random key of b, biased towards its corners and
// towards k's own coordinates.
func sampleIn(r *rand.Rand, b *Box, k *Key) Key {
	var out Key
	for f := range numFields {
		lo, hi := b.Field(f)
		var v U128
		switch r.IntN(6) {
		case 0:
			v = lo
		case 1:
			v = hi
		case 2:
			v = KeyField(k, f)
		default:
			v = randBetween(r, lo, hi)
		}
		out = setKeyField(out, f, v)
	}
	return out
}

func randBetween(r *rand.Rand, lo, hi U128) U128 {
	d := U128{hi.Hi - lo.Hi, hi.Lo - lo.Lo}
	if hi.Lo < lo.Lo {
		d.Hi--
	}
	var off U128
	switch {
	case d.Hi == 0 && d.Lo == ^uint64(0):
		off.Lo = r.Uint64()
	case d.Hi == 0:
		off.Lo = r.Uint64N(d.Lo + 1)
	case d.Hi == ^uint64(0):
		off = U128{r.Uint64(), r.Uint64()}
	default:
		off = U128{r.Uint64N(d.Hi + 1), r.Uint64()}
		if off.Hi == d.Hi && off.Lo > d.Lo {
			off.Lo = d.Lo
		}
	}
	v := U128{lo.Hi + off.Hi, lo.Lo + off.Lo}
	if v.Lo < lo.Lo {
		v.Hi++
	}
	return v
}

func setKeyField(k Key, f int, v U128) Key {
	switch f {
	case fSrc:
		k.Src = v
	case fDst:
		k.Dst = v
	case fProto:
		k.Proto = uint32(v.Lo)
	case fSPort:
		k.SPort = uint32(v.Lo)
	case fDPort:
		k.DPort = uint32(v.Lo)
	case fICMPType:
		k.ICMPType = uint32(v.Lo)
	default:
		k.ICMPCode = uint32(v.Lo)
	}
	return k
}

// TestRegionRandom: Region's answer is Lookup's, its box holds the key, and
// every key sampled in the box gets the same answer from the reference.
func TestRegionRandom(t *testing.T) {
	full := FullBox(U128{^uint64(0), ^uint64(0)})
	for seed := range uint64(40) {
		g := newGen(seed)
		n := []int{1, 3, 10, 50, 200, 1000, 3000}[seed%7]
		rules := g.rules(n)
		tr := Build(rules)
		for range 300 {
			k := g.key()
			if !full.Contains(&k) {
				continue
			}
			from, to := int32(0), int32(math.MaxInt32)
			if g.r.IntN(3) == 0 {
				from = int32(g.r.IntN(3*n + 2))
			}
			if g.r.IntN(3) == 0 {
				to = from + int32(g.r.IntN(3*n+2))
			}
			b := full
			got := tr.Region(&k, from, to, &b)
			if want := linearIn(rules, &k, from, to); got != want {
				t.Fatalf("seed %d: Region answer %d, reference %d", seed, got, want)
			}
			if !b.Contains(&k) {
				t.Fatalf("seed %d: box %+v does not hold key %+v", seed, b, k)
			}
			for range 40 {
				s := sampleIn(g.r, &b, &k)
				if want := linearIn(rules, &s, from, to); want != got {
					t.Fatalf("seed %d, %d rules, from %d to %d: key %+v answers %d, but %+v in its box %+v answers %d",
						seed, n, from, to, k, got, s, b, want)
				}
			}
		}
	}
}

func TestRegionNoAllocs(t *testing.T) {
	g := newGen(5)
	tr := Build(g.rules(2000))
	full := FullBox(U128{^uint64(0), ^uint64(0)})
	keys := make([]Key, 0, 64)
	for len(keys) < 64 {
		if k := g.key(); full.Contains(&k) {
			keys = append(keys, k)
		}
	}
	i := 0
	if a := testing.AllocsPerRun(500, func() {
		b := full
		tr.Region(&keys[i%len(keys)], 0, math.MaxInt32, &b)
		i++
	}); a != 0 {
		t.Fatalf("Region allocates %v times per call", a)
	}
}

func TestBoxSubtract(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	g := newGen(9)
	full := FullBox(U128{^uint64(0), ^uint64(0)})
	for range 2000 {
		rs := g.rules(2)
		a, o := RuleBox(&rs[0]), RuleBox(&rs[1])
		if a.Empty() || o.Empty() {
			continue
		}
		pieces := Subtract(a, o, nil)
		if len(pieces) > 2*NumFields {
			t.Fatalf("%d pieces", len(pieces))
		}
		var sum float64
		for i := range pieces {
			sum += pieces[i].Size()
			if pieces[i].Overlaps(&o) || !a.Covers(&pieces[i]) {
				t.Fatalf("piece %+v of %+v minus %+v", pieces[i], a, o)
			}
			for j := range i {
				if pieces[i].Overlaps(&pieces[j]) {
					t.Fatalf("pieces overlap")
				}
			}
		}
		ia := a
		ov := 0.0
		if ia.Intersect(&o) {
			ov = ia.Size()
		}
		if d := a.Size() - ov - sum; math.Abs(d) > 1e-9*a.Size() {
			t.Fatalf("sizes: %g - %g != %g", a.Size(), ov, sum)
		}
		// Every key of a is in exactly one of o and the pieces.
		for range 20 {
			lo := a.Low()
			k := sampleIn(r, &a, &lo)
			if !full.Contains(&k) {
				continue
			}
			n := 0
			if o.Contains(&k) {
				n++
			}
			for i := range pieces {
				if pieces[i].Contains(&k) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("key %+v in %d parts", k, n)
			}
		}
	}
}

func BenchmarkRegion(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		g := newGen(uint64(n))
		tr := Build(g.rules(n))
		full := FullBox(U128{^uint64(0), ^uint64(0)})
		keys := make([]Key, 0, 1024)
		for len(keys) < 1024 {
			if k := g.key(); full.Contains(&k) {
				keys = append(keys, k)
			}
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				bx := full
				tr.Region(&keys[i&1023], 0, math.MaxInt32, &bx)
				i++
			}
		})
	}
}
