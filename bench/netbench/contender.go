//go:build linux

package netbench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/test/netlab"
)

// Kind is a contender's dataplane.
type Kind int

const (
	Kernel   Kind = iota // forwarding with conntrack, no filtering
	Iptables             // the policy as linear iptables rules in FORWARD
	Bare                 // go-nfqueue reader accepting everything
	BestBare             // the raw-netlink ceiling reader accepting everything (shared/bench/bestbare)
	Nfgate               // nfgate run with the policy
)

// Contender is one gateway configuration.
type Contender struct {
	Name   string
	Kind   Kind
	Rules  int // policy size (Iptables, Nfgate)
	Queues int // NFQUEUE queues (Bare, Nfgate)
	// Which figures it takes part in beyond the UDP new-flow rate.
	Full       bool   // TCP connect rate, latency, CPU/RSS
	Throughput bool   // iperf3
	Flood      bool   // allowed new flows under a denied flood
	TOML       bool   // nfgate: the policy in native TOML instead of Calico YAML
	Bin        string // nfgate: this binary instead of Options.NfgateBin (-baseline)
	// Hooks (BestBare): run under nfgate's own hooks for the policy of
	// Rules rules (installed by nfgate, which then stops and leaves them),
	// answering as nfgate answers an accepted forwarded flow: the kernel's
	// share of nfgate's cost, without nfgate's decisions.
	Hooks bool
	// RawDrop (Nfgate): also a static rule dropping the flood's port in
	// raw PREROUTING, before conntrack: what the cheapest possible
	// in-kernel drop of the flood leaves the allowed traffic (figure 5's
	// ceiling for any firewall on the machine at hand).
	RawDrop bool
}

// queueBase is the bare readers' first queue (nfgate uses its default 100).
const queueBase = 200

// bestBareBin is the ceiling reader, built by BuildBestBare ("": absent).
var bestBareBin string

// DefaultBestBareDir is where the ceiling reader's source is looked for
// (netbench -bestbare, or NETBENCH_BESTBARE).
const DefaultBestBareDir = "/work/shared/bench/bestbare"

// BuildBestBare builds the ceiling reader from its source directory into
// tmp (a copy: the source may be read-only). It returns the reason it could
// not; the harness then runs without that contender.
func BuildBestBare(src, tmp string) error {
	if _, err := os.Stat(filepath.Join(src, "main.go")); err != nil {
		return fmt.Errorf("bestbare source not found at %s (-bestbare DIR)", src)
	}
	dir := filepath.Join(tmp, "bestbare-src")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"main.go", "go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	bin := filepath.Join(tmp, "bestbare")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building bestbare: %v: %s", err, out)
	}
	bestBareBin = bin
	return nil
}

// running is a started contender.
type running struct {
	c     Contender
	lab   *Lab
	cmd   *exec.Cmd
	pid   int
	log   *syncBuf
	stats string // nfgate stats file
	cfg   string // nfgate config file
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// policyFor caches generated policies by size and seed.
type policyCache struct {
	mu sync.Mutex
	m  map[[2]uint64][]Rule
}

func (p *policyCache) get(n int, seed uint64) []Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[[2]uint64][]Rule{}
	}
	k := [2]uint64{uint64(n), seed}
	if r, ok := p.m[k]; ok {
		return r
	}
	r := Policy(n, seed)
	p.m[k] = r
	return r
}

var policies policyCache

// topology is the generated configuration's view of the lab.
func topology(queues int) Topology {
	return Topology{Node: "gw", ServerIf: "srv0", ServerIP: GWServerIP, Queues: queues}
}

// start configures the gateway for c (from a clean gateway).
func (l *Lab) start(c Contender, nfgateBin, dir string) (*running, error) {
	l.ResetGW()
	r := &running{c: c, lab: l, log: &syncBuf{}}
	switch c.Kind {
	case Kernel:
		// A conntrack match makes the namespace track connections.
		err := l.IptablesRestore("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n")
		return r, err
	case Iptables:
		return r, l.IptablesRestore(IptablesLinear(policies.get(c.Rules, 1), "srv0"))
	case Bare:
		if err := l.IptablesRestore(BareRules(queueBase, c.Queues)); err != nil {
			return nil, err
		}
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		// Run it under its own name (ps, top, perf): a symlink to this binary.
		link := filepath.Join(dir, "nfq-bare")
		if err := os.Symlink(exe, link); err != nil {
			return nil, err
		}
		r.cmd = l.Start(nsGW, r.log, "env", fmt.Sprintf("%s=bareq:%d:%d", RoleEnv, queueBase, c.Queues), link)
		r.pid = r.cmd.Process.Pid
		if err := waitFor(10*time.Second, func() bool { return strings.Contains(r.log.String(), "ready") }, r.cmd); err != nil {
			return nil, fmt.Errorf("bare reader: %v: %s", err, r.log.String())
		}
		return r, nil
	case BestBare:
		if bestBareBin == "" {
			return nil, fmt.Errorf("bestbare was not built")
		}
		q, mark := queueBase, uint32(bareMark)
		if c.Hooks {
			if err := l.nfgateHooks(c, nfgateBin, dir); err != nil {
				return nil, err
			}
			m, _ := engine.NewMarks(config.DefaultRuntime().MarkMask)
			q, mark = int(config.DefaultRuntime().QueueBase)+int(policy.StageForward)*c.Queues, m.FwdDone()|m.FwdAccept()
		} else if err := l.IptablesRestore(BareRules(queueBase, c.Queues)); err != nil {
			return nil, err
		}
		r.cmd = l.Start(nsGW, r.log, bestBareBin, "-queue", strconv.Itoa(q), "-n", strconv.Itoa(c.Queues),
			"-mark", fmt.Sprintf("%#x", mark))
		r.pid = r.cmd.Process.Pid
		if err := waitFor(10*time.Second, func() bool { return strings.Contains(r.log.String(), "ready") }, r.cmd); err != nil {
			return nil, fmt.Errorf("bestbare: %v: %s", err, r.log.String())
		}
		return r, nil
	case Nfgate:
		r, err := l.startNfgate(c, nfgateBin, dir)
		if err == nil && c.RawDrop {
			if out, err := l.Exec(nsGW, "iptables", "-t", "raw", "-I", "PREROUTING", "-p", "udp", "--dport", strconv.Itoa(PortDenied), "-j", "DROP"); err != nil {
				r.stop()
				return nil, fmt.Errorf("raw drop rule: %v: %s", err, out)
			}
		}
		return r, err
	}
	return nil, fmt.Errorf("unknown contender kind %d", c.Kind)
}

// startNfgate runs nfgate with c's policy until its first generation is live.
func (l *Lab) startNfgate(c Contender, nfgateBin, dir string) (*running, error) {
	r := &running{c: c, lab: l, log: &syncBuf{}}
	r.stats = filepath.Join(dir, "stats.json")
	os.Remove(r.stats)
	var err error
	if r.cfg, err = WriteConfig(dir, policies.get(c.Rules, 1), topology(c.Queues), !c.TOML); err != nil {
		return nil, err
	}
	if c.Bin != "" {
		nfgateBin = c.Bin
	}
	r.cmd = l.Start(nsGW, r.log, nfgateBin, "run", "--config", r.cfg, "--stats", r.stats,
		"--queue-balance", strconv.Itoa(c.Queues))
	r.pid = r.cmd.Process.Pid
	if err := waitFor(90*time.Second, func() bool { s, ok := r.nfgateStats(); return ok && s.Gen >= 1 }, r.cmd); err != nil {
		return nil, fmt.Errorf("nfgate did not start: %v:\n%s", err, r.log.String())
	}
	return r, nil
}

// nfgateHooks installs nfgate's hooks for c's policy: nfgate starts, goes
// live and stops; its kernel rules stay (as on any nfgate stop).
func (l *Lab) nfgateHooks(c Contender, nfgateBin, dir string) error {
	n := c
	n.Kind, n.Hooks = Nfgate, false
	r, err := l.startNfgate(n, nfgateBin, dir)
	if err != nil {
		return err
	}
	return netlab.Stop(r.cmd, unix.SIGTERM, 5*time.Second)
}

// stop ends c's process and clears the gateway.
func (r *running) stop() {
	if r.cmd != nil {
		netlab.Stop(r.cmd, unix.SIGTERM, 5*time.Second)
	}
	r.lab.ResetGW()
}

func waitFor(d time.Duration, ok func() bool, cmd *exec.Cmd) error {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if ok() {
			return nil
		}
		if cmd != nil && exited(cmd.Process.Pid) {
			return fmt.Errorf("it exited")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %v", d)
}

// exited reports whether pid is gone or a zombie (nobody has waited for
// it yet: the lab reaps its processes at cleanup).
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	return !ok || strings.HasPrefix(rest, "Z")
}

// nfgateStats is the part of nfgate's --stats file the harness reads.
type nfgateStats struct {
	Gen        uint64            `json:"gen"`
	Queued     map[string]uint64 `json:"queued"`
	Accepted   map[string]uint64 `json:"accepted"`
	Dropped    map[string]uint64 `json:"dropped"`
	DenyHits   uint64            `json:"deny_cache_hits"`
	Deadline   uint64            `json:"deadline_verdicts"`
	VerdictErr uint64            `json:"verdict_errors"`
	Rechecked  uint64            `json:"rechecked"`
	Cut        uint64            `json:"cut"`
	Reloads    uint64            `json:"reloads"`
	ReloadErrs uint64            `json:"reload_errors"`
	Regions    struct {
		Installed uint64 `json:"installed"`
		Packets   uint64 `json:"packets"`
	} `json:"regions"`
}

// reload sends nfgate SIGHUP and waits until the reload is reported (the
// same policy: it removes the kernel deny regions). Other kinds: nothing.
func (r *running) reload() error {
	if r.c.Kind != Nfgate || r.cmd == nil {
		return nil
	}
	before, _ := r.nfgateStats()
	r.cmd.Process.Signal(unix.SIGHUP)
	return waitFor(60*time.Second, func() bool {
		s, ok := r.nfgateStats()
		return ok && s.Reloads+s.ReloadErrs > before.Reloads+before.ReloadErrs
	}, r.cmd)
}

func (r *running) nfgateStats() (nfgateStats, bool) {
	var s nfgateStats
	b, err := os.ReadFile(r.stats)
	if err != nil || json.Unmarshal(b, &s) != nil {
		return s, false
	}
	return s, true
}

// cpu returns the process's CPU time so far (all threads, nanoseconds,
// from schedstat) or 0 when it has no process.
func (r *running) cpu() time.Duration {
	if r.pid == 0 {
		return 0
	}
	dir := fmt.Sprintf("/proc/%d/task", r.pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(v)
		}
	}
	return total
}

// rss returns the process's resident set size in bytes.
func (r *running) rss() float64 {
	if r.pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb * 1024
			}
		}
	}
	return 0
}
