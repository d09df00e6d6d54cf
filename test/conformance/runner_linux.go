//go:build linux

package conformance

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfgate/nfgate/test/netlab"
)

// runner holds the two topologies, Felix, the live nfgate and explain.
type runner struct {
	t      testing.TB
	lab    *netlab.Lab
	fs, ns *side
	felix  *felixOracle
	live   *liveGate
	bin    string
	dir    string
	sum    *Summary
	nCase  int
	// felixOnly: when nfgate refuses a configuration, still probe Felix
	// (recording regression cases).
	felixOnly bool
}

// requiredTools are the programs the conformance run uses (Debian
// packages in .ci/deps.sh: etcd-server, ipset, iptables, nftables,
// conntrack, util-linux, curl, iproute2).
var requiredTools = []string{"etcd", "ipset", "iptables-nft", "ip6tables-nft", "nft", "conntrack", "curl", "nsenter", "unshare", "ip"}

// needs skips or fails (under CI=true) when the run cannot happen here.
func needs(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("conformance: needs root (network namespaces, Felix); skipping")
	}
	kit := findKit()
	if kit == "" {
		t.Skip("conformance: the Calico kit is absent (set NFGATE_CALICO_DIR, or put it at <repo>/../shared/calico or /work/shared/calico); skipping")
	}
	for _, f := range []string{"felix-oracle.sh", "calico-felix", "calicoctl"} {
		if _, err := os.Stat(filepath.Join(kit, f)); err != nil {
			t.Fatalf("conformance: the Calico kit at %s lacks %s", kit, f)
		}
	}
	for _, tool := range requiredTools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("conformance: %s not installed (.ci/deps.sh installs it)", tool)
			}
			t.Skipf("conformance: %s not installed (run `make deps`); skipping", tool)
		}
	}
	return kit
}

func newRunner(t testing.TB, kit string) *runner {
	t.Helper()
	r := &runner{t: t, dir: t.TempDir(), sum: newSummary()}
	r.bin = filepath.Join(r.dir, "nfgate")
	if out, err := exec.Command("go", "build", "-o", r.bin, "github.com/nfgate/nfgate/cmd/nfgate").CombinedOutput(); err != nil {
		t.Fatalf("building nfgate: %v\n%s", err, out)
	}
	r.lab = netlab.New(t)
	r.fs = buildSide(t, r.lab, "felix")
	t.Cleanup(r.fs.close)
	r.ns = buildSide(t, r.lab, "nfgate")
	t.Cleanup(r.ns.close)

	state := filepath.Join(r.dir, "felix-state")
	fdir := filepath.Join(r.dir, "felix")
	os.MkdirAll(fdir, 0o755)
	f, err := startFelix(kit, r.lab.NS(r.fs.gw), state, fdir, t.Logf)
	if err != nil {
		t.Fatalf("%v", err)
	}
	r.felix = f
	// Registered after the lab's cleanup, so it runs before the namespaces go.
	t.Cleanup(func() {
		if err := f.down(); err != nil {
			t.Errorf("%v", err)
		}
	})
	ldir := filepath.Join(r.dir, "live")
	os.MkdirAll(ldir, 0o755)
	g, err := startLive(r.ns, r.bin, ldir)
	if err != nil {
		t.Fatalf("%v", err)
	}
	r.live = g
	t.Cleanup(g.stop)
	return r
}

// caseOutcome is what running one case gave.
type caseOutcome struct {
	Results       []*Result
	Disagreements []Disagreement
	// Config: the sides disagreed on accepting the configuration.
	Config string
	// Refused: both refused it (nothing to compare).
	Refused bool
	// NoReference: Felix could not program the dataplane.
	NoReference bool
}

// runCase runs one configuration with its probes through Felix, the live
// nfgate and explain. An error is a failure of the machinery, never a
// verdict difference.
func (r *runner) runCase(c *Case) (*caseOutcome, error) {
	r.nCase++
	yaml := c.Res.YAML()
	exdir := filepath.Join(r.dir, fmt.Sprintf("explain-%d", r.nCase))
	os.MkdirAll(exdir, 0o755)
	defer os.RemoveAll(exdir)
	ex, nfRefused, err := newExplainer(exdir, yaml, r.bin)
	if err != nil {
		return nil, err
	}

	var wg sync.WaitGroup
	var felixRefused string
	var felixErr, liveErr error
	var liveRefused []string
	wg.Add(1)
	go func() { defer wg.Done(); felixRefused, felixErr = r.felix.load(&c.Res) }()
	if nfRefused == "" {
		wg.Add(1)
		go func() { defer wg.Done(); liveRefused, liveErr = r.live.load(yaml) }()
	}
	// The command line, for every probe it can express, while Felix converges.
	cmds := make([]Verdicts, len(c.Probes))
	var cmdErr error
	if ex != nil {
		var mu sync.Mutex
		sem := make(chan struct{}, 2)
		for i, p := range c.Probes {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int, p *Probe) {
				defer wg.Done()
				defer func() { <-sem }()
				v, ok, err := ex.command(p)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && cmdErr == nil {
					cmdErr = err
				}
				if ok {
					cmds[i] = v
				}
			}(i, p)
		}
	}
	wg.Wait()
	out := &caseOutcome{}
	var pe *programError
	if errors.As(felixErr, &pe) {
		out.Config = pe.Error()
		out.NoReference = true
		return out, errors.Join(liveErr, cmdErr)
	}
	if err := errors.Join(felixErr, liveErr, cmdErr); err != nil {
		return nil, err
	}
	switch {
	case nfRefused != "" && felixRefused != "":
		out.Refused = true
		out.Config = "both refused: nfgate: " + firstLines(nfRefused, 2) + "; calicoctl: " + firstLines(felixRefused, 2)
		return out, nil
	case nfRefused != "":
		out.Config = "nfgate refused a configuration calicoctl applied: " + firstLines(nfRefused, 3)
		if r.felixOnly && len(c.Probes) > 0 {
			// Recording: Felix's verdicts are what the fix must give.
			if err := r.fs.flushConntrack(); err != nil {
				return nil, err
			}
			fo, err := r.fs.probeAll(c.Probes)
			if err != nil {
				return nil, err
			}
			for _, p := range c.Probes {
				res := &Result{Probe: p, Path: p.Path()}
				if f := fo[p.ID]; f != nil {
					if f.CT == "untracked" && (f.Hooks["raw PREROUTING"] == vAccept || f.Hooks["raw OUTPUT"] == vAccept) {
						res.Path = p.pathNoNAT()
					}
					res.Felix = kernelStages(res.Path, f)
				} else {
					res.Harness = "probe not traced"
				}
				out.Results = append(out.Results, res)
			}
		}
		return out, nil
	case felixRefused != "":
		out.Config = "calicoctl refused a configuration nfgate loads: " + firstLines(felixRefused, 3)
		return out, nil
	case len(liveRefused) > 0:
		return nil, fmt.Errorf("the live nfgate refused a configuration explain loads: %v", liveRefused)
	}

	var fo, lo map[uint16]*Observed
	busy := false // the live daemon's watchdog answered: no policy verdicts to compare
	for attempt := 1; ; attempt++ {
		if err := errors.Join(r.fs.flushConntrack(), r.ns.flushConntrack()); err != nil {
			return nil, err
		}
		var ferr, lerr error
		toff := r.live.traceSize()
		wg.Add(2)
		go func() { defer wg.Done(); fo, ferr = r.fs.probeAll(c.Probes) }()
		go func() { defer wg.Done(); lo, lerr = r.ns.probeAll(c.Probes) }()
		wg.Wait()
		if ferr != nil || lerr != nil {
			// Lost trace events (ENOBUFS): transport noise.
			if attempt == 4 {
				return nil, errors.Join(ferr, lerr)
			}
			r.sum.Harness[fmt.Sprintf("case re-sent (%v)", errors.Join(ferr, lerr))]++
			time.Sleep(200 * time.Millisecond)
			continue
		}
		time.Sleep(50 * time.Millisecond) // the trace writer flushes when idle
		deadlines := r.live.deadlines(toff)
		missing := 0
		for _, p := range c.Probes {
			if fo[p.ID] == nil || lo[p.ID] == nil {
				missing++
				if os.Getenv("NFGATE_CONFORMANCE_DEBUG") != "" {
					r.t.Logf("untraced (felix %v, live %v): %s", fo[p.ID] != nil, lo[p.ID] != nil, p.Describe())
				}
			}
		}
		if deadlines == 0 && missing == 0 {
			break
		}
		// Only transport noise and machine load are retried: a probe the
		// trace never showed, a verdict the daemon's watchdog gave when a
		// decision took longer than its deadline; never a policy verdict.
		if attempt == 4 {
			busy = deadlines > 0
			break
		}
		r.sum.Harness[fmt.Sprintf("case re-sent (%d probes untraced, %d deadline verdicts)", missing, deadlines)]++
		time.Sleep(time.Duration(attempt) * 300 * time.Millisecond)
	}

	for i, p := range c.Probes {
		res := &Result{Probe: p}
		out.Results = append(out.Results, res)
		f, l := fo[p.ID], lo[p.ID]
		if f == nil || l == nil {
			res.Harness = "probe not traced"
			continue
		}
		if busy {
			res.Harness = "live: deadline verdicts (machine too busy)"
			continue
		}
		// Each evaluation takes its own route: an untracked Allow NOTRACKs
		// the packet, so no DNAT rule sees it and it goes where the
		// original destination routes.
		kpath := func(o *Observed) Path {
			if o.CT == "untracked" && (o.Hooks["raw PREROUTING"] == vAccept || o.Hooks["raw OUTPUT"] == vAccept) {
				return p.pathNoNAT()
			}
			return p.Path()
		}
		fpath, lpath := kpath(f), kpath(l)
		res.Path, res.LivePath = fpath, lpath
		res.Felix, res.Live = kernelStages(fpath, f), kernelStages(lpath, l)
		res.Explain, res.Why, res.Decided, res.ExplainPath = ex.explainProbe(p)
		exNoNAT := res.ExplainPath != p.Path()
		res.FChain, res.LChain, res.CT = f.Chain, l.Chain, f.CT
		if cmds[i] != nil && !exNoNAT {
			res.CmdChecked = true
			if !sameVerdicts(cmds[i], res.Explain) {
				res.Harness = fmt.Sprintf("nfgate explain command and walk differ: %v vs %v", cmds[i], res.Explain)
				continue
			}
		}
		fm, lm := checkPath(fpath, f, r.fs.ifName), checkPath(lpath, l, r.ns.ifName)
		if fm != "" {
			fm = "felix: " + fm
		}
		if lm != "" {
			lm = "live: " + lm
		}
		if m := strings.TrimSpace(fm + " " + lm); m != "" {
			res.Harness = "path model: " + m
			if os.Getenv("NFGATE_CONFORMANCE_DEBUG") != "" {
				r.t.Logf("path model: %s: %s; felix %v ct %s; live %v ct %s", p.Describe(), m, f.Hooks, f.CT, l.Hooks, l.CT)
			}
			continue
		}
		want := p.expectedCT()
		for _, o := range []*Observed{f, l} {
			unt := o.Hooks["raw PREROUTING"] == vAccept || o.Hooks["raw OUTPUT"] == vAccept
			rawDrop := o.Hooks["raw PREROUTING"] == vDrop || o.Hooks["raw OUTPUT"] == vDrop
			if o.CT != want && !(o.CT == "untracked" && unt) && !(o.CT == "" && rawDrop) {
				res.Harness = fmt.Sprintf("conntrack state: kernel %s, model %s", o.CT, want)
				if os.Getenv("NFGATE_CONFORMANCE_DEBUG") != "" {
					r.t.Logf("%s: %s %v", res.Harness, p.Describe(), o.Hooks)
				}
			}
		}
		if res.Harness != "" {
			continue
		}
		ds := res.disagreements(c.Name)
		classifyProbe(c, ds, res)
		out.Disagreements = append(out.Disagreements, ds...)
	}
	classifyDenyCache(out.Results, out.Disagreements)
	return out, nil
}

func resultOf(rs []*Result, p *Probe) *Result {
	for _, r := range rs {
		if r.Probe == p {
			return r
		}
	}
	return nil
}

func sameVerdicts(a, b Verdicts) bool { // same stages, same verdicts
	return sameStages(a, b)
}

// record adds a case's outcome to the summary.
func (r *runner) record(c *Case, o *caseOutcome) {
	s := r.sum
	s.Cases++
	for _, p := range c.Pairs {
		s.PairsCovered[p] = true
	}
	switch {
	case o.NoReference:
		s.NoReference = append(s.NoReference, c.Name+": "+o.Config)
		return
	case o.Refused:
		s.ConfigAgree++
		s.ConfigBoth = append(s.ConfigBoth, c.Name+": "+o.Config)
		return
	case o.Config != "":
		cause := configCause(c, o.Config)
		s.ConfigRejected = append(s.ConfigRejected, configDiff{c.Name, cause, o.Config})
		s.ByCause[cause]++
		return
	}
	s.ConfigAgree++
	s.CasesCompared++
	for _, res := range o.Results {
		s.add(res)
	}
	for _, d := range o.Disagreements {
		s.Disagreements = append(s.Disagreements, d)
		if !d.Consequence {
			s.ByCause[d.Cause]++
		}
	}
}
