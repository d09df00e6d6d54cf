// Package engine is nfgate's dataplane core: it derives the kernel hooks
// from the compiled policy, reads queued packets, evaluates them with the
// current policy snapshot and answers each with exactly one verdict.
//
// A packet's path: the kernel queues the first packet(s) of a new flow at a
// stage's hook (the queue number says which stage, see HookPlan); the queue
// adapter converts the kernel message into a Packet; the worker of that
// queue decodes it (classify.Decoder, reused), looks up the endpoints bound
// to its interfaces, evaluates the stage with the current *policy.Program
// (loaded from an atomic.Pointer) and answers NF_DROP, or NF_REPEAT with
// nfgate's mark bits set (Marks), which nfgate's chain saves to the
// connmark and acts on. Later packets of the flow never leave the kernel.
//
// Allocation contract: from the Packet the adapter hands over to the
// verdict it passes back, the engine allocates nothing (TestNoAllocs).
// Per-packet code returns no errors: malformed packets, unknown
// interfaces and internal trouble all have a defined verdict.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// Loaded is a validated, compiled configuration ready to go live.
type Loaded struct {
	Policy Policy
	Config *policy.Config
	Hash   string   // short hash of the configuration files
	Files  []string // files read
}

// Options configure an Engine. Hooks, Links are required; the others may be nil.
type Options struct {
	Runtime   config.Runtime
	Hooks     Hooks
	Links     Links
	Conntrack Conntrack
	Deny      DenyCache
	Tracer    Tracer
	Log       *slog.Logger
	Now       func() time.Time
	// NewDecoder makes one packet decoder per queue reader (default classify.Decoder).
	NewDecoder func() Decoder
	// HookCheck is the period of the check that the kernel still holds
	// nfgate's hooks (heal.go): 0 means DefaultHookCheck, < 0 none.
	HookCheck time.Duration
	// Regions are the kernel's deny-region sets (regions.go); nil, or
	// Runtime.DenyRegionSize 0, means none: every denied packet is
	// queued, as before.
	Regions RegionSets
}

// snapshot is one generation of everything a worker reads.
type snapshot struct {
	pol    Policy
	cfg    *policy.Config
	gen    uint64
	hash   string
	files  []string
	binds  map[uint32]policy.Binding
	names  map[uint32]string
	epName []string
	tierer interface{ TierName(int32) string }
	eper   interface {
		EndpointName(policy.EndpointID) string
	}
	plan   *HookPlan
	reject bool
	hits   *ruleHits // per-rule counters of this generation (counters.go)
	// rprog computes deny regions (nil: the policy cannot); repoch is the
	// region epoch: elements are installed only from the snapshot of the
	// live epoch (regionmgr.go).
	rprog  regioner
	repoch uint64
}

// Engine is safe for concurrent use.
type Engine struct {
	opt     Options
	rt      config.Runtime
	marks   Marks
	log     *slog.Logger
	now     func() time.Time
	mono    bool // now is time.Now: see nanos
	cur     atomic.Pointer[snapshot]
	mu      sync.Mutex // serialises Swap and link refreshes
	gen     uint64
	stats   Stats
	cuts    chan FlowTuple
	workers []*worker
	wmu     sync.Mutex
	rg      *regionMgr // nil: no kernel deny regions
	cutmem  *cutMemory // flows re-checks cut (cutmem.go)
	repoch  uint64     // last region epoch handed out (under mu)
}

// Stats are the engine's counters. Read them with Snapshot.
type Stats struct {
	Queued     [numStages]atomic.Uint64 // packets received per stage
	Accepted   [numStages]atomic.Uint64
	Dropped    [numStages]atomic.Uint64
	None       [numStages]atomic.Uint64
	DenyHits   atomic.Uint64 // drops answered from the deny cache
	Malformed  atomic.Uint64 // dropped on a policed interface: not decodable far enough to match
	Fragments  atomic.Uint64 // non-first fragments evaluated without ports/ICMP (conntrack normally reassembles)
	Deadline   atomic.Uint64 // failure-mode verdicts given by the watchdog
	VerdictErr atomic.Uint64 // verdicts the kernel refused
	// Undelivered counts packets the kernel numbered but never delivered
	// (its socket buffer was full: dropped, or accepted in fail-open mode).
	Undelivered atomic.Uint64
	Truncated   atomic.Uint64 // dropped on a policed interface: headers longer than the queue's copy range
	Rechecked   atomic.Uint64 // flows marked for re-check by reloads
	Cut         atomic.Uint64 // re-checked flows the new policy denied
	CutErr      atomic.Uint64
	// CutFlowDrops counts new packets of cut flows dropped (cutmem.go);
	// CutMemoryFull counts cuts the full memory could not remember.
	CutFlowDrops  atomic.Uint64
	CutMemoryFull atomic.Uint64
	TraceDrops    atomic.Uint64
	Reloads       atomic.Uint64
	ReloadErrs    atomic.Uint64
	Panics        atomic.Uint64 // evaluations that panicked (answered with the failure-mode verdict)
	// HookRepairs counts reinstalls of hooks someone else changed;
	// HookCheckErrs failed checks (heal.go). RecheckErrs counts reloads
	// whose re-check of existing flows failed (the reload is degraded).
	HookRepairs   atomic.Uint64
	HookCheckErrs atomic.Uint64
	RecheckErrs   atomic.Uint64
	// RoutingHeader0 counts IPv6 packets with a type 0 routing header
	// dropped on policed interfaces (also counted in Malformed).
	RoutingHeader0 atomic.Uint64
	// Kernel deny regions (regions.go): denied packets offered to the
	// installer and those the full request queue refused; elements
	// installed; requests already covered by an element, from an older
	// snapshot, whose box the kernel cannot express or that the policy's
	// region did not confirm; elements refused for a full set, or kept
	// away from a failsafe port; kernel errors; flushes (reloads,
	// binding changes) and repairs; elements ended; live elements and the
	// packets elements dropped (both as last read).
	RegionOffers        atomic.Uint64
	RegionQueueFull     atomic.Uint64
	RegionsInstalled    atomic.Uint64
	RegionCoalesced     atomic.Uint64
	RegionStale         atomic.Uint64
	RegionInexpressible atomic.Uint64
	RegionMismatch      atomic.Uint64
	RegionSetFull       atomic.Uint64
	RegionFailsafe      atomic.Uint64
	RegionErrors        atomic.Uint64
	RegionFlushes       atomic.Uint64
	RegionRepairs       atomic.Uint64
	RegionEnded         atomic.Uint64
	RegionsLive         atomic.Uint64
	RegionPackets       atomic.Uint64
	// Verdicts counts decisions by stage, verdict and reason (deny-cache
	// answers included); Latency/LatencySum time decide (counters.go).
	Verdicts   [numStages][NumVerdicts][NumReasons]atomic.Uint64
	Latency    [LatencyBuckets]atomic.Uint64
	LatencySum atomic.Uint64 // nanoseconds
}

// StatsView is a plain copy of Stats, keyed by stage name.
type StatsView struct {
	Gen         uint64            `json:"gen"`
	Hash        string            `json:"hash"`
	Queued      map[string]uint64 `json:"queued"`
	Accepted    map[string]uint64 `json:"accepted"`
	Dropped     map[string]uint64 `json:"dropped"`
	None        map[string]uint64 `json:"none"`
	DenyHits    uint64            `json:"deny_cache_hits"`
	Malformed   uint64            `json:"malformed"`
	Fragments   uint64            `json:"fragments"`
	Deadline    uint64            `json:"deadline_verdicts"`
	VerdictErr  uint64            `json:"verdict_errors"`
	Undelivered uint64            `json:"undelivered"`
	Truncated   uint64            `json:"truncated"`
	Rechecked   uint64            `json:"rechecked"`
	Cut         uint64            `json:"cut"`
	CutErr      uint64            `json:"cut_errors"`
	// CutFlowDrops: new packets of cut flows dropped; CutMemoryFull:
	// cuts not remembered (nfgate extension, cutmem.go).
	CutFlowDrops  uint64 `json:"cut_flow_drops"`
	CutMemoryFull uint64 `json:"cut_memory_full"`
	TraceDrops    uint64 `json:"trace_drops"`
	Reloads       uint64 `json:"reloads"`
	ReloadErrs    uint64 `json:"reload_errors"`
	Panics        uint64 `json:"panics"`
	// HookRepairs: hooks someone else changed, reinstalled.
	HookRepairs   uint64 `json:"hook_repairs"`
	HookCheckErrs uint64 `json:"hook_check_errors"`
	RecheckErrs   uint64 `json:"recheck_errors"`
	// RoutingHeader0: IPv6 type 0 routing headers dropped (nfgate extension).
	RoutingHeader0 uint64 `json:"routing_header_0"`
	// Regions: the kernel deny regions (nfgate extension).
	Regions RegionStatsView `json:"regions"`
}

// RegionStatsView is the deny regions' counters (Stats.Region*).
type RegionStatsView struct {
	Enabled       bool   `json:"enabled"`
	Offers        uint64 `json:"offers"`
	QueueFull     uint64 `json:"queue_full"`
	Installed     uint64 `json:"installed"`
	Coalesced     uint64 `json:"coalesced"`
	Stale         uint64 `json:"stale"`
	Inexpressible uint64 `json:"inexpressible"`
	Mismatch      uint64 `json:"mismatch"`
	SetFull       uint64 `json:"set_full"`
	Failsafe      uint64 `json:"failsafe"`
	Errors        uint64 `json:"errors"`
	Flushes       uint64 `json:"flushes"`
	Repairs       uint64 `json:"repairs"`
	Ended         uint64 `json:"ended"`
	Live          uint64 `json:"live"`
	Packets       uint64 `json:"packets"`
}

// New checks the runtime settings and returns an engine with no policy yet.
func New(o Options) (*Engine, error) {
	if o.Hooks == nil || o.Links == nil {
		return nil, errors.New("engine: Hooks and Links are required")
	}
	if o.NewDecoder == nil {
		o.NewDecoder = DefaultDecoder
	}
	rt := o.Runtime
	if rt.Queues <= 0 {
		rt.Queues = runtime.NumCPU()
	}
	if err := CheckQueues(rt.QueueBase, rt.Queues); err != nil {
		return nil, err
	}
	m, err := NewMarks(rt.MarkMask)
	if err != nil {
		return nil, err
	}
	if rt.Deadline <= 0 {
		rt.Deadline = 200 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	mono := o.Now == nil // the packet path may read the monotonic clock alone (worker.go)
	if o.Now == nil {
		o.Now = time.Now
	}
	e := &Engine{opt: o, rt: rt, marks: m, log: o.Log, now: o.Now, mono: mono, cuts: make(chan FlowTuple, 1024),
		cutmem: newCutMemory(cutFlowMax, cutFlowTTL)}
	if o.Regions != nil && rt.DenyRegionSize > 0 {
		e.rg = newRegionMgr(e, o.Regions, rt.DenyRegionSize, rt.DenyRegionTTL)
	}
	return e, nil
}

// Runtime returns the effective runtime settings (Queues filled in).
func (e *Engine) Runtime() config.Runtime { return e.rt }

// Marks returns the mark layout.
func (e *Engine) Marks() Marks { return e.marks }

// Stats returns the live counters.
func (e *Engine) Stats() *Stats { return &e.stats }

// Gen returns the live generation and hash.
func (e *Engine) Gen() (uint64, string) {
	if s := e.cur.Load(); s != nil {
		return s.gen, s.hash
	}
	return 0, ""
}

// QueueNums returns every queue number the engine's hooks use.
func (e *Engine) QueueNums() []uint16 {
	n := make([]uint16, 0, numStages*e.rt.Queues)
	for i := 0; i < numStages*e.rt.Queues; i++ {
		n = append(n, e.rt.QueueBase+uint16(i))
	}
	return n
}

// Snapshot copies the counters.
func (e *Engine) Snapshot() StatsView {
	s := &e.stats
	v := StatsView{Queued: map[string]uint64{}, Accepted: map[string]uint64{}, Dropped: map[string]uint64{}, None: map[string]uint64{}}
	v.Gen, v.Hash = e.Gen()
	for i := 0; i < numStages; i++ {
		n := policy.Stage(i).String()
		v.Queued[n] = s.Queued[i].Load()
		v.Accepted[n] = s.Accepted[i].Load()
		v.Dropped[n] = s.Dropped[i].Load()
		v.None[n] = s.None[i].Load()
	}
	v.DenyHits = s.DenyHits.Load()
	v.Malformed = s.Malformed.Load()
	v.Fragments = s.Fragments.Load()
	v.Deadline = s.Deadline.Load()
	v.VerdictErr = s.VerdictErr.Load()
	v.Undelivered = s.Undelivered.Load()
	v.Truncated = s.Truncated.Load()
	v.Rechecked = s.Rechecked.Load()
	v.Cut = s.Cut.Load()
	v.CutErr = s.CutErr.Load()
	v.CutFlowDrops = s.CutFlowDrops.Load()
	v.CutMemoryFull = s.CutMemoryFull.Load()
	v.TraceDrops = s.TraceDrops.Load()
	v.Reloads = s.Reloads.Load()
	v.ReloadErrs = s.ReloadErrs.Load()
	v.Panics = s.Panics.Load()
	v.HookRepairs = s.HookRepairs.Load()
	v.HookCheckErrs = s.HookCheckErrs.Load()
	v.RecheckErrs = s.RecheckErrs.Load()
	v.RoutingHeader0 = s.RoutingHeader0.Load()
	v.Regions = RegionStatsView{Enabled: e.rg != nil, Offers: s.RegionOffers.Load(), QueueFull: s.RegionQueueFull.Load(),
		Installed: s.RegionsInstalled.Load(), Coalesced: s.RegionCoalesced.Load(), Stale: s.RegionStale.Load(),
		Inexpressible: s.RegionInexpressible.Load(), Mismatch: s.RegionMismatch.Load(), SetFull: s.RegionSetFull.Load(),
		Failsafe: s.RegionFailsafe.Load(), Errors: s.RegionErrors.Load(), Flushes: s.RegionFlushes.Load(),
		Repairs: s.RegionRepairs.Load(), Ended: s.RegionEnded.Load(), Live: s.RegionsLive.Load(), Packets: s.RegionPackets.Load()}
	return v
}

// build makes a snapshot for l over the current interfaces.
func (e *Engine) build(l *Loaded, gen uint64) *snapshot {
	s := &snapshot{pol: l.Policy, cfg: l.Config, gen: gen, hash: l.Hash, files: l.Files,
		binds: map[uint32]policy.Binding{}, names: map[uint32]string{}, hits: newRuleHits(l.Config)}
	ifaces := e.opt.Links.Interfaces()
	for _, ifc := range ifaces {
		s.binds[ifc.Index] = l.Policy.Bind(policy.Interface{Name: ifc.Name, Addrs: ifc.Addrs})
		s.names[ifc.Index] = ifc.Name
	}
	if l.Config != nil {
		for _, h := range l.Config.HostEndpoints {
			s.epName = append(s.epName, h.Name)
		}
		s.reject = l.Config.Settings.DenyAction == policy.DenyReject
	}
	s.rprog, _ = l.Policy.(regioner)
	s.tierer, _ = l.Policy.(interface{ TierName(int32) string })
	s.eper, _ = l.Policy.(interface {
		EndpointName(policy.EndpointID) string
	})
	unt, pre, filt := PlanDispatch(l.Policy, l.Config, ifaces)
	plan := &HookPlan{Marks: e.marks, QueueBase: e.rt.QueueBase, Queues: e.rt.Queues,
		FailOpen: e.rt.FailureMode == config.FailOpen, Reject: s.reject, InvalidDrop: true,
		Untracked: unt, PreDNAT: pre, Filter: filt, Workload: WorkloadPatterns(l.Config)}
	if l.Config != nil {
		plan.InvalidDrop = !l.Config.Settings.DisableConntrackInvalidCheck
		plan.FailsafeIn = l.Config.Settings.FailsafeInbound
		plan.FailsafeOut = l.Config.Settings.FailsafeOutbound
	}
	s.plan = plan
	return s
}

// waitWorkers waits, at most max, until every worker that was handling a
// packet has answered it.
func (e *Engine) waitWorkers(max time.Duration) {
	e.wmu.Lock()
	ws := e.workers
	e.wmu.Unlock()
	end := time.Now().Add(max)
	for _, w := range ws {
		b := w.phase.Load()
		for b&1 == 1 && w.phase.Load() == b && time.Now().Before(end) {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// ReloadResult reports one Swap.
type ReloadResult struct {
	Gen       uint64
	Rechecked int
	// RecheckErr: the new policy is live, but existing flows could not
	// all be marked for re-check (the reload is degraded: some flows keep
	// the old policy's verdict).
	RecheckErr error
	// Where the swap's time went: deriving and installing the hooks, waiting
	// for in-flight answers, and marking existing flows for re-check.
	Hooks, Wait, Recheck time.Duration
}

// Swap makes l the live policy: it derives and installs the hooks, swaps
// the snapshot atomically, and, unless this is the first policy, marks
// every flow nfgate decided for re-check and purges the deny cache. If the
// hooks cannot be installed, the old policy stays live.
func (e *Engine) Swap(l *Loaded) (ReloadResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.cur.Load()
	t0 := time.Now()
	s := e.build(l, e.gen+1)
	// No deny region of the old policy may drop a packet once the new
	// policy is live: installs stop, every element goes (one kernel
	// transaction), and only then does the new snapshot go live; installs
	// resume for it alone (regionmgr.go).
	if err := e.newRegionEpoch(s, "flushed", old == nil); err != nil {
		e.resumeRegions(old)
		return ReloadResult{}, fmt.Errorf("engine: removing the deny regions: %w", err)
	}
	// The hooks depend on the plan alone: a new policy with the same plan
	// (the common reload: rules changed, endpoints and interfaces not)
	// keeps the installed rules (rewriting them is six iptables processes,
	// about 100 ms). Rules someone else changed meanwhile are the self-
	// healing check's (heal.go), as between reloads.
	if old == nil || !planEqual(old.plan, s.plan) {
		if err := e.opt.Hooks.Apply(s.plan); err != nil {
			e.restoreRegions(old)
			return ReloadResult{}, fmt.Errorf("engine: installing hooks: %w", err)
		}
	}
	e.gen++
	e.cur.Store(s)
	e.resumeRegions(s)
	res := ReloadResult{Gen: s.gen, Hooks: time.Since(t0)}
	if old != nil {
		// Packets being decided right now may have used the old policy;
		// their flows are not in the conntrack table until answered, so
		// the re-check below would miss them. Wait for those answers
		// (a worker that sees the swap decides again with the new policy).
		t1 := time.Now()
		e.waitWorkers(2 * e.rt.Deadline)
		res.Wait = time.Since(t1)
		if e.opt.Deny != nil {
			e.opt.Deny.Purge()
		}
		e.cutmem.clear()
		t2 := time.Now()
		if e.opt.Conntrack != nil {
			m := e.marks
			n, err := e.opt.Conntrack.Recheck(m.Persist(), m.Persist(), m.Recheck)
			res.Rechecked = n
			e.stats.Rechecked.Add(uint64(n))
			if err != nil {
				res.RecheckErr = err
				e.stats.RecheckErrs.Add(1)
			}
		}
		res.Recheck = time.Since(t2)
	}
	return res, nil
}

// Reload is Swap plus the bookkeeping of a reload attempt: counters, log
// and trace line. errs are the load/compile errors of a failed attempt
// (l is then nil and the old policy stays live).
func (e *Engine) Reload(l *Loaded, errs []string, files []string) (ReloadResult, error) {
	var res ReloadResult
	var err error
	if l == nil {
		err = errors.New("engine: configuration rejected")
	} else {
		res, err = e.Swap(l)
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	gen, hash := e.Gen()
	ev := ReloadInfo{Time: e.now(), Gen: gen, Hash: hash, OK: err == nil, Errors: errs, Rechecked: res.Rechecked, Files: files}
	if err == nil && res.RecheckErr != nil {
		ev.Warnings = []string{"re-check of existing flows incomplete: " + res.RecheckErr.Error()}
	}
	if err != nil {
		e.stats.ReloadErrs.Add(1)
		e.log.Error("reload failed, previous policy stays live", "gen", gen, "errors", errs)
	} else if res.RecheckErr != nil {
		e.stats.Reloads.Add(1)
		e.log.Error("policy live, but DEGRADED: re-check of existing flows incomplete; flows it missed keep their old verdict",
			"gen", gen, "hash", hash, "err", res.RecheckErr, "rechecked", res.Rechecked)
	} else {
		e.stats.Reloads.Add(1)
		e.log.Info("policy live", "gen", gen, "hash", hash, "rechecked", res.Rechecked,
			"hooks", res.Hooks.Round(time.Microsecond), "wait", res.Wait.Round(time.Microsecond), "recheck", res.Recheck.Round(time.Microsecond))
	}
	if e.opt.Tracer != nil {
		e.opt.Tracer.Reload(ev)
	}
	return res, err
}

// RefreshLinks rebuilds the interface bindings and hooks for the live
// policy after an interface or address change.
func (e *Engine) RefreshLinks() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.cur.Load()
	if old == nil {
		return nil
	}
	s := e.build(&Loaded{Policy: old.pol, Config: old.cfg, Hash: old.hash, Files: old.files}, old.gen)
	s.hits = old.hits // same generation: keep counting
	same := planEqual(old.plan, s.plan)
	// A deny region holds for the interface (pair) whose bindings gave its
	// stage evaluation: when bindings or hooks change, every element goes
	// before the new bindings are live.
	s.repoch = old.repoch
	if !bindsKept(old.binds, s.binds) {
		if err := e.newRegionEpoch(s, "rebound", false); err != nil {
			e.resumeRegions(old)
			return fmt.Errorf("engine: removing the deny regions: %w", err)
		}
	}
	if !same {
		if err := e.opt.Hooks.Apply(s.plan); err != nil {
			if s.repoch != old.repoch {
				e.restoreRegions(old)
			} else {
				e.resumeRegions(old)
			}
			return fmt.Errorf("engine: updating hooks: %w", err)
		}
	}
	e.cur.Store(s)
	e.resumeRegions(s)
	return nil
}

// bindsKept reports whether every interface of old is still there with the
// same binding (a new interface has no elements yet).
func bindsKept(old, cur map[uint32]policy.Binding) bool {
	for i, b := range old {
		if c, ok := cur[i]; !ok || c != b {
			return false
		}
	}
	return true
}

// regionSpec is what the kernel's region chains are rendered from for s.
func (e *Engine) regionSpec(s *snapshot) RegionSpec {
	return RegionSpec{Marks: e.marks, Reject: s.reject, FailsafeIn: s.plan.FailsafeIn, Size: e.rg.size}
}

// newRegionEpoch stops region installs, removes every element and renders
// the region chains for s, and gives s a new region epoch (0: no regions
// for s, the table could not be made). The caller holds e.mu and calls
// resumeRegions once the snapshot that is to be live is stored. An error
// means elements of the live policy may be left in the kernel: the caller
// must not make s live. start: there is no live policy yet, so a table that
// cannot be made or removed only costs s its regions.
func (e *Engine) newRegionEpoch(s *snapshot, why string, start bool) error {
	if e.rg == nil {
		return nil
	}
	e.rg.pause()
	e.repoch++
	s.repoch = e.repoch
	ok, err := e.rg.flush(e.regionSpec(s), why)
	if !ok {
		s.repoch = 0
	}
	if err != nil && start {
		e.log.Error("deny regions unavailable: denied floods are queued (elements of an earlier run expire within their TTL)", "err", err)
		return nil
	}
	if err == nil && !ok {
		e.log.Error("deny regions unavailable for this policy: denied floods are queued")
	}
	return err
}

// resumeRegions lets the installer take requests from s's region epoch.
func (e *Engine) resumeRegions(s *snapshot) {
	if e.rg != nil && s != nil {
		e.rg.resume(s.repoch)
	}
}

// restoreRegions is resumeRegions for a snapshot that stays live after the
// table was re-rendered for one that did not go live: the table is
// rendered for s again (its deny action and failsafes), empty. s's epoch
// is not changed (workers read it): if the table cannot be made, installs
// stay off until the next reload.
func (e *Engine) restoreRegions(s *snapshot) {
	if e.rg == nil || s == nil {
		return
	}
	if ok, err := e.rg.flush(e.regionSpec(s), "flushed"); ok && err == nil {
		e.rg.resume(s.repoch)
	}
}

func planEqual(a, b *HookPlan) bool {
	return fmt.Sprint(*a) == fmt.Sprint(*b)
}

// Run serves the queues until ctx ends: one reader per queue, plus the
// watchdog, the flow cutter and the link watcher. It returns the first
// queue error, or nil when ctx ended.
func (e *Engine) Run(ctx context.Context, queues []Queue) error {
	if e.cur.Load() == nil {
		return errors.New("engine: no policy")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(queues))
	for _, q := range queues {
		st, ok := StageOfQueue(e.rt.QueueBase, e.rt.Queues, q.Num())
		if !ok {
			return fmt.Errorf("engine: queue %d is outside nfgate's range", q.Num())
		}
		w := e.newWorker(q, st)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := q.Receive(ctx, w.burst); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("engine: queue %d: %w", q.Num(), err)
				cancel()
			}
		}()
	}
	if e.rg != nil {
		wg.Add(1)
		go func() { defer wg.Done(); e.rg.run(ctx) }()
	}
	wg.Add(4)
	go func() { defer wg.Done(); e.watchdog(ctx) }()
	go func() { defer wg.Done(); e.cutter(ctx) }()
	go func() { defer wg.Done(); e.watchLinks(ctx) }()
	go func() { defer wg.Done(); e.healHooks(ctx) }()
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func (e *Engine) newWorker(q Queue, st policy.Stage) *worker {
	w := &worker{e: e, q: q, stage: st, dec: e.opt.NewDecoder()}
	w.rec.Stage = st.String()
	w.rec.Queue = q.Num()
	e.wmu.Lock()
	e.workers = append(e.workers, w)
	e.wmu.Unlock()
	return w
}

func (e *Engine) watchLinks(ctx context.Context) {
	ch := e.opt.Links.Changed()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			if err := e.RefreshLinks(); err != nil {
				e.log.Error("interface change", "err", err)
			}
		}
	}
}

// cutFlow remembers a flow a re-check denied (cutmem.go) and deletes its
// conntrack entry.
func (e *Engine) cutFlow(t FlowTuple) {
	if e.opt.Conntrack == nil {
		return
	}
	// Remembered first: the peer's retransmission must not find the entry
	// gone and the flow unremembered.
	if !e.cutmem.add(t, e.nanos()) {
		if e.stats.CutMemoryFull.Add(1) == 1 {
			e.log.Warn("the memory of cut flows is full: a cut flow's peer may revive it", "max", cutFlowMax)
		}
	}
	if err := e.opt.Conntrack.Cut(t); err != nil {
		e.stats.CutErr.Add(1)
		e.log.Debug("cut flow", "err", err)
	}
}

func (e *Engine) cutter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-e.cuts:
			e.cutFlow(t)
		}
	}
}
