// Package metrics exports nfgate's counters in the Prometheus text format.
//
// Nothing here runs on the packet path: the collector reads the engine's
// atomic counters, the deny cache, the trace writer and the kernel's queue
// table when Prometheus scrapes, and builds constant metrics from them.
// Serve listens on a loopback address only, unless told otherwise, and
// answers /metrics and nothing that changes state.
package metrics

import (
	"math"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/denycache"
	"github.com/nfgate/nfgate/engine/trace"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// Engine is what the collector reads from the engine (*engine.Engine).
type Engine interface {
	Stats() *engine.Stats
	Gen() (uint64, string)
	Runtime() config.Runtime
	QueueNums() []uint16
	RuleHits() []engine.RuleHit
	Readers() []engine.ReaderStatus
}

// DenyCache is what the collector reads from the deny cache (*denycache.Cache).
type DenyCache interface {
	Len() int
	Cap() int
	Stats() denycache.Stats
}

// Options say where the figures come from. Engine is required.
type Options struct {
	Engine    Engine
	DenyCache DenyCache          // nil: no deny-cache size figures
	Trace     func() trace.Stats // nil: no trace writer figures
	Reloads   *Reloads           // nil: no last-reload figures
	// QueueFile is the kernel's queue table (default DefaultQueueFile).
	QueueFile string
	Version   string
	// NoRuntime leaves out the Go runtime and process collectors (tests).
	NoRuntime bool
}

// Reloads remembers the outcome of the last reload attempt. Safe for
// concurrent use.
type Reloads struct {
	mu        sync.Mutex
	set       bool
	ok        bool
	at        time.Time
	rechecked int
}

// Record notes a reload attempt (the initial load included).
func (r *Reloads) Record(ok bool, at time.Time, rechecked int) {
	r.mu.Lock()
	r.set, r.ok, r.at, r.rechecked = true, ok, at, rechecked
	r.mu.Unlock()
}

func (r *Reloads) last() (set, ok bool, at time.Time, rechecked int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set, r.ok, r.at, r.rechecked
}

// NewRegistry returns a registry holding nfgate's collector and, unless
// o.NoRuntime, the Go runtime and process collectors.
func NewRegistry(o Options) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(o))
	if !o.NoRuntime {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return reg
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("nfgate_"+name, help, labels, nil)
}

var (
	dBuild     = desc("build_info", "nfgate version and Go version (always 1).", "version", "goversion")
	dVerdicts  = desc("verdicts_total", "Decisions by stage, verdict (ACCEPT, DROP, NONE) and reason; deny-cache answers included.", "stage", "verdict", "reason")
	dQueued    = desc("queued_packets_total", "Packets the kernel queued to nfgate, by stage.", "stage")
	dRuleHits  = desc("rule_hits_total", "Evaluations that ended at a policy or profile rule in the live policy generation (restarts at 0 with each generation; deny-cache answers not included).", "kind", "tier", "policy", "direction", "rule", "action")
	dLatency   = desc("decision_duration_seconds", "Time from a queued packet's arrival at its reader to its decision (decode and evaluation).")
	dDenyHits  = desc("deny_cache_hits_total", "Packets dropped straight from the deny cache without evaluation.")
	dDenyLen   = desc("deny_cache_entries", "Live entries in the deny cache.")
	dDenyCap   = desc("deny_cache_capacity", "Deny cache capacity (entries).")
	dDenyEvict = desc("deny_cache_evictions_total", "Live deny-cache entries pushed out to make room.")
	dMalformed = desc("malformed_packets_total", "Packets on a policed interface that could not be decoded (dropped).")
	dDeadline  = desc("deadline_verdicts_total", "Failure-mode verdicts given because a decision took longer than engine.deadline.")
	dVerdErr   = desc("verdict_errors_total", "Verdicts the kernel refused.")
	dUndeliv   = desc("queue_undelivered_total", "Packets the kernel numbered but could not deliver to nfgate (socket buffer full): dropped, or accepted in fail-open mode (gaps in the packet ids).")
	dTrunc     = desc("truncated_packets_total", "Packets on a policed interface whose headers did not fit in the queue's copy range (dropped).")
	dReloads   = desc("reloads_total", "Reload attempts (the initial load included), by result (ok, error).", "result")
	dLastOK    = desc("last_reload_successful", "1 if the last reload attempt succeeded, 0 if it failed (the previous policy stays live).")
	dLastAt    = desc("last_reload_timestamp_seconds", "Unix time of the last reload attempt.")
	dGen       = desc("policy_generation", "Generation number of the live policy (1 after start, +1 per good reload).")
	dPolicy    = desc("policy_info", "The live policy's configuration hash (always 1).", "hash")
	dRecheck   = desc("reload_rechecked_flows_total", "Existing flows marked for re-check by reloads.")
	dLastRe    = desc("last_reload_rechecked_flows", "Flows marked for re-check by the last good reload.")
	dCut       = desc("reload_cut_flows_total", "Re-checked flows the new policy denied (dropped and their conntrack entries deleted).")
	dCutErr    = desc("reload_cut_errors_total", "Conntrack deletions of cut flows that failed or were skipped.")
	dCutDrops  = desc("cut_flow_drops_total", "New packets of flows a re-check cut (either direction) dropped.")
	dCutFull   = desc("cut_memory_full_total", "Cut flows the full memory of cut flows could not remember.")
	dTraceDrop = desc("trace_dropped_total", "Verdict-trace records not written: the trace buffer was full, or a write failed.")
	dTraceW    = desc("trace_written_total", "Verdict-trace lines written.")
	dTraceErr  = desc("trace_errors_total", "Failed trace writes, flushes and reopens.")
	dQWait     = desc("queue_waiting_packets", "Packets waiting in the kernel queue for nfgate (nfnetlink_queue queue_total).", "queue", "stage")
	dQDrop     = desc("queue_dropped_total", "Packets the kernel dropped because the queue was full (queue_dropped).", "queue", "stage")
	dQUser     = desc("queue_user_dropped_total", "Packets the kernel dropped because nfgate's socket buffer was full (user_dropped).", "queue", "stage")
	dQBound    = desc("queue_bound", "1 if the kernel lists a listener on the queue, else 0.", "queue", "stage")
	dReader    = desc("reader_packets_total", "Packets handled by each queue reader.", "queue", "stage")
	dQErr      = desc("queue_table_errors_total", "Failed reads of the kernel queue table.")
	dHookFix   = desc("hook_repairs_total", "Times the kernel hooks had been changed by someone else and were reinstalled.")
	dHookErr   = desc("hook_check_errors_total", "Failed checks or reinstalls of the kernel hooks.")
	dRecErr    = desc("reload_recheck_errors_total", "Reloads that went live but could not mark every existing flow for re-check (degraded).")
	dRH0       = desc("routing_header0_dropped_total", "IPv6 packets with a type 0 routing header dropped on policed interfaces (nfgate extension; also in malformed_packets_total).")
	dRgEvents  = desc("deny_region_events_total", "Kernel deny regions (nfgate extension): offered (denied packets handed to the installer), queue_full (offers refused: its queue was full), installed (elements), coalesced (requests an element already covered), stale (requests of a policy no longer live), inexpressible (boxes the kernel sets cannot hold), mismatch (the policy's region did not confirm the packet's decision: never expected), set_full (elements refused: the set was full), failsafe (elements kept away from a failsafe port), error (kernel refusals), flushed (reloads and binding changes), repaired (the table changed by someone else, restored), ended (elements gone).", "event")
	dRgLive    = desc("deny_region_elements", "Kernel deny-region elements installed now.")
	dRgPackets = desc("deny_region_dropped_packets_total", "Packets the kernel's deny regions dropped or rejected (element counters as last read, about every second).")
)

var allDescs = []*prometheus.Desc{dBuild, dVerdicts, dQueued, dRuleHits, dLatency, dDenyHits, dDenyLen, dDenyCap,
	dDenyEvict, dMalformed, dDeadline, dVerdErr, dUndeliv, dTrunc, dReloads, dLastOK, dLastAt, dGen, dPolicy, dRecheck, dLastRe, dCut,
	dCutErr, dCutDrops, dCutFull, dTraceDrop, dTraceW, dTraceErr, dQWait, dQDrop, dQUser, dQBound, dReader, dQErr, dHookFix, dHookErr, dRecErr, dRH0,
	dRgEvents, dRgLive, dRgPackets}

type collector struct {
	o       Options
	qErrs   uint64
	qErrsMu sync.Mutex
}

func newCollector(o Options) *collector {
	if o.QueueFile == "" {
		o.QueueFile = DefaultQueueFile
	}
	if o.Version == "" {
		o.Version = "devel"
	}
	return &collector{o: o}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// latencyBounds are the exported histogram buckets: bucket i of
// engine.Stats.Latency holds durations below 2^i ns, so every other power
// of two from 2^10 ns (about 1µs) to 2^30 ns (about 1.07s).
var latencyBounds = func() []int {
	var b []int
	for i := 10; i <= 30; i += 2 {
		b = append(b, i)
	}
	return b
}()

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	e := c.o.Engine
	s := e.Stats()
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	gauge(dBuild, 1, c.o.Version, runtime.Version())

	for st := range s.Verdicts {
		stage := policy.Stage(st).String()
		counter(dQueued, s.Queued[st].Load(), stage)
		for v := range s.Verdicts[st] {
			if v > int(policy.Drop) {
				continue
			}
			verdict := policy.Verdict(v).String()
			for r := range s.Verdicts[st][v] {
				if n := s.Verdicts[st][v][r].Load(); n != 0 {
					counter(dVerdicts, n, stage, verdict, policy.Reason(r).String())
				}
			}
		}
	}
	for _, h := range e.RuleHits() {
		counter(dRuleHits, h.Hits, h.Kind, h.Tier, h.Name, h.Dir, strconv.Itoa(h.Rule), h.Action)
	}

	var count, cum uint64
	buckets := map[float64]uint64{}
	bi := 0
	for i := range s.Latency {
		n := s.Latency[i].Load()
		count += n
		cum += n
		for bi < len(latencyBounds) && latencyBounds[bi] == i {
			buckets[math.Ldexp(1, i)/1e9] = cum
			bi++
		}
	}
	ch <- prometheus.MustNewConstHistogram(dLatency, count, float64(s.LatencySum.Load())/1e9, buckets)

	counter(dDenyHits, s.DenyHits.Load())
	if d := c.o.DenyCache; d != nil {
		gauge(dDenyLen, float64(d.Len()))
		gauge(dDenyCap, float64(d.Cap()))
		counter(dDenyEvict, d.Stats().Evictions)
	}
	counter(dMalformed, s.Malformed.Load())
	counter(dUndeliv, s.Undelivered.Load())
	counter(dTrunc, s.Truncated.Load())
	counter(dDeadline, s.Deadline.Load())
	counter(dVerdErr, s.VerdictErr.Load())

	counter(dReloads, s.Reloads.Load(), "ok")
	counter(dReloads, s.ReloadErrs.Load(), "error")
	if r := c.o.Reloads; r != nil {
		if set, ok, at, re := r.last(); set {
			v := 0.0
			if ok {
				v = 1
			}
			gauge(dLastOK, v)
			gauge(dLastAt, float64(at.UnixNano())/1e9)
			gauge(dLastRe, float64(re))
		}
	}
	gen, hash := e.Gen()
	gauge(dGen, float64(gen))
	if hash != "" {
		gauge(dPolicy, 1, hash)
	}
	counter(dRecheck, s.Rechecked.Load())
	counter(dCut, s.Cut.Load())
	counter(dCutErr, s.CutErr.Load())
	counter(dCutDrops, s.CutFlowDrops.Load())
	counter(dCutFull, s.CutMemoryFull.Load())
	counter(dHookFix, s.HookRepairs.Load())
	counter(dHookErr, s.HookCheckErrs.Load())
	counter(dRecErr, s.RecheckErrs.Load())
	counter(dRH0, s.RoutingHeader0.Load())
	for _, ev := range []struct {
		name string
		v    uint64
	}{{"offered", s.RegionOffers.Load()}, {"queue_full", s.RegionQueueFull.Load()}, {"installed", s.RegionsInstalled.Load()},
		{"coalesced", s.RegionCoalesced.Load()}, {"stale", s.RegionStale.Load()}, {"inexpressible", s.RegionInexpressible.Load()},
		{"mismatch", s.RegionMismatch.Load()}, {"set_full", s.RegionSetFull.Load()}, {"failsafe", s.RegionFailsafe.Load()},
		{"error", s.RegionErrors.Load()}, {"flushed", s.RegionFlushes.Load()}, {"repaired", s.RegionRepairs.Load()},
		{"ended", s.RegionEnded.Load()}} {
		counter(dRgEvents, ev.v, ev.name)
	}
	gauge(dRgLive, float64(s.RegionsLive.Load()))
	counter(dRgPackets, s.RegionPackets.Load())

	if c.o.Trace == nil {
		counter(dTraceDrop, s.TraceDrops.Load())
	}
	if c.o.Trace != nil {
		t := c.o.Trace()
		counter(dTraceDrop, t.Dropped) // buffer full and failed writes
		counter(dTraceW, t.Written)
		counter(dTraceErr, t.Errors)
	}

	rt := e.Runtime()
	stageOf := func(q uint16) string {
		if st, ok := engine.StageOfQueue(rt.QueueBase, rt.Queues, q); ok {
			return st.String()
		}
		return "unknown"
	}
	rows, err := ReadQueueFile(c.o.QueueFile)
	c.qErrsMu.Lock()
	if err != nil {
		c.qErrs++
	}
	counter(dQErr, c.qErrs)
	c.qErrsMu.Unlock()
	if err == nil {
		byNum := make(map[uint16]QueueRow, len(rows))
		for _, r := range rows {
			byNum[r.Num] = r
		}
		for _, q := range e.QueueNums() {
			qs, stage := strconv.Itoa(int(q)), stageOf(q)
			r, bound := byNum[q]
			b := 0.0
			if bound {
				b = 1
			}
			gauge(dQBound, b, qs, stage)
			gauge(dQWait, float64(r.Waiting), qs, stage)
			counter(dQDrop, r.Dropped, qs, stage)
			counter(dQUser, r.UserDropped, qs, stage)
		}
	}
	for _, r := range e.Readers() {
		counter(dReader, r.Handled, strconv.Itoa(int(r.Queue)), r.Stage.String())
	}
}
