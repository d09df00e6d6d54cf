package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/policy/config"
)

// What a running daemon enforces, for `nfgate diff --pid` and `nfgate
// reload --dry-run`. A policy file is usually edited before the reload
// that applies it, so the file on disk is no longer what runs: after every
// policy that goes live, `nfgate run --stats FILE` keeps a copy of the
// files it loaded in FILE.running/ (their paths kept under root/, so
// relative includes resolve inside the copy). A reader loads the copy and
// checks its hash against the one the daemon reports in its stats file.

// runningDir is where the daemon writing stats keeps the copy.
func runningDir(stats string) string { return stats + ".running" }

// keepRunningCopy stores the files of a policy that went live. It re-reads
// them and keeps the copy only if their bytes hash to what was loaded (a
// file edited in between would make a false copy); otherwise it removes
// any older copy, so that nothing stale is ever taken for what runs.
func keepRunningCopy(stats string, l *engine.Loaded, log *slog.Logger) {
	if stats == "" || l == nil || len(l.Files) == 0 {
		return
	}
	dir := runningDir(stats)
	fail := func(why string, err error) {
		os.RemoveAll(dir)
		log.Warn("no copy of the running configuration kept: `nfgate diff --pid` and `nfgate reload --dry-run` need --against", "why", why, "err", err)
	}
	tmp := dir + ".new"
	os.RemoveAll(tmp)
	data, err := loadedFiles(l.Files, l.Hash)
	if err != nil {
		fail("a file changed after it was loaded (or the policy has datastore resources)", err)
		return
	}
	for i, f := range l.Files {
		abs, err := filepath.Abs(f)
		if err != nil {
			fail("path", err)
			return
		}
		dst := filepath.Join(tmp, "root", abs)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			os.RemoveAll(tmp)
			fail("writing", err)
			return
		}
		if err := os.WriteFile(dst, data[i], 0o600); err != nil {
			os.RemoveAll(tmp)
			fail("writing", err)
			return
		}
	}
	main, _ := filepath.Abs(l.Files[0])
	if err := os.WriteFile(filepath.Join(tmp, "main"), []byte(main+"\n"+l.Hash+"\n"), 0o600); err != nil {
		fail("writing", err)
		return
	}
	old := dir + ".old"
	os.RemoveAll(old)
	os.Rename(dir, old)
	if err := os.Rename(tmp, dir); err != nil {
		fail("renaming", err)
		return
	}
	os.RemoveAll(old)
}

// daemonArgs returns the --config and --stats of `nfgate run` process
// pid, with run's defaults for what its command line leaves out.
func daemonArgs(pid int) (cfg, stats string, err error) {
	name, err := processName(pid)
	if err != nil {
		return "", "", fmt.Errorf("process %d: %v", pid, err)
	}
	if name != "nfgate" {
		return "", "", fmt.Errorf("process %d is %q, not nfgate", pid, name)
	}
	b, err := readCmdline(pid)
	if err != nil {
		return "", "", fmt.Errorf("process %d: %v", pid, err)
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	cfg = "/etc/nfgate/nfgate.toml"
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		if !strings.HasPrefix(args[i], "-") {
			continue
		}
		key, val, has := strings.Cut(a, "=")
		if !has && i+1 < len(args) && (key == "config" || key == "stats") {
			val = args[i+1]
			i++
		}
		switch key {
		case "config":
			cfg = val
		case "stats":
			stats = val
		}
	}
	// Relative paths are the daemon's working directory's.
	if cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd"); err == nil {
		if !filepath.IsAbs(cfg) {
			cfg = filepath.Join(cwd, cfg)
		}
		if stats != "" && !filepath.IsAbs(stats) {
			stats = filepath.Join(cwd, stats)
		}
	}
	return cfg, stats, nil
}

// readCmdline reads a process's NUL-separated arguments (tests replace it).
var readCmdline = func(pid int) ([]byte, error) {
	return os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
}

// runningConfig loads what daemon pid enforces: the copy it keeps, or
// else its configuration file if that still hashes to what runs. It
// returns the load, the prefix to strip from file names (the copy's root)
// and a description.
func runningConfig(pid int, statsFlag string) (ld *config.Loaded, strip, desc string, err error) {
	cfgPath, stats, err := daemonArgs(pid)
	if err != nil {
		return nil, "", "", err
	}
	if statsFlag != "" {
		stats = statsFlag
	}
	if stats == "" {
		return nil, "", "", fmt.Errorf("process %d runs without --stats: its generation and hash are unknown; compare with --against FILE", pid)
	}
	st, err := readReloadStats(stats)
	if err != nil {
		return nil, "", "", fmt.Errorf("the daemon's stats: %v", err)
	}
	desc = fmt.Sprintf("running policy of process %d (generation %d, hash %s)", pid, st.Gen, st.Hash)
	dir := runningDir(stats)
	if b, err := os.ReadFile(filepath.Join(dir, "main")); err == nil {
		main := strings.SplitN(string(b), "\n", 2)[0]
		root := filepath.Join(dir, "root")
		l, err := config.Load(filepath.Join(root, main))
		if err == nil && hex.EncodeToString(l.Hash[:4]) == st.Hash {
			return l, root, desc, nil
		}
	}
	l, err := config.Load(cfgPath)
	if err != nil {
		return nil, "", "", fmt.Errorf("no copy of the running configuration in %s, and %s does not load: %v", dir, cfgPath, err)
	}
	if h := hex.EncodeToString(l.Hash[:4]); h != st.Hash {
		return nil, "", "", errors.New(fmt.Sprintf("%s hashes to %s but the daemon runs %s, and it kept no copy of that (%s): compare with --against FILE", cfgPath, h, st.Hash, dir))
	}
	return l, "", desc, nil
}
