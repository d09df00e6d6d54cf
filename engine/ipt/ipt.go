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
	"strings"
	"sync"

	"github.com/nfgate/nfgate/engine"
)

// Installer implements engine.Hooks. Safe for concurrent use.
type Installer struct {
	Backend string // "nft" or "legacy"
	mu      sync.Mutex
	fams    []family
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
	return &Installer{Backend: pref, fams: fs}, nil
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
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, ":"+engine.ChainPrefix):
			name := strings.Fields(l[1:])[0]
			if st.chains[table] == nil {
				st.chains[table] = map[string]bool{}
			}
			st.chains[table][name] = true
		case strings.HasPrefix(l, "-A "):
			fs := strings.Fields(l)
			if len(fs) < 2 {
				continue
			}
			st.rules[table+"/"+fs[1]]++
			if len(fs) == 4 && fs[2] == "-j" && strings.HasPrefix(fs[3], engine.ChainPrefix) {
				st.jumps[table+"/"+fs[1]+"/"+fs[3]]++
			}
		}
	}
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
			continue
		}
		if err := f.verify(rs); err != nil {
			errs = append(errs, fmt.Errorf("IPv%d: %w", f.num, err))
		}
	}
	return errors.Join(errs...)
}

// verify re-reads the tables and checks every chain and jump is as rendered.
func (f family) verify(rs *engine.Ruleset) error {
	st, err := f.read()
	if err != nil {
		return err
	}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			if !st.chains[t.Name][c.Name] {
				return fmt.Errorf("verify: chain %s/%s missing", t.Name, c.Name)
			}
			if n := st.rules[t.Name+"/"+c.Name]; n != len(c.Rules) {
				return fmt.Errorf("verify: chain %s/%s has %d rules, want %d", t.Name, c.Name, n, len(c.Rules))
			}
		}
		for _, j := range t.Jumps {
			if n := st.jumps[t.Name+"/"+j.Builtin+"/"+j.Target]; n != 1 {
				return fmt.Errorf("verify: jump %s %s -> %s present %d times, want once", t.Name, j.Builtin, j.Target, n)
			}
		}
	}
	return nil
}

// Remove deletes nfgate's jumps and chains from both backends.
func (i *Installer) Remove() error {
	i.mu.Lock()
	defer i.mu.Unlock()
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
