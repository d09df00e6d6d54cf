package enginetest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nfgate/nfgate/engine"
)

// RegionSets is a fake engine.RegionSets: it keeps the elements it was
// given (with their timeout, never expiring on its own) and per-element
// packet counters a test sets.
type RegionSets struct {
	mu      sync.Mutex
	Els     map[engine.RegionElem]time.Duration
	Packets map[engine.RegionElem]uint64
	Specs   []engine.RegionSpec // every Reset, in order
	Resets  int
	Removed int
	// Added counts elements ever added; Adds the Add calls.
	Added, Adds int
	// Fail makes the next calls of the named method ("Reset", "Add",
	// "Remove", "Delete", "Counters") fail while set.
	Fail  map[string]bool
	drift string
	ch    chan struct{}
	// Log records the calls in order ("Reset", "Add", ...), for tests
	// that check their order against other events.
	Log []string
	// OnReset, when set, runs inside every Reset (before it returns).
	OnReset func()
}

// NewRegionSets returns an empty fake.
func NewRegionSets() *RegionSets {
	return &RegionSets{Els: map[engine.RegionElem]time.Duration{}, Packets: map[engine.RegionElem]uint64{},
		Fail: map[string]bool{}, ch: make(chan struct{}, 1)}
}

var errFake = errors.New("enginetest: fake kernel refused")

func (r *RegionSets) Reset(spec *engine.RegionSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Log = append(r.Log, "Reset")
	if r.Fail["Reset"] {
		return errFake
	}
	r.Resets++
	r.Specs = append(r.Specs, *spec)
	if r.OnReset != nil {
		r.OnReset()
	}
	clear(r.Els)
	clear(r.Packets)
	r.drift = ""
	return nil
}

func (r *RegionSets) Add(els []engine.RegionElem, timeout time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Log = append(r.Log, "Add")
	if r.Fail["Add"] {
		return errFake
	}
	for _, el := range els {
		for o := range r.Els {
			if corner(&o, &el) && o != el {
				return errors.New("enginetest: element with a corner inside another (nf_tables refuses it)")
			}
		}
	}
	for _, el := range els {
		r.Els[el] = timeout
	}
	r.Added += len(els)
	r.Adds++
	return nil
}

// corner is what nf_tables' concatenated range sets refuse: an element
// whose lowest or highest corner lies inside another of the same set and
// interfaces.
func corner(o, p *engine.RegionElem) bool {
	if o.Stage != p.Stage || o.Fam != p.Fam || o.Kind != p.Kind || o.InIf != p.InIf || o.OutIf != p.OutIf {
		return false
	}
	inside := func(c int) bool {
		in := func(lo, hi, v [2]uint64) bool {
			return !(v[0] < lo[0] || (v[0] == lo[0] && v[1] < lo[1])) && !(hi[0] < v[0] || (hi[0] == v[0] && hi[1] < v[1]))
		}
		u := func(x engine.RegionElem, i int) ([2]uint64, [2]uint64) {
			return [2]uint64{x.Src[i].Hi, x.Src[i].Lo}, [2]uint64{x.Dst[i].Hi, x.Dst[i].Lo}
		}
		os0, od0 := u(*o, 0)
		os1, od1 := u(*o, 1)
		ps, pd := u(*p, c)
		return in(os0, os1, ps) && in(od0, od1, pd) &&
			o.Proto[0] <= p.Proto[c] && p.Proto[c] <= o.Proto[1] &&
			o.A[0] <= p.A[c] && p.A[c] <= o.A[1] && o.B[0] <= p.B[c] && p.B[c] <= o.B[1]
	}
	return inside(0) || inside(1)
}

func (r *RegionSets) Delete(els []engine.RegionElem) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Log = append(r.Log, "Delete")
	if r.Fail["Delete"] {
		return errFake
	}
	for _, el := range els {
		delete(r.Els, el)
		delete(r.Packets, el)
	}
	return nil
}

func (r *RegionSets) Counters(fn func(el engine.RegionElem, packets, bytes uint64)) error {
	r.mu.Lock()
	if r.Fail["Counters"] {
		r.mu.Unlock()
		return errFake
	}
	type ec struct {
		el engine.RegionElem
		p  uint64
	}
	var out []ec
	for el := range r.Els {
		out = append(out, ec{el, r.Packets[el]})
	}
	r.mu.Unlock()
	for _, e := range out {
		fn(e.el, e.p, e.p*100)
	}
	return nil
}

func (r *RegionSets) Drift() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drift, nil
}

func (r *RegionSets) Changes(ctx context.Context) <-chan struct{} { return r.ch }

func (r *RegionSets) Remove() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Log = append(r.Log, "Remove")
	if r.Fail["Remove"] {
		return errFake
	}
	r.Removed++
	clear(r.Els)
	return nil
}

// Tamper simulates someone else changing the table: its elements are gone
// and Drift reports what.
func (r *RegionSets) Tamper(what string) {
	r.mu.Lock()
	r.drift = what
	clear(r.Els)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

// Elements returns a copy of the installed elements.
func (r *RegionSets) Elements() []engine.RegionElem {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]engine.RegionElem, 0, len(r.Els))
	for el := range r.Els {
		out = append(out, el)
	}
	return out
}

// Count sets an element's packet counter.
func (r *RegionSets) Count(el engine.RegionElem, packets uint64) {
	r.mu.Lock()
	r.Packets[el] = packets
	r.mu.Unlock()
}

// Note appends an event of the test's own to Log.
func (r *RegionSets) Note(s string) {
	r.mu.Lock()
	r.Log = append(r.Log, s)
	r.mu.Unlock()
}

// RegionTracer is a Tracer that also keeps region lines.
type RegionTracer struct {
	*Tracer
	rmu     sync.Mutex
	Regions []engine.RegionInfo
}

func (t *RegionTracer) Region(ev engine.RegionInfo) {
	t.rmu.Lock()
	t.Regions = append(t.Regions, ev)
	t.rmu.Unlock()
}

// Lines returns a copy of the region lines.
func (t *RegionTracer) Lines() []engine.RegionInfo {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	return append([]engine.RegionInfo(nil), t.Regions...)
}
