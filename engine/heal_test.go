package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/policy/config"
)

// Hooks someone else changed are put back, counted, and the live policy's
// plan is what goes back in (issue 13, case 1: `iptables -F FORWARD` under
// a live daemon went unnoticed).
func TestDriftedHooksAreRestored(t *testing.T) {
	l := newLab(t, config.FailClosed)
	if r, err := l.e.CheckHooks(); r || err != nil {
		t.Fatalf("check without drift: repaired %v, %v", r, err)
	}
	before := l.hooks.Count()
	l.hooks.Tamper("jump filter FORWARD -> NFGATE-FORWARD missing", false)
	if r, err := l.e.CheckHooks(); !r || err != nil {
		t.Fatalf("check with drift: repaired %v, %v", r, err)
	}
	if l.hooks.Count() != before+1 || l.hooks.Last() != l.hooks.Plans[before-1] {
		t.Errorf("want the live plan applied again: %d applies", l.hooks.Count()-before)
	}
	if st := l.e.Snapshot(); st.HookRepairs != 1 {
		t.Errorf("hook_repairs %d, want 1", st.HookRepairs)
	}
	if r, _ := l.e.CheckHooks(); r {
		t.Error("repaired again without drift")
	}
}

// A change notification triggers the check at once; without one the
// periodic check finds the drift.
func TestDriftFoundByNotificationAndByPeriod(t *testing.T) {
	for _, notify := range []bool{true, false} {
		l := newLab(t, config.FailClosed)
		var qs []engine.Queue
		for _, n := range l.e.QueueNums() {
			qs = append(qs, enginetest.NewQueue(n))
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- l.e.Run(ctx, qs) }()
		time.Sleep(50 * time.Millisecond) // Run subscribed to changes
		l.hooks.Tamper("rules of filter/NFGATE-FWD differ", notify)
		limit := 500 * time.Millisecond
		if !notify {
			limit = engine.DefaultHookCheck + time.Second
		}
		deadline := time.Now().Add(limit)
		for l.e.Snapshot().HookRepairs == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if l.e.Snapshot().HookRepairs != 1 {
			t.Errorf("notify=%v: drift not repaired within %v", notify, limit)
		}
		cancel()
		<-errc
	}
}

// A re-check that fails leaves the new policy live but marks the reload
// degraded: counted, in the result, and in the trace's reload line (it used
// to log one warning and report the reload OK).
func TestFailedRecheckDegradesTheReload(t *testing.T) {
	l := newLab(t, config.FailClosed)
	l.ct.Err = errors.New("netlink receive: invalid argument")
	res, err := l.e.Reload(&engine.Loaded{Policy: l.pol, Config: nil, Hash: "def"}, nil, nil)
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if res.RecheckErr == nil {
		t.Error("ReloadResult.RecheckErr nil after a failed re-check")
	}
	if st := l.e.Snapshot(); st.RecheckErrs != 1 || st.Reloads != 1 || st.Gen != 2 {
		t.Errorf("stats %+v", st)
	}
	ev := l.tracer.Reloads[len(l.tracer.Reloads)-1]
	if !ev.OK || len(ev.Warnings) != 1 || !strings.Contains(ev.Warnings[0], "invalid argument") {
		t.Errorf("trace reload event %+v", ev)
	}
}
