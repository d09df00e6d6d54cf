package metrics_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/denycache"
	"github.com/nfgate/nfgate/engine/metrics"
	"github.com/nfgate/nfgate/engine/trace"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// fakeEngine has one queue per stage, 100-104.
type fakeEngine struct {
	stats engine.Stats
	hits  []engine.RuleHit
}

func (f *fakeEngine) Stats() *engine.Stats  { return &f.stats }
func (f *fakeEngine) Gen() (uint64, string) { return 3, "c0ffee01" }
func (f *fakeEngine) Runtime() config.Runtime {
	rt := config.DefaultRuntime()
	rt.Queues = 1
	return rt
}
func (f *fakeEngine) QueueNums() []uint16        { return []uint16{100, 101, 102, 103, 104} }
func (f *fakeEngine) RuleHits() []engine.RuleHit { return f.hits }
func (f *fakeEngine) Readers() []engine.ReaderStatus {
	return []engine.ReaderStatus{{Queue: 104, Stage: policy.StageForward, Handled: 7}}
}

type fakeDeny struct{}

func (fakeDeny) Len() int               { return 12 }
func (fakeDeny) Cap() int               { return 65536 }
func (fakeDeny) Stats() denycache.Stats { return denycache.Stats{Evictions: 2} }

// The kernel's table: queue 104 (ours), queue 7 (someone else's).
const queueTable = `  104   4242     3 2 65531     5     6      901  1
    7   5151     9 2 65531    90    91       12  1
`

func serve(t *testing.T, o metrics.Options) string {
	t.Helper()
	ln, err := metrics.Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- metrics.Serve(ctx, ln, metrics.Handler(metrics.NewRegistry(o))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func TestScrape(t *testing.T) {
	f := &fakeEngine{hits: []engine.RuleHit{
		{Kind: "policy", Tier: "default", Name: "allow-ssh", Dir: "ingress", Rule: 0, Action: "Allow", Hits: 5},
		{Kind: "profile", Name: "edge", Dir: "egress", Rule: 1, Action: "Deny", Hits: 0},
	}}
	s := &f.stats
	fwd := int(policy.StageForward)
	s.Queued[fwd].Add(9)
	s.Verdicts[fwd][policy.Accept][policy.ReasonRule].Add(5)
	s.Verdicts[fwd][policy.Drop][policy.ReasonEndOfTier].Add(4)
	s.DenyHits.Add(3)
	s.Rechecked.Add(11)
	s.Cut.Add(2)
	s.TraceDrops.Add(8)
	s.Reloads.Add(3)
	s.ReloadErrs.Add(1)
	s.Latency[11].Add(2)  // 1024-2047 ns
	s.Latency[15].Add(1)  // 16-32 µs
	s.Latency[35].Add(1)  // beyond the largest bucket
	s.LatencySum.Add(2e9) // 2 s in all
	qf := filepath.Join(t.TempDir(), "nfnetlink_queue")
	if err := os.WriteFile(qf, []byte(queueTable), 0o600); err != nil {
		t.Fatal(err)
	}
	var rl metrics.Reloads
	rl.Record(false, time.Unix(1700000000, 500e6), 0)
	url := serve(t, metrics.Options{Engine: f, DenyCache: fakeDeny{}, QueueFile: qf, Reloads: &rl, Version: "v1.2.3",
		Trace: func() trace.Stats { return trace.Stats{Written: 40, Dropped: 8} }, NoRuntime: true})

	want := `
# HELP nfgate_verdicts_total Decisions by stage, verdict (ACCEPT, DROP, NONE) and reason; deny-cache answers included.
# TYPE nfgate_verdicts_total counter
nfgate_verdicts_total{reason="end-of-tier",stage="forward",verdict="DROP"} 4
nfgate_verdicts_total{reason="rule",stage="forward",verdict="ACCEPT"} 5
# HELP nfgate_rule_hits_total Evaluations that ended at a policy or profile rule in the live policy generation (restarts at 0 with each generation; deny-cache answers not included).
# TYPE nfgate_rule_hits_total counter
nfgate_rule_hits_total{action="Allow",direction="ingress",kind="policy",policy="allow-ssh",rule="0",tier="default"} 5
nfgate_rule_hits_total{action="Deny",direction="egress",kind="profile",policy="edge",rule="1",tier=""} 0
# HELP nfgate_queue_waiting_packets Packets waiting in the kernel queue for nfgate (nfnetlink_queue queue_total).
# TYPE nfgate_queue_waiting_packets gauge
nfgate_queue_waiting_packets{queue="100",stage="untracked"} 0
nfgate_queue_waiting_packets{queue="101",stage="preDNAT"} 0
nfgate_queue_waiting_packets{queue="102",stage="input"} 0
nfgate_queue_waiting_packets{queue="103",stage="output"} 0
nfgate_queue_waiting_packets{queue="104",stage="forward"} 3
# HELP nfgate_queue_dropped_total Packets the kernel dropped because the queue was full (queue_dropped).
# TYPE nfgate_queue_dropped_total counter
nfgate_queue_dropped_total{queue="100",stage="untracked"} 0
nfgate_queue_dropped_total{queue="101",stage="preDNAT"} 0
nfgate_queue_dropped_total{queue="102",stage="input"} 0
nfgate_queue_dropped_total{queue="103",stage="output"} 0
nfgate_queue_dropped_total{queue="104",stage="forward"} 5
# HELP nfgate_queue_user_dropped_total Packets the kernel dropped because nfgate's socket buffer was full (user_dropped).
# TYPE nfgate_queue_user_dropped_total counter
nfgate_queue_user_dropped_total{queue="100",stage="untracked"} 0
nfgate_queue_user_dropped_total{queue="101",stage="preDNAT"} 0
nfgate_queue_user_dropped_total{queue="102",stage="input"} 0
nfgate_queue_user_dropped_total{queue="103",stage="output"} 0
nfgate_queue_user_dropped_total{queue="104",stage="forward"} 6
# HELP nfgate_decision_duration_seconds Time from a queued packet's arrival at its reader to its decision (decode and evaluation).
# TYPE nfgate_decision_duration_seconds histogram
nfgate_decision_duration_seconds_bucket{le="1.024e-06"} 0
nfgate_decision_duration_seconds_bucket{le="4.096e-06"} 2
nfgate_decision_duration_seconds_bucket{le="1.6384e-05"} 2
nfgate_decision_duration_seconds_bucket{le="6.5536e-05"} 3
nfgate_decision_duration_seconds_bucket{le="0.000262144"} 3
nfgate_decision_duration_seconds_bucket{le="0.001048576"} 3
nfgate_decision_duration_seconds_bucket{le="0.004194304"} 3
nfgate_decision_duration_seconds_bucket{le="0.016777216"} 3
nfgate_decision_duration_seconds_bucket{le="0.067108864"} 3
nfgate_decision_duration_seconds_bucket{le="0.268435456"} 3
nfgate_decision_duration_seconds_bucket{le="1.073741824"} 3
nfgate_decision_duration_seconds_bucket{le="+Inf"} 4
nfgate_decision_duration_seconds_sum 2
nfgate_decision_duration_seconds_count 4
# HELP nfgate_deny_cache_entries Live entries in the deny cache.
# TYPE nfgate_deny_cache_entries gauge
nfgate_deny_cache_entries 12
# HELP nfgate_deny_cache_hits_total Packets dropped straight from the deny cache without evaluation.
# TYPE nfgate_deny_cache_hits_total counter
nfgate_deny_cache_hits_total 3
# HELP nfgate_last_reload_successful 1 if the last reload attempt succeeded, 0 if it failed (the previous policy stays live).
# TYPE nfgate_last_reload_successful gauge
nfgate_last_reload_successful 0
# HELP nfgate_last_reload_timestamp_seconds Unix time of the last reload attempt.
# TYPE nfgate_last_reload_timestamp_seconds gauge
nfgate_last_reload_timestamp_seconds 1.7000000005e+09
# HELP nfgate_reloads_total Reload attempts (the initial load included), by result (ok, error).
# TYPE nfgate_reloads_total counter
nfgate_reloads_total{result="error"} 1
nfgate_reloads_total{result="ok"} 3
# HELP nfgate_policy_generation Generation number of the live policy (1 after start, +1 per good reload).
# TYPE nfgate_policy_generation gauge
nfgate_policy_generation 3
# HELP nfgate_policy_info The live policy's configuration hash (always 1).
# TYPE nfgate_policy_info gauge
nfgate_policy_info{hash="c0ffee01"} 1
# HELP nfgate_reload_rechecked_flows_total Existing flows marked for re-check by reloads.
# TYPE nfgate_reload_rechecked_flows_total counter
nfgate_reload_rechecked_flows_total 11
# HELP nfgate_reload_cut_flows_total Re-checked flows the new policy denied (dropped and their conntrack entries deleted).
# TYPE nfgate_reload_cut_flows_total counter
nfgate_reload_cut_flows_total 2
# HELP nfgate_trace_dropped_total Verdict-trace records not written: the trace buffer was full, or a write failed.
# TYPE nfgate_trace_dropped_total counter
nfgate_trace_dropped_total 8
# HELP nfgate_reader_packets_total Packets handled by each queue reader.
# TYPE nfgate_reader_packets_total counter
nfgate_reader_packets_total{queue="104",stage="forward"} 7
`
	names := []string{"nfgate_verdicts_total", "nfgate_rule_hits_total", "nfgate_queue_waiting_packets",
		"nfgate_queue_dropped_total", "nfgate_queue_user_dropped_total", "nfgate_decision_duration_seconds",
		"nfgate_deny_cache_entries", "nfgate_deny_cache_hits_total", "nfgate_last_reload_successful",
		"nfgate_last_reload_timestamp_seconds", "nfgate_reloads_total", "nfgate_policy_generation", "nfgate_policy_info",
		"nfgate_reload_rechecked_flows_total", "nfgate_reload_cut_flows_total", "nfgate_trace_dropped_total",
		"nfgate_reader_packets_total"}
	if err := testutil.ScrapeAndCompare(url+"/metrics", strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	// The other families are there too; the queue nfgate does not own is not.
	body := get(t, url+"/metrics")
	for _, name := range []string{"nfgate_build_info{goversion=", "nfgate_queued_packets_total{stage=\"forward\"} 9",
		"nfgate_queue_bound{queue=\"104\",stage=\"forward\"} 1", "nfgate_queue_bound{queue=\"100\",stage=\"untracked\"} 0",
		"nfgate_deny_cache_capacity 65536", "nfgate_trace_written_total 40", "nfgate_queue_table_errors_total 0"} {
		if !strings.Contains(body, name) {
			t.Errorf("scrape lacks %s", name)
		}
	}
	if strings.Contains(body, `queue="7"`) {
		t.Error("scrape reports a queue nfgate does not own")
	}
}

func TestScrapeWithoutQueueTable(t *testing.T) {
	url := serve(t, metrics.Options{Engine: &fakeEngine{}, QueueFile: filepath.Join(t.TempDir(), "absent")})
	body := get(t, url+"/metrics")
	for _, s := range []string{`nfgate_queue_bound{queue="104",stage="forward"} 0`, "go_goroutines", "nfgate_queue_table_errors_total 0"} {
		if !strings.Contains(body, s) {
			t.Errorf("scrape lacks %s", s)
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

func TestOnlyMetricsIsServed(t *testing.T) {
	url := serve(t, metrics.Options{Engine: &fakeEngine{}, NoRuntime: true})
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/metrics", 200},
		{"GET", "/", 200},
		{"POST", "/metrics", 405},
		{"GET", "/debug/pprof/", 404},
		{"GET", "/reload", 404},
	} {
		req, _ := http.NewRequest(c.method, url+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.code)
		}
	}
}

func TestListenRefusesRemoteAddresses(t *testing.T) {
	for _, c := range []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:0", false, true},
		{"[::1]:0", false, true},
		{"localhost:0", false, true},
		{":0", false, false},
		{"0.0.0.0:0", false, false},
		{"[::]:0", false, false},
		{"198.18.0.1:0", false, false},
		{"0.0.0.0:0", true, true},
		{"nonsense", false, false},
	} {
		ln, err := metrics.Listen(c.addr, c.remote)
		if ln != nil {
			ln.Close()
		}
		if (err == nil) != c.ok {
			if c.addr == "[::1]:0" && err != nil && !strings.Contains(err.Error(), "loopback") {
				continue // no IPv6 on this machine
			}
			t.Errorf("Listen(%q, remote=%v): err=%v, want ok=%v", c.addr, c.remote, err, c.ok)
		}
	}
}

func TestParseQueues(t *testing.T) {
	rows, err := metrics.ParseQueues(strings.NewReader(queueTable))
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows %v, err %v", rows, err)
	}
	if r := rows[0]; r != (metrics.QueueRow{Num: 104, PortID: 4242, Waiting: 3, Dropped: 5, UserDropped: 6}) {
		t.Errorf("row %+v", r)
	}
	for _, bad := range []string{"1 2 3\n", "1 2 3 4 5 x 7 8 1\n", "70000 1 0 2 0 0 0 0 1\n"} {
		if _, err := metrics.ParseQueues(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestReadQueueFileTellsEmptyFromAbsent(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	if rows, err := metrics.ReadQueueFile(empty); err != nil || rows == nil || len(rows) != 0 {
		t.Errorf("empty table: %v, %v; want an empty, non-nil table", rows, err)
	}
	if rows, err := metrics.ReadQueueFile(filepath.Join(dir, "absent")); err != nil || rows != nil {
		t.Errorf("absent table: %v, %v; want nil", rows, err)
	}
}
