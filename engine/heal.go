package engine

import (
	"context"
	"time"
)

// Self-healing hooks. Anything else on the host may change the kernel's
// rules: `iptables -F FORWARD`, a second `nfgate cleanup`, another tool
// restoring its own snapshot, an old nfgate writing its chains. nfgate's
// hooks are its enforcement, so the engine checks them against what it
// installed (on every change notification where the backend has them,
// and every HookCheck as a backstop), reinstalls them when they differ,
// and counts and logs it. Felix does the same with its periodic refresh.

// HookVerifier is implemented by Hooks that can compare the kernel's rules
// with what their last Apply installed.
type HookVerifier interface {
	// Drift describes how the kernel's rules differ from what the last
	// Apply installed ("" when they do not, or nothing was applied).
	Drift() (string, error)
	// Changes is signalled (coalesced) when the kernel's rules may have
	// changed; nil when the backend cannot tell (iptables-legacy), where
	// the periodic check must do.
	Changes(ctx context.Context) <-chan struct{}
}

// DefaultHookCheck is the period of the backstop check of the hooks.
const DefaultHookCheck = 2 * time.Second

// healHooks runs the checks until ctx ends.
func (e *Engine) healHooks(ctx context.Context) {
	v, ok := e.opt.Hooks.(HookVerifier)
	if !ok || e.opt.HookCheck < 0 {
		return
	}
	period := e.opt.HookCheck
	if period == 0 {
		period = DefaultHookCheck
	}
	changes := v.Changes(ctx)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changes:
			// A restore is many notifications: let it finish.
			time.Sleep(20 * time.Millisecond)
			select {
			case <-changes:
			default:
			}
		}
		e.CheckHooks()
	}
}

// CheckHooks compares the kernel's rules with the live policy's hooks and
// reinstalls them if they drifted. It reports whether it repaired them.
func (e *Engine) CheckHooks() (bool, error) {
	v, ok := e.opt.Hooks.(HookVerifier)
	if !ok {
		return false, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.cur.Load()
	if s == nil {
		return false, nil
	}
	drift, err := v.Drift()
	if err != nil {
		if n := e.stats.HookCheckErrs.Add(1); n == 1 || n%100 == 0 {
			e.log.Error("checking the kernel hooks failed", "err", err, "failures", n)
		}
		return false, err
	}
	if drift == "" {
		return false, nil
	}
	t0 := time.Now()
	err = e.opt.Hooks.Apply(s.plan)
	n := e.stats.HookRepairs.Add(1)
	if err != nil {
		if f := e.stats.HookCheckErrs.Add(1); f == 1 || f%30 == 0 {
			e.log.Error("kernel hooks changed by someone else; restoring them failed (retrying)", "drift", drift, "err", err, "repairs", n)
		}
		return true, err
	}
	e.log.Warn("kernel hooks changed by someone else; restored", "drift", drift,
		"took", time.Since(t0).Round(time.Microsecond), "repairs", n)
	return true, nil
}
