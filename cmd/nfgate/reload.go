package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func init() {
	commands["reload"] = subcommand{"ask a running nfgate to reload and wait for the outcome",
		func(args []string) int { return runReload(args, os.Stdout, os.Stderr) }}
}

// reloadStats is the part of the --stats file `reload` reads.
type reloadStats struct {
	Gen        uint64 `json:"gen"`
	Hash       string `json:"hash"`
	Reloads    uint64 `json:"reloads"`
	ReloadErrs uint64 `json:"reload_errors"`
	LastReload *struct {
		OK       bool     `json:"ok"`
		Errors   []string `json:"errors"`
		Degraded bool     `json:"degraded"`
		Warnings []string `json:"warnings"`
	} `json:"last_reload"`
}

// exitDegraded is reload's exit status when the new policy went live but
// its re-check of existing flows failed.
const exitDegraded = 3

func readReloadStats(path string) (reloadStats, error) {
	var s reloadStats
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %v", path, err)
	}
	return s, nil
}

// signalProcess sends SIGHUP (tests replace it).
var signalProcess = func(pid int) error { return syscall.Kill(pid, syscall.SIGHUP) }

// processName is the name of process pid (tests replace it).
var processName = func(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b)), err
}

// processRunning reports whether pid is still a running (not zombie)
// nfgate (tests replace it).
var processRunning = func(pid int) bool {
	if name, err := processName(pid); err != nil || name != "nfgate" {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z' && b[i+2] != 'X'
	}
	return true
}

// runReload sends SIGHUP to the daemon and waits until its stats file
// counts one more reload attempt; it exits 0 if that attempt succeeded, 1
// if it failed (the daemon keeps the previous policy) or no outcome came
// in time. systemd's ExecReload runs it, so `systemctl reload nfgate`
// reports a bad configuration.
func runReload(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pid := fs.Int("pid", 0, "process id of the running daemon (systemd: $MAINPID)")
	stats := fs.String("stats", "/run/nfgate/stats.json", "the daemon's --stats file")
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for the outcome")
	dryRun := fs.Bool("dry-run", false, "do not reload: show what the reload would change (nfgate diff against the running policy, with the live flows its re-check would cut)")
	dryConfig := fs.String("config", "", "with --dry-run: the configuration to compare (default: the daemon's --config, what a reload loads)")
	dryJSON := fs.Bool("json", false, "with --dry-run: print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: nfgate reload --pid PID [--stats FILE] [--timeout 60s] [--dry-run [--config FILE] [--json]]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *pid <= 0 || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "nfgate reload: "+format+"\n", a...)
		return 1
	}
	if name, err := processName(*pid); err != nil {
		return fail("process %d: %v", *pid, err)
	} else if name != "nfgate" {
		return fail("process %d is %q, not nfgate", *pid, name)
	}
	if *dryRun {
		return reloadDryRun(*pid, *stats, *dryConfig, *dryJSON, stdout, stderr) // diff.go
	}
	before, err := readReloadStats(*stats)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fail("%v: the daemon must run with --stats %s for reload to learn the outcome", err, *stats)
		}
		return fail("%v", err)
	}
	if err := signalProcess(*pid); err != nil {
		return fail("signalling process %d: %v", *pid, err)
	}
	deadline := time.Now().Add(*timeout)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		now, err := readReloadStats(*stats)
		if err != nil {
			if !processRunning(*pid) {
				return fail("process %d exited before reporting the reload's outcome (see its log: journalctl -u nfgate)", *pid)
			}
			continue // being replaced, or the daemon restarted
		}
		switch {
		case now.ReloadErrs > before.ReloadErrs:
			fmt.Fprintf(stderr, "nfgate reload: configuration rejected; policy generation %d (%s) stays live\n", now.Gen, now.Hash)
			if now.LastReload != nil {
				for _, e := range now.LastReload.Errors {
					fmt.Fprintln(stderr, e)
				}
			}
			return 1
		case now.Reloads > before.Reloads && now.LastReload != nil && now.LastReload.Degraded:
			fmt.Fprintf(stderr, "nfgate reload: policy generation %d (%s) live, but DEGRADED: existing flows were not all re-checked (they keep their old verdict until they end)\n", now.Gen, now.Hash)
			for _, w := range now.LastReload.Warnings {
				fmt.Fprintln(stderr, w)
			}
			return exitDegraded
		case now.Reloads > before.Reloads:
			fmt.Fprintf(stdout, "nfgate reload: policy generation %d (%s) live\n", now.Gen, now.Hash)
			return 0
		}
		if !processRunning(*pid) {
			return fail("process %d exited before reporting the reload's outcome (see its log: journalctl -u nfgate)", *pid)
		}
	}
	return fail("no reload outcome in %s after %v (is process %d the daemon writing %s?)", *stats, *timeout, *pid, *stats)
}
