//go:build linux

package conformance

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// felixOracle drives the Calico kit's felix-oracle.sh: the real Felix
// v3.32.1 in iptables mode on the felix side's gateway namespace, on its
// own etcd, resources applied with the real calicoctl.
type felixOracle struct {
	script string
	state  string
	dir    string // scratch files
	prev   *Resources
	prevFC string // the FelixConfiguration last applied
	log    func(string, ...any)
}

// findKit locates the Calico kit: $NFGATE_CALICO_DIR, else
// <repo root>/../shared/calico, else /work/shared/calico. It returns ""
// when none holds felix-oracle.sh.
func findKit() string {
	var cands []string
	if d := os.Getenv("NFGATE_CALICO_DIR"); d != "" {
		return d // explicit: used as is (a missing kit then fails loudly)
	}
	if root, err := repoRoot(); err == nil {
		cands = append(cands, filepath.Join(root, "..", "shared", "calico"))
	}
	cands = append(cands, "/work/shared/calico")
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(c, "felix-oracle.sh")); err == nil {
			return c
		}
	}
	return ""
}

func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		d = p
	}
}

func (f *felixOracle) run(timeout time.Duration, args ...string) (string, error) {
	return f.runCtx(context.Background(), timeout, args...)
}

func (f *felixOracle) runCtx(parent context.Context, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.script, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "FELIX_ORACLE_STATE="+f.state, "FELIX_ORACLE_TIMEOUT=60")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil && parent.Err() == nil {
		err = fmt.Errorf("timed out after %v", timeout)
	}
	return out.String(), err
}

func startFelix(kit, gwNS, state, dir string, log func(string, ...any)) (*felixOracle, error) {
	f := &felixOracle{script: filepath.Join(kit, "felix-oracle.sh"), state: state, dir: dir, log: log,
		prevFC: string(marshalDocs([]doc{felixDoc(nil)}))}
	if out, err := f.run(3*time.Minute, "up", gwNS); err != nil {
		return nil, fmt.Errorf("felix-oracle.sh up: %v\n%s", err, out)
	}
	f.prev = &Resources{}
	return f, nil
}

func (f *felixOracle) down() error {
	out, err := f.run(2*time.Minute, "down")
	if err != nil {
		return fmt.Errorf("felix-oracle.sh down: %v\n%s", err, out)
	}
	return nil
}

// load makes Felix's datastore hold exactly r: it deletes what the last
// case had and r has not, applies r, and waits until Felix has converged.
// rejected is calicoctl's message when it refused r (Felix then goes
// back to an empty configuration).
func (f *felixOracle) load(r *Resources) (rejected string, err error) {
	next := map[resourceKey]bool{}
	for _, k := range r.keys() {
		next[k] = true
	}
	tierOf := map[string]string{}
	for _, p := range r.Policies {
		tierOf[p.Name] = p.Spec.Tier
	}
	var del []doc
	if f.prev != nil {
		for _, kind := range []string{"GlobalNetworkPolicy", "Tier", "HostEndpoint", "Profile", "GlobalNetworkSet"} {
			for _, d := range f.prev.docs(false) {
				if d.Kind != kind {
					continue
				}
				gone := !next[resourceKey{d.Kind, d.Metadata.Name}]
				if d.Kind == "GlobalNetworkPolicy" {
					if t, ok := tierOf[d.Metadata.Name]; ok && t != d.Spec.(GNPSpec).Tier {
						gone = true // a policy does not change tier: delete, then create
					}
				}
				if gone {
					del = append(del, doc{APIVersion: d.APIVersion, Kind: d.Kind, Metadata: Meta{Name: d.Metadata.Name}, Spec: map[string]any{}})
				}
			}
		}
	}
	if len(del) > 0 {
		p := filepath.Join(f.dir, "delete.yaml")
		if err := os.WriteFile(p, marshalDocs(del), 0o644); err != nil {
			return "", err
		}
		if out, err := f.run(time.Minute, "calicoctl", "delete", "--skip-not-exists", "-f", p); err != nil {
			return "", fmt.Errorf("calicoctl delete: %v\n%s", err, out)
		}
	}
	docs := r.docs(false)
	fc := string(marshalDocs([]doc{felixDoc(r.Felix)}))
	if fc != f.prevFC {
		docs = append(docs, felixDoc(r.Felix))
	}
	if len(docs) == 0 {
		// Nothing to apply: wait for the deletions to take effect.
		if out, err := f.run(2*time.Minute, "wait"); err != nil {
			return "", fmt.Errorf("felix-oracle.sh wait: %v\n%s", err, out)
		}
		f.prev = &Resources{}
		return "", nil
	}
	p := filepath.Join(f.dir, "apply.yaml")
	if err := os.WriteFile(p, marshalDocs(docs), 0o644); err != nil {
		return "", err
	}
	off := f.logSize()
	ctx, cancel := context.WithCancel(context.Background())
	failed := make(chan string, 1)
	go func() {
		// Felix that cannot program a table retries forever: stop waiting.
		for ctx.Err() == nil {
			if m := f.programFailure(off); m != "" {
				failed <- m
				cancel()
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	out, err := f.runCtx(ctx, 2*time.Minute, "apply", p)
	cancel()
	select {
	case m := <-failed:
		f.prev = nil
		if rout, rerr := f.run(3*time.Minute, "reset"); rerr != nil {
			return "", fmt.Errorf("felix-oracle.sh reset after a failed dataplane update: %v\n%s", rerr, rout)
		}
		f.prev, f.prevFC = &Resources{}, string(marshalDocs([]doc{felixDoc(nil)}))
		return "", &programError{m}
	default:
	}
	if err != nil {
		if lo := strings.ToLower(out); strings.Contains(lo, "failed to") || strings.Contains(lo, "error with field") || strings.Contains(lo, "hit error") {
			// calicoctl refused (part of) the case: back to a clean slate.
			f.prev = nil
			if rout, rerr := f.run(3*time.Minute, "reset"); rerr != nil {
				return "", fmt.Errorf("felix-oracle.sh reset after a rejected apply: %v\n%s", rerr, rout)
			}
			f.prev, f.prevFC = &Resources{}, string(marshalDocs([]doc{felixDoc(nil)}))
			return firstLines(out, 6), nil
		}
		return "", fmt.Errorf("felix-oracle.sh apply: %v\n%s\nfelix.log:\n%s", err, out, f.logTail(60))
	}
	cp := *r
	f.prev, f.prevFC = &cp, fc
	return "", nil
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// logTail is the end of Felix's log, for failures.
func (f *felixOracle) logTail(n int) string {
	b, err := os.ReadFile(filepath.Join(f.state, "felix.log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (f *felixOracle) logSize() int64 {
	fi, err := os.Stat(filepath.Join(f.state, "felix.log"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// programFailure returns Felix's complaint when it failed to write its
// rules since offset off, or "".
func (f *felixOracle) programFailure(off int64) string {
	fh, err := os.Open(filepath.Join(f.state, "felix.log"))
	if err != nil {
		return ""
	}
	defer fh.Close()
	if _, err := fh.Seek(off, 0); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(fh, 8<<20))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "Failed to execute ip(6)tables-restore") {
			if i := strings.Index(l, "errorOutput="); i >= 0 {
				l = l[i:]
			}
			if len(l) > 300 {
				l = l[:300]
			}
			return l
		}
	}
	return ""
}

// programError: Felix could not write the case's rules (the dataplane
// keeps older rules, so there is no reference verdict).
type programError struct{ msg string }

func (e *programError) Error() string { return "Felix failed to program the dataplane: " + e.msg }
