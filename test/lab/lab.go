//go:build linux

// Package lab is nfgate's demo: a namespace lab shaped like Calico's
// forwarded-traffic tutorial, with a NodePort-style DNAT service, where
// `nfgate run` enforces examples/lab/nfgate.toml on real traffic.
//
//	outside      client      198.18.0.2   -- ext0 198.18.0.1 ┐
//	application  app server  198.18.1.10  -- app0 198.18.1.1 ├ gw (nfgate)
//	maintenance  maint host  198.18.2.10  -- mnt0 198.18.2.1 ┘
//
// The gateway DNATs tcp 198.18.0.1:30080 to the app server's port 80. The
// lab sends a handful of connection attempts, reads nfgate's verdict trace,
// prints every decision and checks each attempt's outcome and deciding
// policy against what the policy says should happen.
//
// `make demo` runs it as a program (cmd/nfgate-lab, see Main); test/demo
// runs the same code as a test (Run).
package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/test/netlab"
)

// Namespaces and addresses (198.18.0.0/15 only).
const (
	GW     = "gw"
	Client = "client"
	App    = "app"
	Maint  = "maint"

	GWExt     = "198.18.0.1"
	ClientIP  = "198.18.0.2"
	GWApp     = "198.18.1.1"
	AppIP     = "198.18.1.10"
	GWMnt     = "198.18.2.1"
	MaintIP   = "198.18.2.10"
	NodePort  = 30080
	probePort = 8080
)

// Options configure a run.
type Options struct {
	Nfgate string    // the nfgate binary
	Config string    // the lab's policy (examples/lab/nfgate.toml)
	Out    io.Writer // the report (default os.Stdout)
	// Verbose prints nfgate's own log after the trace.
	Verbose bool
	// Capture, if set, is a pcap file for the first packets of the
	// connections arriving on the gateway's app0 (tcpdump), for `nfgate replay`.
	Capture string
}

// Want is the decision an attempt should get at its first policed stage.
// A zero Stage means no decision at all: a kernel rule ahead of the queue
// (failsafe ports) handles the packet.
type Want struct {
	Stage, Verdict, Policy, Reason string
}

// Attempt is one connection the lab makes.
type Attempt struct {
	What     string // what it shows
	From     string // namespace
	Src      string
	SrcPort  int
	Dst      string // host:port dialled
	Connect  bool   // expected outcome
	Want     Want
	Observed bool     // connected (got the server's greeting)
	Records  []Record // its decisions in the trace
	OK       bool     // outcome and first decision as expected
	Problems []string // why not OK
	Elapsed  time.Duration
}

// Record is one verdict line of nfgate's trace (engine/trace's format).
type Record struct {
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	Stage    string    `json:"stage"`
	In       string    `json:"in"`
	Out      string    `json:"out"`
	Endpoint string    `json:"endpoint"`
	Proto    string    `json:"proto"`
	Src      string    `json:"src"`
	Dst      string    `json:"dst"`
	SPort    int       `json:"sport"`
	DPort    int       `json:"dport"`
	Verdict  string    `json:"verdict"`
	Tier     string    `json:"tier"`
	Policy   string    `json:"policy"`
	Rule     *int      `json:"rule"`
	Reason   string    `json:"reason"`
	Note     string    `json:"note"`
}

// Result is what a run saw.
type Result struct {
	Attempts  []Attempt
	Records   []Record // every verdict line, in trace order
	NfgateLog string
}

// Failed lists the attempts that did not go as expected.
func (r *Result) Failed() []string {
	var out []string
	for _, a := range r.Attempts {
		if !a.OK {
			out = append(out, a.What+": "+strings.Join(a.Problems, "; "))
		}
	}
	return out
}

// Attempts returns the traffic the lab sends, in order.
func Attempts() []Attempt {
	return []Attempt{
		{What: "SSH from the application network to the maintenance host", From: App, Src: AppIP, SrcPort: 41001,
			Dst: MaintIP + ":22", Connect: true,
			Want: Want{Stage: "forward", Verdict: "ACCEPT", Policy: "allow-ssh-maintenance", Reason: "rule"}},
		{What: "HTTP from the application network to the maintenance host", From: App, Src: AppIP, SrcPort: 41002,
			Dst: MaintIP + ":80", Connect: false,
			Want: Want{Stage: "forward", Verdict: "DROP", Reason: "end-of-tier"}},
		{What: "NodePort pinhole: client to gw:30080, DNAT'd to the app server", From: Client, Src: ClientIP, SrcPort: 41003,
			Dst: fmt.Sprintf("%s:%d", GWExt, NodePort), Connect: true,
			Want: Want{Stage: "preDNAT", Verdict: "ACCEPT", Policy: "allow-nodeport", Reason: "rule"}},
		{What: "Probe: client to another gateway port (gw:8080)", From: Client, Src: ClientIP, SrcPort: 41004,
			Dst: fmt.Sprintf("%s:%d", GWExt, probePort), Connect: false,
			Want: Want{Stage: "preDNAT", Verdict: "DROP", Policy: "drop-other-ingress", Reason: "rule"}},
		{What: "HTTP from outside straight to the maintenance host", From: Client, Src: ClientIP, SrcPort: 41005,
			Dst: MaintIP + ":80", Connect: false,
			Want: Want{Stage: "preDNAT", Verdict: "DROP", Policy: "drop-other-ingress", Reason: "rule"}},
		// tcp/22 is a failsafe port: the kernel's pre-DNAT failsafe rule
		// lets it past drop-other-ingress (Calico matches failsafes by port,
		// whatever the destination), then the maintenance network's forward
		// policy drops it: it allows SSH from the application network only.
		{What: "SSH from outside straight to the maintenance host", From: Client, Src: ClientIP, SrcPort: 41006,
			Dst: MaintIP + ":22", Connect: false,
			Want: Want{Stage: "forward", Verdict: "DROP", Reason: "end-of-tier"}},
		{What: "Failsafe SSH from outside to the gateway itself", From: Client, Src: ClientIP, SrcPort: 41007,
			Dst: GWExt + ":22", Connect: true},
	}
}

// Build creates the lab's namespaces, links, routes, servers and the DNAT
// rule. Everything is removed by t's cleanups.
func Build(t testing.TB) *netlab.Lab {
	l := netlab.New(t)
	builtTag.Store(l.Tag)
	for _, n := range []string{GW, Client, App, Maint} {
		l.AddNS(n)
	}
	l.Router(GW)
	l.Link(Client, "eth0", []string{ClientIP + "/24"}, GW, "ext0", []string{GWExt + "/24"})
	l.Link(App, "eth0", []string{AppIP + "/24"}, GW, "app0", []string{GWApp + "/24"})
	l.Link(Maint, "eth0", []string{MaintIP + "/24"}, GW, "mnt0", []string{GWMnt + "/24"})
	// The lab is IPv4 only: without IPv6 no router solicitations or MLD
	// reports clutter the trace.
	for _, n := range []string{GW, Client, App, Maint} {
		l.MustNS(n, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	l.Route(Client, "default", "via", GWExt)
	l.Route(App, "default", "via", GWApp)
	l.Route(Maint, "default", "via", GWMnt)
	l.MustNS(GW, "iptables", "-t", "nat", "-A", "PREROUTING", "-i", "ext0", "-d", GWExt, "-p", "tcp",
		"--dport", fmt.Sprint(NodePort), "-j", "DNAT", "--to-destination", AppIP+":80")
	netlab.EchoServer(l.Listen(App, "tcp", ":80"))
	netlab.EchoServer(l.Listen(Maint, "tcp", ":22"))
	netlab.EchoServer(l.Listen(Maint, "tcp", ":80"))
	netlab.EchoServer(l.Listen(GW, "tcp", ":22"))
	netlab.EchoServer(l.Listen(GW, "tcp", fmt.Sprintf(":%d", probePort)))
	return l
}

// labConfig returns the lab's configuration with the [engine] settings the
// demo needs: the trace file and one queue per stage. The [engine] table
// moves to the end (its lines left blank), so every other line keeps its
// number and nfgate's errors point at the right line of the original.
func labConfig(text, traceFile string) string {
	var b, eng strings.Builder
	inEngine := false
	for _, line := range strings.SplitAfter(text, "\n") {
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "[") {
			inEngine = trim == "[engine]"
		}
		if !inEngine {
			b.WriteString(line)
			continue
		}
		if strings.HasSuffix(line, "\n") {
			b.WriteString("\n")
		}
		if trim != "[engine]" && !strings.HasPrefix(trim, "traceFile") && !strings.HasPrefix(trim, "queues") {
			eng.WriteString(strings.TrimSuffix(line, "\n") + "\n")
		}
	}
	if !strings.HasSuffix(b.String(), "\n") {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n[engine] # added by the demo\ntraceFile = %q\nqueues = 1\n%s", traceFile, eng.String())
	return b.String()
}

// syncBuf is a goroutine-safe log buffer.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// builtTag is the tag of the last lab built (Main checks its namespaces are gone).
var builtTag atomic.Value

var errInterrupted = errors.New("interrupted")

// Run builds the lab on t, starts nfgate, sends the traffic, prints the
// report to o.Out and returns what it saw. A nil error means the lab ran;
// the expectations are in the Result (Failed). ctx ending interrupts the
// run between steps; t's cleanups tear the lab down in every case.
func Run(ctx context.Context, t testing.TB, o Options) (*Result, error) {
	out := o.Out
	if out == nil {
		out = os.Stdout
	}
	start := time.Now()
	p := printer{w: out}
	res := &Result{}

	p.header("1. Building the lab (network namespaces, addresses from 198.18.0.0/15)")
	l := Build(t)
	p.f("  outside      client      %-12s -- ext0 %-11s ┐\n", ClientIP, GWExt)
	p.f("  application  app server  %-12s -- app0 %-11s ├ gw: nfgate, and a NodePort-style DNAT\n", AppIP, GWApp)
	p.f("  maintenance  maint host  %-12s -- mnt0 %-11s ┘     tcp %s:%d -> %s:80\n", MaintIP, GWMnt, GWExt, NodePort, AppIP)
	p.f("  servers: app server :80, maint host :22 (SSH-like) and :80 (HTTP-like), gw :22 and :%d\n", probePort)
	p.f("  namespaces: %s, %s, %s, %s\n", l.NS(GW), l.NS(Client), l.NS(App), l.NS(Maint))
	if ctx.Err() != nil {
		return res, errInterrupted
	}

	p.header("2. Starting nfgate in the gateway namespace")
	dir := t.TempDir()
	cfgText, err := os.ReadFile(o.Config)
	if err != nil {
		return res, err
	}
	tracePath := filepath.Join(dir, "trace.jsonl")
	cfgPath := filepath.Join(dir, "nfgate.toml")
	statsPath := filepath.Join(dir, "stats.json")
	if err := os.WriteFile(cfgPath, []byte(labConfig(string(cfgText), tracePath)), 0o600); err != nil {
		return res, err
	}
	log := &syncBuf{}
	p.f("  policy: %s (the demo adds engine.traceFile and engine.queues = 1)\n", o.Config)
	p.f("  $ ip netns exec %s %s run --config %s --stats %s\n", l.NS(GW), o.Nfgate, cfgPath, statsPath)
	cmd := l.Start(GW, log, o.Nfgate, "run", "--config", cfgPath, "--stats", statsPath)
	t.Cleanup(func() { res.NfgateLog = log.String() })
	if err := waitLive(ctx, statsPath, cmd.Process.Pid); err != nil {
		res.NfgateLog = log.String()
		return res, fmt.Errorf("%w; nfgate's log:\n%s", err, log.String())
	}
	p.f("  nfgate is enforcing (policy generation 1 live, hooks installed); trace: %s\n", tracePath)

	var dump *exec.Cmd
	if o.Capture != "" {
		if dump, err = startCapture(ctx, l, o.Capture); err != nil {
			return res, err
		}
		p.f("  capturing connection attempts arriving on app0 to %s (tcpdump)\n", o.Capture)
	}

	p.header("3. Sending traffic (each attempt waits at most 2s)")
	res.Attempts = Attempts()
	for i := range res.Attempts {
		if ctx.Err() != nil {
			return res, errInterrupted
		}
		a := &res.Attempts[i]
		t0 := time.Now()
		a.Observed = dial(ctx, l, a)
		a.Elapsed = time.Since(t0)
		if ctx.Err() != nil {
			return res, errInterrupted
		}
		p.f("  %d. %-62s %s\n", i+1, a.What, outcome(a.Observed, a.Elapsed))
	}
	if ctx.Err() != nil {
		return res, errInterrupted
	}

	// The trace writer flushes when idle; give it a moment.
	time.Sleep(300 * time.Millisecond)
	if dump != nil {
		netlab.Stop(dump, unix.SIGINT, 3*time.Second)
	}
	res.Records = readTrace(tracePath)
	for i := range res.Attempts {
		judge(&res.Attempts[i], res.Records)
	}

	p.header("4. nfgate's decisions (from its verdict trace)")
	p.table(res.Records)

	p.header("5. Outcomes")
	pass := 0
	for i, a := range res.Attempts {
		mark := "PASS"
		if a.OK {
			pass++
		} else {
			mark = "FAIL"
		}
		p.f("  %s  %d. %s\n", mark, i+1, a.What)
		p.f("         connection  expected %s, observed %s\n", connWord(a.Connect), connWord(a.Observed))
		got := "no nfgate decision"
		if len(a.Records) > 0 {
			r := a.Records[0]
			got = fmt.Sprintf("%s %s %s", r.Stage, r.Verdict, why(r))
		}
		p.f("         decision    expected %s\n                     nfgate   %s\n", describeWant(a.Want), got)
		for _, pr := range a.Problems {
			p.f("         -> %s\n", pr)
		}
	}
	// Stop nfgate before the teardown so its log is complete.
	netlab.Stop(cmd, unix.SIGTERM, 5*time.Second)
	res.NfgateLog = log.String()
	if o.Verbose {
		p.header("nfgate's log")
		p.f("%s", indent(res.NfgateLog))
	}
	p.f("\n  %d of %d attempts as expected (%.1fs)\n", pass, len(res.Attempts), time.Since(start).Seconds())
	return res, nil
}

// waitLive waits until nfgate reports a live policy in its stats file.
func waitLive(ctx context.Context, stats string, pid int) error {
	deadline := time.After(15 * time.Second)
	for {
		if b, err := os.ReadFile(stats); err == nil {
			var s struct {
				Gen uint64 `json:"gen"`
			}
			if json.Unmarshal(b, &s) == nil && s.Gen >= 1 {
				return nil
			}
		}
		if exited(pid) {
			return errors.New("nfgate exited before its policy went live")
		}
		select {
		case <-ctx.Done():
			return errInterrupted
		case <-deadline:
			return errors.New("nfgate did not report a live policy within 15s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startCapture runs tcpdump on the gateway's app0 for the SYNs arriving
// there and waits until it listens.
func startCapture(ctx context.Context, l *netlab.Lab, file string) (*exec.Cmd, error) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		return nil, errors.New("--capture needs tcpdump (make deps)")
	}
	out := &syncBuf{}
	cmd := l.Start(GW, out, "tcpdump", "-i", "app0", "-Q", "in", "-U", "-Z", "root", "-w", file,
		"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "listening on") {
		if time.Now().After(deadline) || exited(cmd.Process.Pid) || ctx.Err() != nil {
			return nil, fmt.Errorf("tcpdump did not start: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd, nil
}

// exited reports whether process pid (a child not yet waited for) is gone.
// The started command is `ip netns exec ... nfgate`, which execs nfgate.
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] == 'Z' || b[i+2] == 'X'
	}
	return false
}

// dial connects from a's namespace and source port and reports whether the
// server's greeting arrived.
func dial(ctx context.Context, l *netlab.Lab, a *Attempt) bool {
	var c net.Conn
	err := l.Do(a.From, func() (err error) {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(a.Src), Port: a.SrcPort}}
		c, err = d.DialContext(ctx, "tcp", a.Dst)
		return err
	})
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 6)
	_, err = io.ReadFull(c, buf)
	return err == nil && string(buf) == "hello\n"
}

func readTrace(path string) []Record {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Type == "verdict" {
			out = append(out, r)
		}
	}
	return out
}

// judge collects a's trace records and checks its outcome and first decision.
func judge(a *Attempt, recs []Record) {
	for _, r := range recs {
		if r.Src == a.Src && r.SPort == a.SrcPort {
			a.Records = append(a.Records, r)
		}
	}
	a.Problems = nil
	if a.Observed != a.Connect {
		a.Problems = append(a.Problems, fmt.Sprintf("expected %s, observed %s", connWord(a.Connect), connWord(a.Observed)))
	}
	w := a.Want
	switch {
	case w.Stage == "" && len(a.Records) > 0:
		a.Problems = append(a.Problems, fmt.Sprintf("expected no nfgate decision, got %s %s", a.Records[0].Stage, a.Records[0].Verdict))
	case w.Stage != "" && len(a.Records) == 0:
		a.Problems = append(a.Problems, "no decision in the trace")
	case w.Stage != "":
		r := a.Records[0]
		if r.Stage != w.Stage || r.Verdict != w.Verdict || (w.Policy != "" && r.Policy != w.Policy) || (w.Reason != "" && r.Reason != w.Reason) {
			a.Problems = append(a.Problems, fmt.Sprintf("first decision %s %s %s, expected %s", r.Stage, r.Verdict, why(r), describeWant(w)))
		}
	}
	a.OK = len(a.Problems) == 0
}

func describeWant(w Want) string {
	if w.Stage == "" {
		return "no nfgate decision (a kernel failsafe rule accepts it ahead of the queue)"
	}
	s := w.Stage + " " + w.Verdict
	if w.Policy != "" {
		s += " by " + w.Policy
	}
	if w.Reason != "" && w.Reason != "rule" {
		s += " (" + w.Reason + ")"
	}
	return s
}

func connWord(b bool) string {
	if b {
		return "connected"
	}
	return "timed out"
}

func outcome(ok bool, d time.Duration) string {
	if ok {
		return fmt.Sprintf("connected (%dms)", d.Milliseconds())
	}
	return fmt.Sprintf("timed out (%.1fs)", d.Seconds())
}

// why names the deciding policy and rule, or the reason.
func why(r Record) string {
	var s string
	switch {
	case r.Policy != "" && r.Rule != nil:
		s = fmt.Sprintf("%s rule %d", r.Policy, *r.Rule)
		if r.Reason != "rule" && r.Reason != "" {
			s += " (" + r.Reason + ")"
		}
	case r.Policy != "":
		s = r.Policy + " (" + r.Reason + ")"
	default:
		s = r.Reason
	}
	if r.Tier != "" && r.Reason == "end-of-tier" {
		s += ", tier " + r.Tier
	}
	if r.Note != "" {
		s += " [" + r.Note + "]"
	}
	return s
}

type printer struct{ w io.Writer }

func (p printer) f(format string, a ...any) { fmt.Fprintf(p.w, format, a...) }

func (p printer) header(s string) {
	p.f("\n== %s %s\n", s, strings.Repeat("=", max(3, 90-len(s))))
}

func (p printer) table(recs []Record) {
	if len(recs) == 0 {
		p.f("  (no decisions in the trace)\n")
		return
	}
	p.f("  %-12s %-8s %-11s %-6s %-37s %-7s %s\n", "TIME", "STAGE", "IN->OUT", "PROTO", "SRC -> DST", "VERDICT", "POLICY/RULE or REASON")
	for _, r := range recs {
		in, out := r.In, r.Out
		switch {
		case in == "":
			in = "local"
		case out == "" && r.Stage == "input":
			out = "local"
		case out == "":
			out = "-" // before routing: not known yet
		}
		io := in + "->" + out
		tuple := fmt.Sprintf("%s:%d -> %s:%d", r.Src, r.SPort, r.Dst, r.DPort)
		p.f("  %-12s %-8s %-11s %-6s %-37s %-7s %s\n", r.Time.Local().Format("15:04:05.000"), r.Stage, io, r.Proto, tuple, r.Verdict, why(r))
	}
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "  (empty)\n"
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ") + "\n"
}
