//go:build linux

package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/test/netlab"
)

// liveGate is `nfgate run` in the nfgate side's gateway namespace. Each
// case's resources go to case.yaml, which nfgate.toml includes, and a
// SIGHUP reloads them.
type liveGate struct {
	s     *side
	dir   string
	cfg   string
	stats string
	log   *lockedBuf
	cmd   *exec.Cmd
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type liveStats struct {
	Gen        uint64 `json:"gen"`
	Hash       string `json:"hash"`
	Reloads    uint64 `json:"reloads"`
	ReloadErrs uint64 `json:"reload_errors"`
	LastReload *struct {
		OK     bool     `json:"ok"`
		Errors []string `json:"errors"`
	} `json:"last_reload"`
}

// mainTOML is nfgate's main file: the case's Calico YAML (the same file
// calicoctl applies to Felix) and this gateway's node name.
const mainTOML = `include = ["case.yaml"]

[gateway]
nodeName = "gw"

[engine]
queues = 1
traceFile = %q
# Per-packet verdicts: a kernel deny region would drop later probes
# without a verdict line. Regions are checked against the oracle
# (engine/regions_oracle_test.go) and end to end (test/e2e/regions_test.go).
denyRegionSize = 0
`

// emptyCase is a valid configuration with no resources, to start from.
const emptyCase = "# no resources\n"

func startLive(s *side, bin, dir string) (*liveGate, error) {
	g := &liveGate{s: s, dir: dir, cfg: filepath.Join(dir, "nfgate.toml"), stats: filepath.Join(dir, "stats.json"), log: &lockedBuf{}}
	if err := os.WriteFile(g.cfg, []byte(fmt.Sprintf(mainTOML, filepath.Join(dir, "trace.jsonl"))), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "case.yaml"), []byte(emptyCase), 0o644); err != nil {
		return nil, err
	}
	g.cmd = s.lab.Start(s.gw, g.log, bin, "run", "--config", g.cfg, "--stats", g.stats)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if st, ok := g.read(); ok && st.Gen >= 1 {
			return g, nil
		}
		if g.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("nfgate run did not start:\n%s", g.log.String())
}

func (g *liveGate) read() (liveStats, bool) {
	var st liveStats
	b, err := os.ReadFile(g.stats)
	if err != nil || json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, true
}

// load writes the case's resources and reloads; it returns the daemon's
// errors when it refused them (it then keeps the previous policy).
func (g *liveGate) load(yaml []byte) ([]string, error) {
	if err := os.WriteFile(filepath.Join(g.dir, "case.yaml"), yaml, 0o644); err != nil {
		return nil, err
	}
	before, ok := g.read()
	if !ok {
		return nil, fmt.Errorf("nfgate: no stats file:\n%s", g.tail())
	}
	if err := g.cmd.Process.Signal(unix.SIGHUP); err != nil {
		return nil, fmt.Errorf("nfgate: SIGHUP: %w", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if st, ok := g.read(); ok && st.Reloads+st.ReloadErrs > before.Reloads+before.ReloadErrs {
			if st.LastReload != nil && !st.LastReload.OK {
				return st.LastReload.Errors, nil
			}
			return nil, nil
		}
		if g.cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("nfgate: reload not reported within 20s:\n%s", g.tail())
}

func (g *liveGate) tail() string {
	s := g.log.String()
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return strings.TrimSpace(s)
}

func (g *liveGate) stop() {
	netlab.Stop(g.cmd, unix.SIGTERM, 10*time.Second)
}

func (g *liveGate) traceFile() string { return filepath.Join(g.dir, "trace.jsonl") }

// traceSize is the current length of the daemon's verdict trace.
func (g *liveGate) traceSize() int64 {
	fi, err := os.Stat(g.traceFile())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// deadlines counts the verdicts the daemon's watchdog gave since offset
// off (a decision slower than engine.deadline: the machine was too busy,
// the verdict is the failure mode's, not the policy's).
func (g *liveGate) deadlines(off int64) int {
	f, err := os.Open(g.traceFile())
	if err != nil {
		return 0
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return 0
	}
	b, _ := io.ReadAll(io.LimitReader(f, 64<<20))
	return bytes.Count(b, []byte(`"note":"deadline"`))
}
