//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/policy/oracle"
	"github.com/nfgate/nfgate/test/netlab"
)

// soakConfig is the soak's policy: forwarded TCP to the maintenance network
// on fwdPorts, UDP to the gateway's app0 on inPorts (both lists change
// with every good reload).
func soakConfig(fwdPorts, inPorts string) string {
	return fmt.Sprintf(`
[gateway]
nodeName = "gw"

[[hostEndpoint]]
name = "gw.maint0"
labels = { network = "maintenance" }
interfaceName = "maint0"
node = "gw"

[[hostEndpoint]]
name = "gw.app0"
labels = { network = "application" }
interfaceName = "app0"
node = "gw"

[[globalNetworkPolicy]]
name = "maint-allowed"
selector = "network == 'maintenance'"
applyOnForward = true
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [%s] }

[[globalNetworkPolicy]]
name = "gw-in"
selector = "network == 'application'"
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "UDP"
destination = { ports = [%s] }
[[globalNetworkPolicy.egress]]
action = "Allow"
`, fwdPorts, inPorts)
}

var soakValid = [][2]string{{"22", "5000"}, {"22, 80", "5000, 5001"}, {"22, 80, 8080", "5001"}}

var soakInvalid = []string{
	soakConfig("22", "5000") + "\n[[globalNetworkPolicy]]\nname = \"Bad_Name\"\nselector = \"all()\"\n", // validation error
	soakConfig("22", "5000") + "\n[[globalNetworkPolicy\nname = \"x\"\n",                                // syntax error
	strings.Replace(soakConfig("22", "5000"), `selector = "network == 'maintenance'"`, `selector = "network == "`, 1),
}

func soakDuration(t *testing.T) time.Duration {
	if testing.Short() {
		t.Skip("soak skipped in -short mode")
	}
	d := 60 * time.Second
	if v := os.Getenv("NFGATE_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("NFGATE_SOAK=%q: %v", v, err)
		}
	}
	return d
}

type procSample struct {
	at              time.Duration
	rssKB, threads  int
	fds             int
	queued, reloads uint64
}

func sampleProc(pid int) (rss, threads, fds int) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			rss, _ = strconv.Atoi(f[1])
		}
		if len(f) >= 2 && f[0] == "Threads:" {
			threads, _ = strconv.Atoi(f[1])
		}
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return rss, threads, len(ents)
}

func rawStats(d *daemon) map[string]any {
	b, _ := os.ReadFile(d.stats)
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func sumMap(v any) uint64 {
	var n uint64
	if m, ok := v.(map[string]any); ok {
		for _, x := range m {
			f, _ := x.(float64)
			n += uint64(f)
		}
	}
	return n
}

func num(v any) uint64 { f, _ := v.(float64); return uint64(f) }

var protoNums = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "udplite": 136}

// tracedPacket rebuilds the packet of a verdict line.
func tracedPacket(r map[string]any) (classify.Packet, bool) {
	var p classify.Packet
	ps, _ := r["proto"].(string)
	pn, ok := protoNums[ps]
	if !ok {
		n, err := strconv.Atoi(ps)
		if err != nil {
			return p, false
		}
		pn = uint8(n)
	}
	src, err1 := netip.ParseAddr(fmt.Sprint(r["src"]))
	dst, err2 := netip.ParseAddr(fmt.Sprint(r["dst"]))
	if err1 != nil || err2 != nil {
		return p, false
	}
	p.Family = classify.IPv4
	if src.Is6() {
		p.Family = classify.IPv6
	}
	p.Proto, p.Src, p.Dst = pn, src, dst
	p.SrcPort, p.DstPort = uint16(num(r["sport"])), uint16(num(r["dport"]))
	p.ICMPType, p.ICMPCode = uint8(num(r["icmp_type"])), uint8(num(r["icmp_code"]))
	p.CT = classify.CTNew
	return p, true
}

// TestSoak: mixed allowed and denied traffic (forwarded TCP, UDP to the
// gateway, each a new flow) while the configuration is reloaded every
// couple of seconds, every other reload invalid. Then: every traced
// decision equals the in-order oracle's on the same packet under the
// configuration of the generation that decided it; every decision has its
// trace line or is counted as dropped; the daemon's RSS, threads and open
// files stay flat. NFGATE_SOAK sets the duration (default 60s; `make soak`:
// 10m).
func TestSoak(t *testing.T) {
	dur := soakDuration(t)
	t.Parallel()
	lab := netlab.NewGateway(t)
	for _, p := range []string{"22", "80", "8080", "9090"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	configs := map[uint64]string{1: soakConfig(soakValid[0][0], soakValid[0][1])}
	d := startDaemon(t, lab, configs[1], "")
	c := checker{t}
	pid := d.cmd.Process.Pid
	start := time.Now()
	end := start.Add(dur)

	var wg sync.WaitGroup
	var tcpTries, tcpOK, udpSent atomic.Int64
	ports := []string{"22", "80", "8080", "9090"}
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; time.Now().Before(end); i += 3 {
				tcpTries.Add(1)
				if lab.TCPWorks(netlab.Client, netlab.MaintIP+":"+ports[i%len(ports)], 300*time.Millisecond) {
					tcpOK.Add(1)
				}
				time.Sleep(30 * time.Millisecond)
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		lab.Do(netlab.Client, func() error {
			for i := 0; time.Now().Before(end); i++ {
				pc, err := net.ListenPacket("udp4", ":0") // a new source port: a new flow
				if err != nil {
					return err
				}
				pc.WriteTo([]byte("soak"), &net.UDPAddr{IP: net.ParseIP(netlab.GWApp), Port: 5000 + i%3})
				pc.Close()
				udpSent.Add(1)
				time.Sleep(25 * time.Millisecond)
			}
			return nil
		})
	}()

	var samples []procSample
	sample := func() {
		rss, th, fds := sampleProc(pid)
		m := rawStats(d)
		samples = append(samples, procSample{time.Since(start).Round(time.Second), rss, th, fds, sumMap(m["queued"]), num(m["reloads"]) + num(m["reload_errors"])})
	}
	sample()
	var good, bad int
	gen := uint64(1)
	lastSample := time.Now()
	for i := 0; time.Now().Add(2500 * time.Millisecond).Before(end); i++ {
		time.Sleep(2 * time.Second)
		var text string
		valid := i%2 == 1
		if valid {
			v := soakValid[(i/2+1)%len(soakValid)]
			text = soakConfig(v[0], v[1])
		} else {
			text = soakInvalid[(i/2)%len(soakInvalid)]
		}
		before := rawStats(d)
		d.write(text + engineTOML(d.dir, ""))
		s := d.Reload()
		if ok := s.Reloads > num(before["reloads"]); ok != valid {
			t.Errorf("reload %d: went live %v, want %v (valid config)", i, ok, valid)
		}
		if s.Reloads > num(before["reloads"]) {
			good++
			gen = s.Gen
			configs[gen] = text
		} else {
			bad++
		}
		if time.Since(lastSample) >= 5*time.Second {
			sample()
			lastSample = time.Now()
		}
	}
	wg.Wait()
	// Let the last decisions reach the trace and the stats file, then read
	// the trace strictly between two stats files (rewritten every second)
	// that agree: no decision happened in that window, so the trace holds
	// exactly the decisions counted. A late packet (a TCP retransmission)
	// after traffic stopped only makes the loop go round again.
	var st map[string]any
	var trace []map[string]any
	for i := 0; ; i++ {
		s1 := rawStats(d)
		time.Sleep(1100 * time.Millisecond)
		tr := d.Trace()
		time.Sleep(1100 * time.Millisecond)
		s2 := rawStats(d)
		if sumMap(s1["queued"]) == sumMap(s2["queued"]) {
			st, trace = s2, tr
			break
		}
		if i == 20 {
			t.Fatalf("decisions still arriving 45s after traffic stopped")
		}
		sample()
	}
	sample()

	// Every decision against the oracle, under its own generation.
	progs := map[uint64]*policy.Program{}
	for g, text := range configs {
		ld, err := config.LoadBytes("nfgate.toml", []byte(text))
		if err != nil {
			t.Fatalf("gen %d config: %v", g, err)
		}
		p, err := policy.Compile(ld.Policy)
		if err != nil {
			t.Fatal(err)
		}
		progs[g] = p
	}
	var lines, checked, wrong, deadline, cached, recheck, dropLines uint64
	var reloadOK, reloadBad int
	byVerdict := map[string]int{}
	for _, r := range trace {
		switch r["type"] {
		case "reload":
			if r["ok"] == true {
				reloadOK++
			} else {
				reloadBad++
			}
			continue
		case "dropped":
			dropLines += num(r["count"])
			continue
		case "verdict":
		default:
			continue
		}
		lines++
		note, _ := r["note"].(string)
		if note == "deadline" {
			deadline++
			continue
		}
		g := num(r["gen"])
		prog := progs[g]
		pkt, ok := tracedPacket(r)
		if prog == nil || !ok {
			t.Errorf("trace line without a known generation or packet: %v", r)
			continue
		}
		o := oracle.New(prog)
		in := prog.Bind(policy.Interface{Name: fmt.Sprint(r["in"])})
		out := prog.Bind(policy.Interface{Name: fmt.Sprint(r["out"])})
		var want policy.Decision
		switch r["stage"] {
		case "forward":
			want = o.Forward(in.Filter, out.Filter, false, &pkt)
			if in.Filter == policy.NoEndpoint && out.Filter == policy.NoEndpoint {
				want.Verdict = policy.None
			}
		case "input":
			want = o.Local(in.Filter, policy.Ingress, &pkt)
			if in.Filter == policy.NoEndpoint {
				want.Verdict = policy.None
			}
		case "output":
			want = o.Local(out.Filter, policy.Egress, &pkt)
			if out.Filter == policy.NoEndpoint {
				want.Verdict = policy.None
			}
		default:
			t.Errorf("unexpected stage in %v", r)
			continue
		}
		if note == "deny-cache" {
			cached++
		}
		if r["ct"] == "established-recheck" {
			recheck++
		}
		checked++
		got := fmt.Sprint(r["verdict"])
		byVerdict[got]++
		if got != want.Verdict.String() {
			wrong++
			if wrong <= 10 {
				t.Errorf("gen %d %s %v: traced %s, oracle %s (%v)", g, r["stage"], pkt, got, want.Verdict, want.Reason)
			}
		}
	}
	queued := sumMap(st["queued"])
	traceDrops := num(st["trace_drops"])
	panics := num(st["panics"])

	t.Logf("soak %v: %d TCP connection attempts (%d ok), %d UDP datagrams; %d reloads (%d live, %d rejected)",
		dur, tcpTries.Load(), tcpOK.Load(), udpSent.Load(), good+bad, good, bad)
	t.Logf("decisions: %d queued, %d trace lines (%v), %d checked against the oracle, %d wrong, %d deny-cache, %d re-checks, %d deadline, trace drops %d (dropped lines %d), panics %d",
		queued, lines, byVerdict, checked, wrong, cached, recheck, deadline, traceDrops, dropLines, panics)
	t.Logf("resource curve (time, RSS KiB, threads, fds, decisions, reloads):")
	for _, s := range samples {
		t.Logf("  %6v %7d %3d %3d %7d %4d", s.at, s.rssKB, s.threads, s.fds, s.queued, s.reloads)
	}
	c.is("every reload was attempted and went live iff valid (reload lines agree)", reloadOK == good+1 && reloadBad == bad, true)
	c.is("half the reloads invalid", bad >= good && good >= 1, true)
	c.is("traffic decided (>= 100 decisions, both verdicts)", queued >= 100 && byVerdict["ACCEPT"] > 0 && byVerdict["DROP"] > 0, true)
	c.is("no wrong verdict", wrong == 0 && checked > 0, true)
	c.is("trace complete: decisions = lines + counted drops", queued == lines+traceDrops+panics, true)
	c.is("no panics", panics == 0, true)
	// Baseline: the largest values seen in the first half of the run
	// (after start-up), compared with the end.
	first, last := samples[0], samples[len(samples)-1]
	for _, s := range samples[1:] {
		if s.at > dur/2 && s != samples[1] {
			break
		}
		first.fds, first.threads, first.rssKB = max(first.fds, s.fds), max(first.threads, s.threads), max(first.rssKB, s.rssKB)
	}
	c.is(fmt.Sprintf("open files stable (%d -> %d)", first.fds, last.fds), last.fds <= first.fds+2, true)
	c.is(fmt.Sprintf("threads stable (%d -> %d)", first.threads, last.threads), last.threads <= first.threads+4, true)
	c.is(fmt.Sprintf("RSS stable (%d -> %d KiB)", first.rssKB, last.rssKB), last.rssKB <= first.rssKB*3/2+16*1024, true)
	if t.Failed() {
		unix.Kill(pid, unix.SIGQUIT)
	}
}
