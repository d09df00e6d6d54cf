//go:build linux

// Package ipt installs nfgate's hooks with iptables-restore, for IPv4
// (iptables) and IPv6 (ip6tables), with the iptables-nft or iptables-legacy
// backend. Each family is one `iptables-restore --noflush` transaction, so
// the kernel never sees a half-updated ruleset. nfgate only declares, fills
// and deletes chains named NFGATE-* and its own jump rules at the top of the
// built-in chains; every other rule is left alone.
package ipt

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"

	"github.com/nfgate/nfgate/engine"
)

// Installer implements engine.Hooks and engine.HookVerifier. Safe for
// concurrent use.
type Installer struct {
	Backend string // "nft" or "legacy"
	mu      sync.Mutex
	fams    []family
	// want is, per family, what a save showed of nfgate right after the
	// last Apply (state.ours): Drift compares the kernel with it.
	want map[uint8]string
}

type family struct {
	num                 uint8
	saveBin, restoreBin string
}

func look(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

func tools(backend string) []family {
	var fs []family
	for _, f := range []struct {
		num uint8
		cmd string
	}{{4, "iptables"}, {6, "ip6tables"}} {
		save := look(f.cmd+"-"+backend+"-save", f.cmd+"-save")
		restore := look(f.cmd+"-"+backend+"-restore", f.cmd+"-restore")
		if save != "" && restore != "" {
			fs = append(fs, family{f.num, save, restore})
		}
	}
	return fs
}

// Detect picks the backend: pref "nft" or "legacy" forces it; "auto" (or
// "") follows the host: the backend that already holds nfgate's chains,
// else the one that holds any rules, else what the `iptables` command is.
func Detect(pref string) (*Installer, error) {
	switch pref {
	case "nft", "legacy":
	case "", "auto":
		pref = detect()
	default:
		return nil, fmt.Errorf("ipt: unknown iptables backend %q (auto, nft or legacy)", pref)
	}
	fs := tools(pref)
	if len(fs) == 0 || fs[0].num != 4 {
		return nil, fmt.Errorf("ipt: iptables-%s-save/-restore not found (install the iptables package)", pref)
	}
	return &Installer{Backend: pref, fams: fs, want: map[uint8]string{}}, nil
}

func detect() string {
	count := func(b string) (rules, ours int) {
		for _, f := range tools(b) {
			out, err := exec.Command(f.saveBin).Output()
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, "-A ") {
					rules++
				}
				if strings.Contains(l, engine.ChainPrefix) {
					ours++
				}
			}
		}
		return
	}
	nr, no := count("nft")
	lr, lo := count("legacy")
	switch {
	case lo > 0 && no == 0:
		return "legacy"
	case no > 0:
		return "nft"
	case lr > 0 && nr == 0:
		return "legacy"
	case nr > 0:
		return "nft"
	}
	if out, err := exec.Command("iptables", "-V").Output(); err == nil && strings.Contains(string(out), "legacy") {
		return "legacy"
	}
	return "nft"
}

// state is what a save shows of nfgate: jump rules present
// ("table/BUILTIN/TARGET"), owned chains per table and their rule counts.
type state struct {
	jumps  map[string]int // copies of each jump rule
	chains map[string]map[string]bool
	rules  map[string]int // "table/CHAIN" -> rule count
	// ours is everything of nfgate's in the save, one line each: table
	// headers, its chains, their rules in order, its jump rules.
	ours string
}

func (f family) read() (*state, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(f.saveBin)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", f.saveBin, err, strings.TrimSpace(stderr.String()))
	}
	return parseSave(out), nil
}

func parseSave(out []byte) *state {
	st := &state{jumps: map[string]int{}, chains: map[string]map[string]bool{}, rules: map[string]int{}}
	table := ""
	var ours strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
			ours.WriteString(l + "\n")
		case strings.HasPrefix(l, ":"+engine.ChainPrefix):
			name := strings.Fields(l[1:])[0]
			if st.chains[table] == nil {
				st.chains[table] = map[string]bool{}
			}
			st.chains[table][name] = true
			ours.WriteString(":" + name + "\n") // without the counters
		case strings.HasPrefix(l, "-A "):
			fs := strings.Fields(l)
			if len(fs) < 2 {
				continue
			}
			st.rules[table+"/"+fs[1]]++
			if strings.HasPrefix(fs[1], engine.ChainPrefix) {
				ours.WriteString(l + "\n")
			}
			if len(fs) == 4 && fs[2] == "-j" && strings.HasPrefix(fs[3], engine.ChainPrefix) {
				st.jumps[table+"/"+fs[1]+"/"+fs[3]]++
				ours.WriteString(l + "\n")
			}
		}
	}
	st.ours = ours.String()
	return st
}

func (f family) restore(text string) error {
	var stderr bytes.Buffer
	cmd := exec.Command(f.restoreBin, "--noflush", "--wait")
	cmd.Stdin = strings.NewReader(text)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", f.restoreBin, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Apply installs p for every family and verifies the result.
func (i *Installer) Apply(p *engine.HookPlan) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	var errs []error
	for _, f := range i.fams {
		rs := engine.Render(p, f.num)
		st, err := f.read()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := f.restore(engine.RestoreText(rs, st.jumps)); err != nil {
			errs = append(errs, fmt.Errorf("IPv%d: %w", f.num, err))
			i.want[f.num] = applyFailed
			continue
		}
		st, err = f.verify(rs)
		if err != nil {
			errs = append(errs, fmt.Errorf("IPv%d: %w", f.num, err))
			i.want[f.num] = applyFailed
			continue
		}
		i.want[f.num] = st.ours
	}
	return errors.Join(errs...)
}

// applyFailed is the wanted state of a family whose last Apply failed: it
// matches no kernel state, so the next check applies again.
const applyFailed = "(the last install failed)\n"

// Drift compares nfgate's part of the kernel's rules with what it was
// right after the last Apply, family by family, and says what differs.
func (i *Installer) Drift() (string, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	var out []string
	for _, f := range i.fams {
		want, ok := i.want[f.num]
		if !ok {
			continue
		}
		st, err := f.read()
		if err != nil {
			return "", err
		}
		switch {
		case want == applyFailed:
			out = append(out, fmt.Sprintf("IPv%d: the last install failed", f.num))
		case st.ours != want:
			out = append(out, fmt.Sprintf("IPv%d: %s", f.num, describeDrift(want, st.ours)))
		}
	}
	return strings.Join(out, "; "), nil
}

// describeDrift names up to three lines missing and three unexpected.
func describeDrift(want, got string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			if l != "" && !strings.HasPrefix(l, "*") {
				m[l]++
			}
		}
		return m
	}
	w, g := count(want), count(got)
	list := func(a, b map[string]int) []string {
		var r []string
		for l, n := range a {
			if n > b[l] {
				r = append(r, l)
			}
		}
		sort.Strings(r)
		if len(r) > 3 {
			r = append(r[:3], fmt.Sprintf("and %d more", len(r)-3))
		}
		return r
	}
	missing, extra := list(w, g), list(g, w)
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "missing ["+strings.Join(missing, "; ")+"]")
	}
	if len(extra) > 0 {
		parts = append(parts, "unexpected ["+strings.Join(extra, "; ")+"]")
	}
	if len(parts) == 0 {
		return "rules reordered"
	}
	return strings.Join(parts, ", ")
}

// verify re-reads the tables and checks every chain and jump is as
// rendered; it returns what it read.
func (f family) verify(rs *engine.Ruleset) (*state, error) {
	st, err := f.read()
	if err != nil {
		return nil, err
	}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			if !st.chains[t.Name][c.Name] {
				return st, fmt.Errorf("verify: chain %s/%s missing", t.Name, c.Name)
			}
			if n := st.rules[t.Name+"/"+c.Name]; n != len(c.Rules) {
				return st, fmt.Errorf("verify: chain %s/%s has %d rules, want %d", t.Name, c.Name, n, len(c.Rules))
			}
		}
		for _, j := range t.Jumps {
			if n := st.jumps[t.Name+"/"+j.Builtin+"/"+j.Target]; n != 1 {
				return st, fmt.Errorf("verify: jump %s %s -> %s present %d times, want once", t.Name, j.Builtin, j.Target, n)
			}
		}
	}
	return st, nil
}

// Remove deletes nfgate's jumps and chains from both backends.
func (i *Installer) Remove() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	clear(i.want)
	return Cleanup()
}

// Cleanup removes everything nfgate owns from every backend and family.
func Cleanup() error {
	var errs []error
	for _, b := range []string{"nft", "legacy"} {
		for _, f := range tools(b) {
			st, err := f.read()
			if err != nil {
				continue // backend unusable here: nothing of ours in it
			}
			text := engine.CleanupText(st.jumps, st.chains)
			if text == "" {
				continue
			}
			if err := f.restore(text); err != nil {
				errs = append(errs, fmt.Errorf("%s IPv%d: %w", b, f.num, err))
			}
		}
	}
	return errors.Join(errs...)
}
