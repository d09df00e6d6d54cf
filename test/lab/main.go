//go:build linux

package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
)

// Main runs the demo as a program and returns its exit code: 0 when every
// attempt went as expected, 1 when one did not or the lab failed, 130 when
// interrupted. The lab is torn down in every case, on Ctrl-C too (a second
// Ctrl-C tears down at once, without waiting for the current step).
func Main(o Options) int {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "nfgate demo: needs root (network namespaces, iptables); run `sudo make demo`")
		return 1
	}
	if _, err := os.Stat(o.Nfgate); err != nil {
		fmt.Fprintf(os.Stderr, "nfgate demo: %v (run `make build` first)\n", err)
		return 1
	}
	tb := &programTB{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	// A closed output (`make demo | head`) must not kill the demo before
	// it tears the lab down: with SIGPIPE caught, writes just fail.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	go func() {
		if _, ok := <-sigs; !ok {
			return
		}
		fmt.Fprintln(os.Stderr, "\ninterrupted: stopping and tearing the lab down (Ctrl-C again to force)")
		cancel()
		if _, ok := <-sigs; ok {
			tb.runCleanups()
			os.Exit(130)
		}
	}()

	var (
		res *Result
		err error
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				s, ok := r.(stop)
				if !ok {
					panic(r)
				}
				err = errors.New(s.msg)
			}
		}()
		res, err = Run(ctx, tb, o)
	}()

	p := printer{w: o.Out}
	p.header("6. Teardown")
	tb.runCleanups()
	left := leftovers()
	if left == "" {
		p.f("  nfgate stopped, namespaces deleted: nothing left behind\n")
	} else {
		p.f("  WARNING: namespaces still present: %s\n", left)
	}
	switch {
	case errors.Is(err, errInterrupted) || ctx.Err() != nil:
		p.f("\nDEMO INTERRUPTED\n")
		return 130
	case err != nil:
		p.f("\nDEMO FAILED: %v\n", err)
		if res != nil && res.NfgateLog != "" && !strings.Contains(err.Error(), res.NfgateLog) {
			p.f("nfgate's log:\n%s", indent(res.NfgateLog))
		}
		return 1
	}
	if f := res.Failed(); len(f) > 0 {
		p.f("\nDEMO FAILED: %d attempt(s) not as expected:\n", len(f))
		for _, s := range f {
			p.f("  - %s\n", s)
		}
		if !o.Verbose {
			p.f("nfgate's log:\n%s", indent(res.NfgateLog))
		}
		return 1
	}
	p.f("\nDEMO PASSED: every attempt got the outcome and the decision the policy promises.\n")
	p.f("Next: read the policy (%s), try `nfgate explain` and `nfgate replay` (docs/demo.md).\n", o.Config)
	return 0
}

// leftovers lists the lab namespaces of this process that still exist.
func leftovers() string {
	tag, _ := builtTag.Load().(string)
	if tag == "" {
		return ""
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	var left []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "nfg"+tag+"-") {
			left = append(left, f[0])
		}
	}
	return strings.Join(left, " ")
}
