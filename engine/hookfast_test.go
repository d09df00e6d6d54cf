package engine_test

import (
	"fmt"
	"testing"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/policy"
)

// The NF_REPEAT pass of a packet nfgate decided re-runs the whole hook; the
// fast path at the top of each stage chain sends a fresh decision straight
// to its save and verdict. The pass evaluates a handful of rules, whatever
// the failsafes and dispatch before the stage's policed chain (the forward
// pass took 11 rules before the fast path, the local ones more with
// failsafes).
func TestRepeatPassIsShort(t *testing.T) {
	plan := simPlan(true, false)
	plan.Filter = engine.Dispatch{Names: []string{"eth9", "eth8", "eth0"}} // the packet's interface last
	plan.Workload = []string{"cali+"}
	tabs := simLoad(engine.Render(plan, 4))
	m := plan.Marks
	for _, h := range simHooks {
		if h.st == policy.StageUntracked {
			continue // per packet, no conntrack: its first rules are the verdict's already
		}
		for _, v := range []policy.Verdict{policy.Accept, policy.None} {
			p := newSimPkt(h)
			var repeat int
			got, _ := deliver(t, tabs, h, p, func(mark uint32) (engine.Action, uint32) {
				repeat = p.rules
				return engine.VerdictFor(m, h.st, h.hook, v, false, mark)
			})
			repeat = p.rules - repeat
			max := 6 // jump, workload rules (forward: 2), fast path, save, verdict; or the pass chain's 2
			if repeat > max {
				t.Errorf("%s/%v: the repeat pass evaluated %d rules, want at most %d (outcome %s)", h.name, v, repeat, max, got)
			}
			t.Logf("%s/%v: repeat pass %d rules, %s", h.name, v, repeat, got)
		}
	}
}

// A later packet of a decided flow carries the decision's bits too (they
// are restored from the connmark), but it must take the full path: an
// INVALID one is dropped as Calico drops it, whatever the flow's verdict.
func TestRestoredBitsTakeTheFullPath(t *testing.T) {
	plan := simPlan(false, false)
	tabs := simLoad(engine.Render(plan, 4))
	m := plan.Marks
	for _, h := range simHooks {
		if h.st == policy.StageUntracked {
			continue
		}
		for _, v := range []policy.Verdict{policy.Accept, policy.None} {
			if v == policy.None && (h.st == policy.StageInput || h.st == policy.StageOutput) {
				continue // not remembered
			}
			p := newSimPkt(h)
			deliver(t, tabs, h, p, func(mark uint32) (engine.Action, uint32) {
				return engine.VerdictFor(m, h.st, h.hook, v, false, mark)
			})
			q := newSimPkt(h)
			q.ct, q.connmark = "INVALID", p.connmark
			if h.local {
				simHook(t, tabs, "mangle", "OUTPUT", q)
			} else if h.st != policy.StagePreDNAT {
				simHook(t, tabs, "mangle", "PREROUTING", q)
			}
			name := fmt.Sprintf("%s/%v", h.name, v)
			got, n := deliver(t, tabs, h, q, func(mark uint32) (engine.Action, uint32) { return engine.NfDrop, mark })
			if got != "DROP" || n != 0 {
				t.Errorf("%s: an INVALID packet of the decided flow: %s after %d queueings, want DROP in the kernel", name, got, n)
			}
		}
	}
}
