//go:build linux

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/test/netlab"
)

// sdListener is a fake systemd notification socket.
type sdListener struct {
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
}

func newSDListener(t *testing.T) (*sdListener, string) {
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &sdListener{conn: c}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := c.Read(b)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, string(b[:n]))
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close() })
	return s, path
}

// waitFor returns the first message from index from on that contains
// want, and the index after it.
func (s *sdListener) waitFor(from int, want string, d time.Duration) (string, int) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for i := from; i < len(s.msgs); i++ {
			if strings.Contains(s.msgs[i], want) {
				m := s.msgs[i]
				s.mu.Unlock()
				return m, i + 1
			}
		}
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	return "", from
}

func (s *sdListener) count(want string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs {
		if strings.Contains(m, want) {
			n++
		}
	}
	return n
}

// scrape fetches /metrics from inside the gateway namespace.
func scrape(t *testing.T, lab *netlab.Lab, addr string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return lab.Dial(netlab.GW, network, a, 2*time.Second)
		}}}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scraping %s: %s", addr, resp.Status)
	}
	return string(b)
}

// metricValue returns the value of the sample whose line starts with
// prefix (name{labels...}), or -1.
func metricValue(body, prefix string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			f := strings.Fields(l)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// TestOperations runs the daemon as systemd would (notification socket,
// watchdog) with metrics on: READY only once the hooks are in, a scrape
// that reflects real traffic, `nfgate reload` reporting good and bad
// reloads, the config-permission refusal, and STOPPING.
func TestOperations(t *testing.T) {
	t.Parallel()
	if nfgateBin == "" {
		t.Skip("nfgate binary not built (needs root)")
	}
	lab := netlab.NewGateway(t)
	for _, p := range []string{"22", "80"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	sd, sock := newSDListener(t)
	const metricsAddr = "127.0.0.1:9464"
	dir := t.TempDir()
	d := &daemon{t: t, lab: lab, dir: dir, cfg: filepath.Join(dir, "nfgate.toml"), stats: filepath.Join(dir, "stats.json"),
		trace: filepath.Join(dir, "trace.jsonl"), log: &syncBuf{}}
	extra := fmt.Sprintf("metricsAddress = %q", metricsAddr)
	d.write(fmt.Sprintf(maintTwoPorts, "22") + engineTOML(dir, extra))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nfgate log:\n%s", d.log.String())
		}
	})
	c := checker{t}
	d.cmd = lab.Start(netlab.GW, d.log, "env", "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=600000",
		nfgateBin, "run", "--config", d.cfg, "--stats", d.stats)

	ready, next := sd.waitFor(0, "READY=1", 15*time.Second)
	c.is("READY=1 sent", ready != "", true)
	rules, _ := lab.Exec(netlab.GW, "iptables-save")
	c.is("hooks installed when READY arrived", strings.Contains(rules, "NFGATE"), true)
	t.Logf("ready message: %q", ready)
	c.is("READY carries a STATUS with the live generation", strings.Contains(ready, "STATUS=policy generation 1"), true)

	c.is("SSH to maintenance", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", 2*time.Second), true)
	c.is("TCP/80 to maintenance", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)

	body := scrape(t, lab, metricsAddr)
	for _, m := range []struct {
		sample string
		ok     func(float64) bool
	}{
		{`nfgate_verdicts_total{reason="rule",stage="forward",verdict="ACCEPT"}`, func(v float64) bool { return v >= 1 }},
		{`nfgate_verdicts_total{reason="end-of-tier",stage="forward",verdict="DROP"}`, func(v float64) bool { return v >= 1 }},
		{`nfgate_rule_hits_total{action="Allow",direction="egress",kind="policy",policy="maint-allowed",rule="0",tier="default"}`, func(v float64) bool { return v >= 1 }},
		{`nfgate_queue_bound{queue="104",stage="forward"}`, func(v float64) bool { return v == 1 }},
		{`nfgate_queue_dropped_total{queue="104",stage="forward"}`, func(v float64) bool { return v == 0 }},
		{`nfgate_decision_duration_seconds_count`, func(v float64) bool { return v >= 2 }},
		{`nfgate_policy_generation`, func(v float64) bool { return v == 1 }},
		{`nfgate_last_reload_successful`, func(v float64) bool { return v == 1 }},
		{`nfgate_deny_cache_entries`, func(v float64) bool { return v >= 0 }},
		{`nfgate_trace_dropped_total`, func(v float64) bool { return v == 0 }},
	} {
		v := metricValue(body, m.sample)
		c.is(fmt.Sprintf("scrape: %s = %v", m.sample, v), v >= 0 && m.ok(v), true)
	}

	t.Logf("daemon memory: resident %.1f MiB, Go heap in use %.1f MiB, goroutines %v",
		metricValue(body, "process_resident_memory_bytes")/(1<<20), metricValue(body, "go_memstats_heap_inuse_bytes")/(1<<20),
		metricValue(body, "go_goroutines"))

	reload := func() (int, string) {
		out, err := exec.Command(nfgateBin, "reload", "--pid", strconv.Itoa(d.cmd.Process.Pid), "--stats", d.stats, "--timeout", "10s").CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}

	d.write(fmt.Sprintf(maintTwoPorts, "22, 80") + engineTOML(dir, extra))
	code, out := reload()
	t.Logf("nfgate reload (good): exit %d: %s", code, strings.TrimSpace(out))
	c.is("good reload: exit 0, generation 2", code == 0 && strings.Contains(out, "generation 2"), true)
	_, next = sd.waitFor(next, "RELOADING=1", 2*time.Second)
	msg, next := sd.waitFor(next, "READY=1", 2*time.Second)
	c.is("RELOADING=1 then READY=1 with the outcome", strings.Contains(msg, "STATUS=reloaded"), true)
	c.is("TCP/80 allowed after the reload", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", 2*time.Second), true)

	d.write(fmt.Sprintf(maintTwoPorts, "22") + "\n[[globalNetworkPolicy]]\nname = \"bad\"\nselectr = \"x\"\n" + engineTOML(dir, extra))
	code, out = reload()
	t.Logf("nfgate reload (bad): exit %d: %s", code, strings.TrimSpace(out))
	c.is("bad reload: exit 1 with file:line errors", code == 1 && regexp.MustCompile(`nfgate\.toml:\d+`).MatchString(out), true)
	msg, next = sd.waitFor(next, "READY=1", 2*time.Second)
	c.is("READY=1 after the failed reload says it failed", strings.Contains(msg, "reload FAILED"), true)

	d.write(fmt.Sprintf(maintTwoPorts, "22") + engineTOML(dir, extra))
	if err := os.Chmod(d.cfg, 0o666); err != nil {
		t.Fatal(err)
	}
	code, out = reload()
	t.Logf("nfgate reload (world-writable config): exit %d: %s", code, strings.TrimSpace(out))
	c.is("world-writable config refused on reload", code == 1 && strings.Contains(out, "writable by group and others"), true)
	body = scrape(t, lab, metricsAddr)
	c.is("scrape: last_reload_successful 0, generation still 2",
		metricValue(body, "nfgate_last_reload_successful") == 0 && metricValue(body, "nfgate_policy_generation") == 2, true)
	c.is("scrape: reloads_total ok=2 error=2", metricValue(body, `nfgate_reloads_total{result="ok"}`) == 2 &&
		metricValue(body, `nfgate_reloads_total{result="error"}`) == 2, true)

	c.is("watchdog fed (WATCHDOG=1 received)", sd.count("WATCHDOG=1") >= 1, true)
	t.Logf("watchdog pings so far: %d", sd.count("WATCHDOG=1"))

	netlab.Stop(d.cmd, unix.SIGTERM, 5*time.Second)
	msg, _ = sd.waitFor(next, "STOPPING=1", 2*time.Second)
	c.is("STOPPING=1 on SIGTERM", msg != "", true)

	// A world-writable configuration stops the start.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out2, err := exec.CommandContext(ctx, "ip", "netns", "exec", lab.NS(netlab.GW), nfgateBin, "run", "--config", d.cfg).CombinedOutput()
	c.is("start refused with a world-writable config", err != nil && strings.Contains(string(out2), "writable by group and others"), true)
}
