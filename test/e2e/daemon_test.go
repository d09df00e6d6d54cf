//go:build linux

// Package e2e runs nfgate against the real kernel in network namespace
// labs (test/netlab): `nfgate run` runs inside the gateway namespace as a
// subprocess, real TCP/UDP/ICMP traffic crosses it, and each test logs
// every check it makes ("checked: ..."). The tests need root; without it
// they skip, saying why.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/test/netlab"
)

var nfgateBin string

func TestMain(m *testing.M) {
	code := func() int {
		if b := os.Getenv("NFGATE_E2E_BIN"); b != "" && os.Geteuid() == 0 {
			// A prebuilt binary (e.g. an older version, to measure what a
			// fix changed).
			nfgateBin = b
			return m.Run()
		}
		if os.Geteuid() == 0 {
			dir, err := os.MkdirTemp("", "nfgate-e2e")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			nfgateBin = filepath.Join(dir, "nfgate")
			out, err := exec.Command("go", "build", "-o", nfgateBin, "github.com/nfgate/nfgate/cmd/nfgate").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "building nfgate: %v\n%s", err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// syncBuf is a goroutine-safe log buffer.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type daemon struct {
	t     *testing.T
	lab   *netlab.Lab
	dir   string
	cfg   string
	stats string
	trace string
	log   *syncBuf
	cmd   *exec.Cmd
	extra []string
	// startLimit is how long start waits for the first policy (15 s).
	startLimit time.Duration
}

type stats struct {
	Gen        uint64            `json:"gen"`
	Queued     map[string]uint64 `json:"queued"`
	Accepted   map[string]uint64 `json:"accepted"`
	Dropped    map[string]uint64 `json:"dropped"`
	None       map[string]uint64 `json:"none"`
	DenyHits   uint64            `json:"deny_cache_hits"`
	Deadline   uint64            `json:"deadline_verdicts"`
	Rechecked  uint64            `json:"rechecked"`
	Cut        uint64            `json:"cut"`
	Reloads    uint64            `json:"reloads"`
	ReloadErrs uint64            `json:"reload_errors"`
}

// engineTOML is the [engine] table every test uses (one queue per stage,
// trace file in the test's directory).
func engineTOML(dir, extra string) string {
	return fmt.Sprintf("\n[engine]\nqueues = 1\ntraceFile = %q\n%s\n", filepath.Join(dir, "trace.jsonl"), extra)
}

// startDaemon writes cfg (a complete TOML file without [engine]) and runs
// `nfgate run` in the gateway namespace until its first policy is live.
func startDaemon(t *testing.T, lab *netlab.Lab, cfg, engineExtra string, args ...string) *daemon {
	t.Helper()
	if nfgateBin == "" {
		t.Skip("nfgate binary not built (needs root)")
	}
	dir := t.TempDir()
	d := &daemon{t: t, lab: lab, dir: dir, cfg: filepath.Join(dir, "nfgate.toml"), stats: filepath.Join(dir, "stats.json"),
		trace: filepath.Join(dir, "trace.jsonl"), log: &syncBuf{}, extra: args}
	d.write(cfg + engineTOML(dir, engineExtra))
	d.start()
	t.Cleanup(func() {
		// Before t.TempDir's removal (cleanups run last first): a daemon
		// still writing its stats file there made the removal fail.
		if d.cmd != nil && d.cmd.ProcessState == nil {
			netlab.Stop(d.cmd, unix.SIGTERM, 5*time.Second)
		}
		if t.Failed() {
			t.Logf("nfgate log:\n%s", d.log.String())
		}
	})
	return d
}

func (d *daemon) write(text string) {
	d.t.Helper()
	if err := os.WriteFile(d.cfg, []byte(text), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

func (d *daemon) start() {
	d.t.Helper()
	os.Remove(d.stats)
	d.cmd = d.lab.Start(netlab.GW, d.log, nfgateBin, append([]string{"run", "--config", d.cfg, "--stats", d.stats}, d.extra...)...)
	limit := d.startLimit
	if limit == 0 {
		limit = 15 * time.Second
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if s, ok := d.read(); ok && s.Gen >= 1 {
			time.Sleep(100 * time.Millisecond)
			return
		}
		if d.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("nfgate did not start:\n%s", d.log.String())
}

func (d *daemon) read() (stats, bool) {
	var s stats
	b, err := os.ReadFile(d.stats)
	if err != nil || json.Unmarshal(b, &s) != nil {
		return s, false
	}
	return s, true
}

// Stats waits for a fresh stats file (written every second) and returns it.
func (d *daemon) Stats() stats {
	d.t.Helper()
	fi, _ := os.Stat(d.stats)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if f2, err := os.Stat(d.stats); err == nil && (fi == nil || f2.ModTime().After(fi.ModTime())) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s, _ := d.read()
	return s
}

// Reload sends SIGHUP and waits until the reload was counted.
func (d *daemon) Reload() stats {
	d.t.Helper()
	before, _ := d.read()
	d.cmd.Process.Signal(unix.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s, ok := d.read(); ok && s.Reloads+s.ReloadErrs > before.Reloads+before.ReloadErrs {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("reload not reported:\n%s", d.log.String())
	return stats{}
}

// Kill kills the daemon without letting it clean up (SIGKILL).
func (d *daemon) Kill() {
	netlab.Stop(d.cmd, unix.SIGKILL, 5*time.Second)
}

// Trace returns the trace file's lines.
func (d *daemon) Trace() []map[string]any {
	b, _ := os.ReadFile(d.trace)
	var out []map[string]any
	for _, l := range strings.Split(string(b), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// checker logs and asserts one observation.
type checker struct{ t *testing.T }

func (c checker) is(what string, got, want bool) {
	c.t.Helper()
	c.t.Logf("checked: %-70s %v", what, got)
	if got != want {
		c.t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

const shortWait = 1200 * time.Millisecond

// tutorialConfig is Calico's forwarded-traffic tutorial on the lab: a host
// endpoint only on the maintenance interface, and an applyOnForward egress
// policy allowing SSH.
const tutorialConfig = `
[gateway]
nodeName = "gw"

[[globalNetworkPolicy]]
name = "allow-ssh-maintenance"
selector = "network == 'maintenance'"
applyOnForward = true
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "TCP"
[globalNetworkPolicy.egress.destination]
ports = [22]

[[hostEndpoint]]
name = "gw.maint0"
labels = { network = "maintenance" }
interfaceName = "maint0"
node = "gw"
expectedIPs = ["198.18.2.1"]
`
