//go:build linux

package netbench

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Main is the netbench command: it builds nfgate (unless -nfgate names a
// binary), runs the harness and prints the markdown tables. Namespaces,
// processes and the iptables rules inside them are removed on exit, on
// error and on SIGINT/SIGTERM.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("netbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.BoolVar(&o.Quick, "quick", false, "smoke test: one short run, sizes 10 and 1000")
	fs.IntVar(&o.Runs, "runs", 0, "runs per figure (default 3; quick 1)")
	sizes := fs.String("sizes", "", "policy sizes, comma-separated (default 10,1000,10000)")
	fs.StringVar(&o.NfgateBin, "nfgate", "", "nfgate binary (default: go build ./cmd/nfgate)")
	fs.StringVar(&o.Baseline, "baseline", "", "another nfgate binary (e.g. the previous release), measured as base-N contenders in the same rounds")
	fs.Float64Var(&o.PacedRate, "paced-rate", 0, "figure 5: the allowed generator's rate when counting the allowed packets lost under the floods, packets/s (default 20000)")
	waitLoad := fs.Float64("wait-load", 0, "before measuring, wait (up to 20 min) until the 1-minute load average is below this")
	verbose := fs.Bool("v", false, "progress on stderr")
	fs.StringVar(&o.PerfDir, "perf", "", "record perf profiles of nfgate and the bare reader during the CPU run into this directory")
	fs.BoolVar(&o.DumpRules, "dump-rules", false, "with -v: print the gateway's ruleset for each contender")
	bestDir := fs.String("bestbare", envOr("NETBENCH_BESTBARE", DefaultBestBareDir), "source directory of the bestbare ceiling reader (built into a temp dir; skipped when absent)")
	only := fs.String("only", "", "run only contenders whose name matches this regexp (and skip the reload unless it matches \"reload\")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *sizes != "" {
		for _, s := range strings.Split(*sizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 4 || n > 100000 {
				fmt.Fprintf(stderr, "netbench: -sizes: bad size %q (4..100000)\n", s)
				return 2
			}
			o.Sizes = append(o.Sizes, n)
		}
	}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fmt.Fprintf(stderr, "netbench: -only: %v\n", err)
			return 2
		}
		o.Only, o.NoReload = re, !re.MatchString("reload")
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "netbench: needs root (network namespaces, iptables, NFQUEUE)")
		return 1
	}
	for _, tool := range []string{"ip", "iptables", "iptables-restore", "nft", "conntrack", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(stderr, "netbench: %s not installed (make deps)\n", tool)
			return 1
		}
	}
	if *verbose {
		o.Log = stderr
	}
	sh := &shim{verbose: *verbose}
	defer sh.Close()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(stderr, "netbench: %v: cleaning up\n", s)
		sh.Close()
		os.Exit(130)
	}()

	if o.NfgateBin == "" {
		dir := sh.TempDir()
		o.NfgateBin = filepath.Join(dir, "nfgate")
		out, err := exec.Command("go", "build", "-o", o.NfgateBin, "github.com/nfgate/nfgate/cmd/nfgate").CombinedOutput()
		if err != nil {
			fmt.Fprintf(stderr, "netbench: building nfgate: %v\n%s", err, out)
			return 1
		}
	}
	if err := BuildBestBare(*bestDir, sh.TempDir()); err != nil {
		fmt.Fprintf(stderr, "netbench: %v: running without the bestbare contender\n", err)
	}
	if *waitLoad > 0 {
		end := time.Now().Add(20 * time.Minute)
		for {
			l := loadAvg()
			one, _ := strconv.ParseFloat(strings.Fields(l)[0], 64)
			if one < *waitLoad {
				break
			}
			if time.Now().After(end) {
				fmt.Fprintf(stderr, "netbench: load still %s after 20 minutes; measuring anyway\n", l)
				break
			}
			fmt.Fprintf(stderr, "netbench: load average %s, waiting for < %.1f\n", l, *waitLoad)
			time.Sleep(30 * time.Second)
		}
	}

	res, err := runGuarded(sh, o)
	if err != nil {
		fmt.Fprintln(stderr, "netbench:", err)
		return 1
	}
	fmt.Fprintf(stdout, "### netbench results\n\n")
	fmt.Fprintf(stdout, "Command: `%s`. Date: %s. Machine: %s.\n\n", strings.Join(append([]string{"netbench"}, args...), " "),
		res.Start.UTC().Format("2006-01-02 15:04 MST"), machine())
	res.Markdown(stdout)
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// runGuarded turns the shim's fatal panics into errors.
func runGuarded(sh *shim, o Options) (res *Results, err error) {
	defer func() {
		if p := recover(); p != nil {
			f, ok := p.(fatal)
			if !ok {
				panic(p)
			}
			err = fmt.Errorf("%s", f.msg)
		}
	}()
	return Run(sh, o)
}

func machine() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	var u syscall.Utsname
	kernel := "?"
	if syscall.Uname(&u) == nil {
		var b []byte
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		kernel = string(b)
	}
	ipt, _ := exec.Command("iptables", "-V").Output()
	return fmt.Sprintf("%d vCPU %s, Linux %s, %s, %s", runtime.NumCPU(), model, kernel, strings.TrimSpace(string(ipt)), runtime.Version())
}
