//go:build linux

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/test/netlab"
)

// Issue 13: a firewall that cannot be switched off by accident or by a
// file. Each test here failed before its fix (see docs/reliability.md,
// "Hostile inputs and operator mistakes").

// hasJump reports whether the gateway's IPv4 filter FORWARD chain jumps to
// nfgate.
func hasJump(lab *netlab.Lab) bool {
	out, _ := lab.Exec(netlab.GW, "iptables-save", "-t", "filter")
	return strings.Contains(out, "-A FORWARD -j NFGATE-FORWARD")
}

// ourRules is nfgate's part of both families' rules.
func ourRules(lab *netlab.Lab) string {
	var b strings.Builder
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		out, _ := lab.Exec(netlab.GW, cmd)
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "NFGATE") && !strings.HasPrefix(l, "#") {
				if strings.HasPrefix(l, ":") {
					l = strings.Fields(l)[0] // without counters
				}
				b.WriteString(l + "\n")
			}
		}
	}
	return b.String()
}

// waitRepaired polls until the FORWARD jump is back; it returns how long
// after since that took (-1 if not within limit).
func waitRepaired(lab *netlab.Lab, since time.Time, limit time.Duration) time.Duration {
	for time.Since(since) < limit {
		if hasJump(lab) {
			return time.Since(since)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -1
}

// Case 1: hooks removed or rewritten under a live daemon are restored, for
// the nft backend (change notifications) and the legacy one (the periodic
// check): denied traffic is denied again within seconds, counted and logged.
// Before, `iptables -F FORWARD` or `nfgate cleanup` switched the firewall
// off until the next SIGHUP, silently.
func TestHooksSelfHeal(t *testing.T) {
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			if backend == "legacy" {
				if _, err := exec.LookPath("iptables-legacy"); err != nil {
					netlab.RequireTools(t, "iptables-legacy")
				}
			}
			lab := netlab.NewGateway(t)
			for _, p := range []string{"22", "80"} {
				netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
			}
			d := startDaemon(t, lab, fmt.Sprintf(maintTwoPorts, "22"), fmt.Sprintf("iptablesBackend = %q", backend))
			c := checker{t}
			save := "iptables-save"
			flush := []string{"iptables", "-F", "FORWARD"}
			if backend == "legacy" {
				save, flush = "iptables-legacy-save", []string{"iptables-legacy", "-F", "FORWARD"}
			}
			jump := func() bool {
				out, _ := lab.Exec(netlab.GW, save, "-t", "filter")
				return strings.Contains(out, "-A FORWARD -j NFGATE-FORWARD")
			}
			wait := func(since time.Time) time.Duration {
				for time.Since(since) < 10*time.Second {
					if jump() {
						return time.Since(since)
					}
					time.Sleep(10 * time.Millisecond)
				}
				return -1
			}
			c.is("SSH to maint passes", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", 2*time.Second), true)
			c.is("TCP/80 to maint denied", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)

			t0 := time.Now()
			lab.MustNS(netlab.GW, flush[0], flush[1:]...)
			took := wait(t0)
			t.Logf("%s: `%s` -> jump restored after %v", backend, strings.Join(flush, " "), took)
			c.is("jump restored after "+strings.Join(flush, " "), took >= 0, true)
			c.is("TCP/80 denied again", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)

			// nfgate cleanup refuses while the daemon runs; --force goes
			// ahead and the daemon puts its rules back.
			out, err := lab.Exec(netlab.GW, nfgateBin, "cleanup")
			c.is("nfgate cleanup refused while the daemon runs (exit 1, says why)", err != nil && strings.Contains(out, "refusing"), true)
			c.is("rules untouched by the refused cleanup", jump(), true)
			t0 = time.Now()
			out, err = lab.Exec(netlab.GW, nfgateBin, "cleanup", "--force")
			c.is("nfgate cleanup --force runs", err == nil, true)
			took = wait(t0)
			t.Logf("%s: `nfgate cleanup --force` -> rules restored after %v (%s)", backend, took, strings.TrimSpace(out))
			c.is("rules restored after cleanup --force", took >= 0, true)
			c.is("TCP/80 denied after cleanup --force", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)

			if backend == "nft" {
				// Another writer points the forward chain at a queue with no
				// reader and --queue-bypass (what a second daemon in failure
				// mode open did): restored too.
				rules := ourRules(lab)
				lab.MustNS(netlab.GW, "iptables", "-R", "NFGATE-FWD", fmt.Sprint(strings.Count(rules, "-A NFGATE-FWD ")/2), "-j", "NFQUEUE", "--queue-num", "200", "--queue-bypass")
				time.Sleep(300 * time.Millisecond)
				c.is("a rewritten rule is restored", ourRules(lab) == rules, true)
				c.is("TCP/80 denied after the rewrite", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)
			}
			s := rawStats(d)
			t.Logf("hook_repairs=%v hook_check_errors=%v", s["hook_repairs"], s["hook_check_errors"])
			c.is("repairs counted", num(s["hook_repairs"]) >= 2, true)
			c.is("repairs logged", strings.Contains(d.log.String(), "kernel hooks changed by someone else; restored"), true)
			c.is("the daemon survived it all (a verdict for a packet flushed by the rule changes is not fatal)",
				d.cmd.ProcessState == nil && unix.Kill(d.cmd.Process.Pid, 0) == nil && !strings.Contains(d.log.String(), "engine stopped"), true)
		})
	}
}

// Case 1: a second `nfgate run` in the same network namespace (another
// queueBase, failure mode open) exits at once with a clear error and
// changes nothing; the first keeps enforcing. Before, it rewrote the hooks
// ("policy live") and left them pointing at its own queues, with
// --queue-bypass, when it stopped: denied traffic passed.
func TestSecondInstanceRefused(t *testing.T) {
	lab := netlab.NewGateway(t)
	for _, p := range []string{"22", "80"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	d := startDaemon(t, lab, fmt.Sprintf(maintTwoPorts, "22"), "")
	c := checker{t}
	before := ourRules(lab)
	cfg2 := filepath.Join(d.dir, "second.toml")
	os.WriteFile(cfg2, []byte(fmt.Sprintf(maintTwoPorts, "22, 80")+"\n[engine]\nqueues = 1\nqueueBase = 200\nfailureMode = \"open\"\n"), 0o644)
	t0 := time.Now()
	out, err := lab.Exec(netlab.GW, nfgateBin, "run", "--config", cfg2)
	t.Logf("second instance: %v after %v: %s", err, time.Since(t0).Round(time.Millisecond), lastLines(out, 3))
	c.is("second instance exits with an error", err != nil, true)
	c.is("its error names the running daemon", strings.Contains(out, fmt.Sprintf("process %d", d.cmd.Process.Pid)) &&
		strings.Contains(out, "already runs in this network namespace"), true)
	c.is("it never said policy live", strings.Contains(out, "policy live"), false)
	c.is("kernel rules unchanged", ourRules(lab) == before, true)
	c.is("the first daemon still denies TCP/80", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)
	c.is("the first daemon still allows SSH", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", 2*time.Second), true)
}

const maintTCPUDP = `
[gateway]
nodeName = "gw"

[[globalNetworkPolicy]]
name = "maint-allowed"
selector = "network == 'maintenance'"
applyOnForward = true
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [%s] }
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "UDP"
destination = { ports = [%s] }

# Neighbour discovery with the maintenance host (host traffic).
[[globalNetworkPolicy]]
name = "maint-icmpv6"
selector = "network == 'maintenance'"
types = ["Ingress", "Egress"]
ingress = [{ action = "Allow", protocol = "ICMPv6" }]
egress = [{ action = "Allow", protocol = "ICMPv6" }]

[[hostEndpoint]]
name = "gw.maint0"
labels = { network = "maintenance" }
interfaceName = "maint0"
node = "gw"
`

// Case 3: tightening the policy cuts established IPv4 and IPv6 flows, TCP
// and UDP, that it now denies, keeps the ones it allows, and the reload is
// not degraded. Before, the IPv6 flows kept running (the conntrack update
// was sent as IPv4 and refused) and every reload logged "re-check of
// existing flows incomplete" while reporting OK.
func TestRecheckBothFamilies(t *testing.T) {
	lab := netlab.NewGateway(t)
	for _, p := range []string{"22", "80"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	for _, p := range []string{"9000", "9001"} {
		netlab.UDPEcho(lab.ListenPacket(netlab.Maint, "udp", ":"+p))
	}
	d := startDaemon(t, lab, fmt.Sprintf(maintTCPUDP, "22, 80", "9000, 9001"), "")
	c := checker{t}
	type flow struct {
		name string
		conn net.Conn
		keep bool
	}
	var flows []flow
	for _, fam := range []struct{ name, ip string }{{"IPv4", netlab.MaintIP}, {"IPv6", "[" + netlab.MaintIP6 + "]"}} {
		for _, x := range []struct {
			proto, port string
			keep        bool
		}{{"tcp", "22", true}, {"tcp", "80", false}, {"udp", "9000", true}, {"udp", "9001", false}} {
			addr := fam.ip + ":" + x.port
			conn, err := lab.Dial(netlab.Client, x.proto, addr, 2*time.Second)
			if err != nil {
				t.Fatalf("%s %s: %v", x.proto, addr, err)
			}
			t.Cleanup(func() { conn.Close() })
			if x.proto == "tcp" && !readGreeting(conn) || !netlab.Roundtrip(conn, "x", 2*time.Second) {
				t.Fatalf("%s %s: no round trip before the reload", x.proto, addr)
			}
			flows = append(flows, flow{fam.name + " " + x.proto + "/" + x.port, conn, x.keep})
		}
	}
	d.write(fmt.Sprintf(maintTCPUDP, "22", "9000") + engineTOML(d.dir, ""))
	out, err := exec.Command(nfgateBin, "reload", "--pid", fmt.Sprint(d.cmd.Process.Pid), "--stats", d.stats, "--timeout", "10s").CombinedOutput()
	t.Logf("nfgate reload: %v: %s", err, strings.TrimSpace(string(out)))
	c.is("reload exits 0 (live, not degraded)", err == nil, true)
	for _, f := range flows {
		ok := netlab.Roundtrip(f.conn, "y", 1500*time.Millisecond)
		if f.keep {
			c.is("still allowed, keeps flowing: "+f.name, ok, true)
		} else {
			c.is("now denied, cut: "+f.name, ok, false)
		}
	}
	s := rawStats(d)
	t.Logf("rechecked=%v cut=%v recheck_errors=%v", s["rechecked"], s["cut"], s["recheck_errors"])
	c.is("all 8 flows marked for re-check", num(s["rechecked"]) >= 8, true)
	c.is("no re-check error", num(s["recheck_errors"]) == 0 && !strings.Contains(d.log.String(), "incomplete"), true)
}

// Case 3: in failure mode open, a flow opened while the daemon was dead
// (the queue bypass let it through undecided) is decided once the daemon is
// back: a denied one is cut. Before, it had no nfgate bits and survived the
// restart and any re-checking reload.
func TestFailOpenFlowDecidedAfterRestart(t *testing.T) {
	lab := netlab.NewGateway(t)
	for _, p := range []string{"22", "80"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	// No kernel deny region for TCP/80 from the first check: the queue
	// bypass is what this test is about.
	d := startDaemon(t, lab, fmt.Sprintf(maintTwoPorts, "22"), "failureMode = \"open\"\ndenyRegionSize = 0")
	c := checker{t}
	c.is("daemon up: TCP/80 denied", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)
	d.Kill()
	web, err := lab.Dial(netlab.Client, "tcp", netlab.MaintIP+":80", 2*time.Second)
	c.is("daemon dead (open): a new TCP/80 flow passes the queue bypass", err == nil && readGreeting(web), true)
	if err != nil {
		t.FailNow()
	}
	defer web.Close()
	ssh := dialEstablished(t, lab, netlab.MaintIP+":22")
	c.is("the bypassed flow carries on while the daemon is dead", netlab.Roundtrip(web, "a", time.Second), true)
	d.start()
	// Under load the deadline watchdog may answer the first packet after
	// the restart (failure mode open: it passes undecided, its flow still
	// marked for re-check); the flow must be cut by the next one at the
	// latest.
	passed := netlab.Roundtrip(web, "b", 2*time.Second)
	if passed {
		t.Logf("the first packet after the restart passed (deadline answers: %v); sending another", rawStats(d)["deadline"])
		passed = netlab.Roundtrip(web, "c", 2*time.Second)
	}
	c.is("daemon back: the bypassed TCP/80 flow is decided and cut", passed, false)
	c.is("daemon back: the bypassed SSH flow is decided and keeps flowing", netlab.Roundtrip(ssh, "b", 2*time.Second), true)
	var cut bool
	for _, r := range d.Trace() {
		if r["type"] == "verdict" && r["ct"] == "established-recheck" && num(r["dport"]) == 80 && r["verdict"] == "DROP" {
			cut = true
		}
	}
	c.is("trace: the flow was re-checked and dropped", cut, true)
}

// sigterm sends SIGTERM and returns how long the daemon took to exit.
func sigterm(t *testing.T, d *daemon) time.Duration {
	t.Helper()
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	t0 := time.Now()
	unix.Kill(d.cmd.Process.Pid, unix.SIGTERM)
	select {
	case <-done:
		return time.Since(t0)
	case <-time.After(10 * time.Second):
		return -1
	}
}
