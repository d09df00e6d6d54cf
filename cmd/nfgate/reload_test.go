package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func stubProcess(t *testing.T) {
	sig, name, running := signalProcess, processName, processRunning
	t.Cleanup(func() { signalProcess, processName, processRunning = sig, name, running })
	processRunning = func(int) bool { return true }
}

func TestReloadWaitsForTheOutcome(t *testing.T) {
	stubProcess(t)
	const before = `{"gen": 1, "hash": "aaaa", "reloads": 1, "reload_errors": 0, "last_reload": {"ok": true}}`
	for _, c := range []struct {
		name      string
		after     string // what the daemon writes when signalled; "" = nothing
		code      int
		out, errs string
	}{
		{"good reload", `{"gen": 2, "hash": "bbbb", "reloads": 2, "reload_errors": 0, "last_reload": {"ok": true}}`,
			0, "policy generation 2 (bbbb) live", ""},
		{"rejected configuration", `{"gen": 1, "hash": "aaaa", "reloads": 1, "reload_errors": 1, "last_reload": {"ok": false, "errors": ["nfgate.toml:3:1: unknown field \"x\""]}}`,
			1, "", "configuration rejected; policy generation 1 (aaaa) stays live\nnfgate.toml:3:1: unknown field \"x\""},
		{"no answer", "", 1, "", "no reload outcome"},
		{"degraded: re-check incomplete", `{"gen": 2, "hash": "bbbb", "reloads": 2, "reload_errors": 0, "last_reload": {"ok": true, "degraded": true, "warnings": ["re-check of existing flows incomplete: netlink receive: invalid argument"]}}`,
			3, "", "policy generation 2 (bbbb) live, but DEGRADED"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stats := filepath.Join(t.TempDir(), "stats.json")
			if err := os.WriteFile(stats, []byte(before), 0o644); err != nil {
				t.Fatal(err)
			}
			signalled := 0
			signalProcess = func(pid int) error {
				signalled++
				if c.after != "" {
					return os.WriteFile(stats, []byte(c.after), 0o644)
				}
				return nil
			}
			processName = func(int) (string, error) { return "nfgate", nil }
			var out, errs bytes.Buffer
			code := runReload([]string{"--pid", "42", "--stats", stats, "--timeout", "300ms"}, &out, &errs)
			if code != c.code || signalled != 1 || !strings.Contains(out.String(), c.out) || !strings.Contains(errs.String(), c.errs) {
				t.Errorf("code %d (want %d), signalled %d\nstdout: %s\nstderr: %s", code, c.code, signalled, out.String(), errs.String())
			}
		})
	}
}

func TestReloadRefusesWithoutDaemonOrStats(t *testing.T) {
	stubProcess(t)
	stats := filepath.Join(t.TempDir(), "stats.json")
	signalProcess = func(int) error { t.Error("signalled"); return nil }
	for _, c := range []struct {
		name string
		proc string
		want string
	}{
		{"another process", "sshd", `process 42 is "sshd", not nfgate`},
		{"no stats file", "nfgate", "must run with --stats"},
	} {
		processName = func(int) (string, error) { return c.proc, nil }
		var out, errs bytes.Buffer
		if code := runReload([]string{"--pid", "42", "--stats", stats}, &out, &errs); code != 1 || !strings.Contains(errs.String(), c.want) {
			t.Errorf("%s: code %d, stderr %q", c.name, code, errs.String())
		}
	}
}

// The daemon died after the signal: reload says so at once instead of
// waiting for its timeout (it used to wait the full 30 s).
func TestReloadReturnsWhenTheDaemonDied(t *testing.T) {
	stubProcess(t)
	stats := filepath.Join(t.TempDir(), "stats.json")
	os.WriteFile(stats, []byte(`{"gen": 1, "reloads": 1}`), 0o644)
	dead := false
	signalProcess = func(int) error { dead = true; return nil }
	processName = func(int) (string, error) { return "nfgate", nil }
	processRunning = func(int) bool { return !dead }
	var out, errs bytes.Buffer
	start := time.Now()
	code := runReload([]string{"--pid", "42", "--stats", stats, "--timeout", "30s"}, &out, &errs)
	if code != 1 || !strings.Contains(errs.String(), "process 42 exited before reporting") || time.Since(start) > 5*time.Second {
		t.Errorf("code %d after %v: %s", code, time.Since(start), errs.String())
	}
}
