package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nfgate/nfgate/conntrack/ctnl"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/denycache"
	"github.com/nfgate/nfgate/engine/ipt"
	"github.com/nfgate/nfgate/engine/kset"
	"github.com/nfgate/nfgate/engine/links"
	"github.com/nfgate/nfgate/engine/metrics"
	"github.com/nfgate/nfgate/engine/nfq"
	"github.com/nfgate/nfgate/engine/trace"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

func init() {
	commands["run"] = subcommand{"enforce the policy on this host (SIGHUP reloads)", runMain}
	commands["cleanup"] = subcommand{"remove every kernel rule nfgate installed", cleanupMain}
}

func cleanupMain(args []string) int {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	force := fs.Bool("force", false, "remove the rules even while a daemon runs in this network namespace (it restores them within seconds)")
	lockDir := fs.String("lock-dir", DefaultLockDir, "directory of the single-instance lock files")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	return cleanup(*lockDir, *force, os.Stderr)
}

// cleanup removes nfgate's kernel rules, unless a daemon holds this
// network namespace's lock (then it refuses, unless force): taking away a
// running firewall's hooks by accident is what the lock prevents.
func cleanup(lockDir string, force bool, stderr io.Writer) int {
	path, err := lockFile(lockDir)
	if err != nil {
		fmt.Fprintln(stderr, "nfgate cleanup:", err)
		return 1
	}
	lk, err := takeLock(path)
	var held *errLocked
	switch {
	case errors.As(err, &held) && !force:
		fmt.Fprintf(stderr, "nfgate cleanup: refusing: %v; stop it first (systemctl stop nfgate), or use --force (the daemon restores its rules within seconds)\n", err)
		return 1
	case errors.As(err, &held):
		fmt.Fprintf(stderr, "nfgate cleanup: --force: removing the rules although %v\n", err)
	case err != nil:
		// No lock directory (not root, read-only /run): nothing can hold
		// it either; go on.
	default:
		defer lk.release()
	}
	if err := removeRules(); err != nil {
		fmt.Fprintln(stderr, "nfgate cleanup:", err)
		return 1
	}
	return 0
}

// removeRules removes nfgate's kernel rules: its iptables chains and its
// deny-region table (tests replace it).
var removeRules = func() error {
	return errors.Join(ipt.Cleanup(), kset.Remove())
}

// loadLive reads, validates and compiles path. On failure errs holds
// one "file:line: problem" line per error.
func loadLive(path string) (l *engine.Loaded, rt config.Runtime, errs []string, files []string) {
	lv := loadLiveFull(path)
	return lv.l, lv.rt, lv.errs, lv.files
}

// liveLoad is one load of the local configuration.
type liveLoad struct {
	l     *engine.Loaded
	rt    config.Runtime
	errs  []string
	files []string
}

func loadLiveFull(path string) liveLoad {
	defer boundGC()()
	ld, err := config.Load(path)
	return compileLoaded(ld, err)
}

// compileLoaded checks the trust of a loaded configuration's files and
// compiles it.
func compileLoaded(ld *config.Loaded, err error) liveLoad {
	return compileChecked(ld, err, true)
}

// compileLoadedNoPerms compiles a configuration that did not come from the
// files on disk (the last good copy, whose own file was checked).
func compileLoadedNoPerms(ld *config.Loaded, err error) liveLoad {
	return compileChecked(ld, err, false)
}

func compileChecked(ld *config.Loaded, err error, perms bool) (lv liveLoad) {
	if ld != nil {
		lv.files = ld.Files
	}
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			for _, d := range ce {
				lv.errs = append(lv.errs, d.String())
			}
		} else {
			lv.errs = append(lv.errs, config.Sanitize(err.Error(), 1024))
		}
		return lv
	}
	if probs := configPermProblems(ld.Files); perms && len(probs) > 0 {
		lv.errs = probs
		return lv
	}
	prog, err := policy.Compile(ld.Policy)
	if err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			lv.errs = append(lv.errs, config.Sanitize(e, 1024))
		}
		return lv
	}
	lv.l = &engine.Loaded{Policy: prog, Config: ld.Policy, Hash: hex.EncodeToString(ld.Hash[:4]), Files: ld.Files}
	lv.rt = ld.Runtime
	return lv
}

// tightGC bounds the heap while a configuration is loaded and compiled
// (boundGC) and returns the function that restores the collector and hands
// the freed memory back to the system.
func tightGC() func() {
	restore := boundGC()
	return func() {
		restore()
		debug.FreeOSMemory()
	}
}

// boundGC bounds the heap while a configuration is loaded and compiled: a
// 10^5-rule file is a few hundred MB of short-lived parser state, and with
// only the default GOGC the heap would double on top of it. A soft memory
// limit (the larger of 512 MiB and twice the heap in use) does that without
// making the collector run more often for the usual policy: a GOGC of 25
// cost a 10,000-rule reload 150-200 ms of CPU (BenchmarkReload10k), while
// the limit keeps a 10^5-rule reload's peak RSS where GOGC 25 kept it. It
// returns the function that restores the collector; a reload's goroutine
// returns the freed memory after the new policy is live, off that path.
func boundGC() func() {
	gcMu.Lock()
	gcDepth++
	if gcDepth == 1 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		gcSaved = debug.SetMemoryLimit(max(512<<20, 2*int64(ms.HeapInuse)))
	}
	gcMu.Unlock()
	return func() {
		gcMu.Lock()
		gcDepth--
		if gcDepth == 0 {
			debug.SetMemoryLimit(gcSaved)
		}
		gcMu.Unlock()
	}
}

var (
	gcMu    sync.Mutex
	gcDepth int
	gcSaved int64
)

// ctAdapter adapts ctnl to engine.Conntrack.
type ctAdapter struct{ c *ctnl.Conn }

func (a ctAdapter) Recheck(owned, clear, set uint32) (int, error) {
	return a.c.Remark(owned, clear, set)
}
func (a ctAdapter) Cut(t engine.FlowTuple) error {
	icmp := t.Proto == 1 || t.Proto == 58
	return a.c.Delete(ctnl.Tuple{Proto: t.Proto, Src: t.Src, Dst: t.Dst, SrcPort: t.SrcPort, DstPort: t.DstPort, ICMP: icmp})
}

// exitConfig is run's exit status when the configuration is rejected at
// start and no last good configuration can stand in (EX_CONFIG): the
// packaged unit does not restart on it (RestartPreventExitStatus), since
// the same file would be rejected again.
const exitConfig = 78

func runMain(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfgPath := fs.String("config", "/etc/nfgate/nfgate.toml", "configuration file")
	balance := fs.Int("queue-balance", 0, "NFQUEUE queues per stage (default: engine.queues, else the number of CPUs)")
	statsPath := fs.String("stats", "", "write counters as JSON to this file every second (nfgate reload reads it)")
	cleanupFlag := fs.Bool("cleanup", false, "remove nfgate's kernel rules and exit")
	verbose := fs.Bool("v", false, "debug logging")
	dsWait := fs.Duration("datastore-wait", 30*time.Second,
		"with a [datastore]: how long to wait at start for a usable policy from etcd (or its cache) before giving up")
	lockDir := fs.String("lock-dir", DefaultLockDir, "directory of the single-instance lock files (one per network namespace)")
	lastGoodPath := fs.String("last-good", "",
		"keep a copy of the last configuration that went live in this file, and start with it when the configuration is rejected at start")
	reloadTimeout := fs.Duration("reload-timeout", 60*time.Second, "give up a reload whose loading and compiling take longer (the running policy stays)")
	hookCheck := fs.Duration("hook-check", engine.DefaultHookCheck, "how often to check that the kernel still holds nfgate's hooks (restored when not); 0: default, <0: never")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	lvl := slog.LevelInfo
	if *verbose {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	sd := sdNotify{log}
	if *cleanupFlag {
		return cleanup(*lockDir, false, os.Stderr)
	}
	// A reader of the trace or the log that went away must not kill the
	// daemon: writes fail with EPIPE instead (counted by the trace writer).
	signal.Ignore(syscall.SIGPIPE)

	// Register signals before anything slow, so an early SIGHUP is not fatal.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	// Until the main loop runs, SIGTERM ends start-up at once (the kernel
	// rules of an earlier run stay, as on any stop).
	started := make(chan struct{})
	startTerm := make(chan os.Signal, 1)
	signal.Notify(startTerm, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case s := <-startTerm:
			log.Info("stopping during start-up; kernel rules stay in place", "signal", s.String())
			os.Exit(0)
		case <-started:
			signal.Stop(startTerm)
		}
	}()

	// One daemon per network namespace: the lock comes before anything
	// else, so a second one changes nothing (lock.go).
	lkPath, err := lockFile(*lockDir)
	if err != nil {
		log.Error("lock", "err", err)
		return 1
	}
	lk, err := takeLock(lkPath)
	if err != nil {
		log.Error("not starting: "+err.Error(), "lock", lkPath)
		sd.status("not started: " + err.Error())
		return 1
	}
	defer lk.release()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The policy: the local files, or in fleet mode (a [datastore] table)
	// the local files with the resources in etcd (fleet.go).
	restoreGC := tightGC() // (initialPolicy may read the files twice)
	fl, loaded, rt, errs, files := initialPolicy(ctx, *cfgPath, *dsWait, sigs, log)
	restoreGC()
	var startErrs []string // the configuration was rejected; loaded is the last good one
	var lastGoodNote string
	if loaded == nil && fl == nil && *lastGoodPath != "" && !fleetConfig(*cfgPath) {
		lg, lerr := loadLastGood(*lastGoodPath, *cfgPath)
		if lerr != nil {
			log.Error("no last good configuration to start with", "file", *lastGoodPath, "err", lerr)
		} else {
			startErrs = errs
			loaded, rt, files = lg.lv.l, lg.lv.rt, lg.lv.files
			lastGoodNote = fmt.Sprintf("running the last good configuration (hash %s, saved %s) from %s",
				lg.lv.l.Hash, lg.saved.UTC().Format(time.RFC3339), *lastGoodPath)
			for _, e := range errs {
				fmt.Fprintln(os.Stderr, e)
			}
			log.Error("configuration rejected at start; "+lastGoodNote+"; fix the file and reload", "files", files, "errors", len(errs))
		}
	}
	if loaded == nil {
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, e)
		}
		log.Error("configuration rejected", "files", files)
		sd.status("configuration rejected: " + firstLine(errs))
		if fleetConfig(*cfgPath) {
			return 1 // the datastore may come back: systemd retries
		}
		return exitConfig
	}
	if fl != nil {
		// The status writer revokes its lease once ctx ends.
		f := fl
		defer func() { cancel(); f.close() }()
	}
	fileRT := rt // as written: what a reload's [engine] is compared with
	if *balance > 0 {
		rt.Queues = *balance
	}

	hooks, err := ipt.Detect(rt.IptablesBackend)
	if err != nil {
		log.Error("iptables", "err", err)
		return 1
	}
	lt, err := links.Watch(ctx)
	if err != nil {
		log.Error("interface watch", "err", err)
		return 1
	}
	var ct engine.Conntrack
	if c, err := ctnl.Dial(); err != nil {
		log.Warn("ctnetlink unavailable: reloads will not re-check existing flows", "err", err)
	} else {
		// Not waited for: a re-check in progress holds the connection,
		// and stopping must take less than a second.
		defer closeWithin(50*time.Millisecond, func() { c.Close() })
		ct = ctAdapter{c}
	}
	deny := denycache.NewClock(rt.DenyCacheSize, rt.DenyCacheTTL, engine.Nanotime) // the engine's monotonic clock: one read per lookup
	// Kernel deny regions: denied floods dropped in the kernel (docs/architecture.md).
	var regions engine.RegionSets
	if rt.DenyRegionSize > 0 {
		if err := kset.Available(0); err != nil {
			log.Warn("kernel deny regions unavailable: every denied packet is queued", "err", err)
		} else {
			regions = kset.Open(0)
		}
	} else if err := kset.Remove(); err != nil {
		log.Warn("removing the deny-region table of an earlier run", "err", err)
	}
	var tw *trace.Writer
	var tracer engine.Tracer
	if rt.TraceFile != "" {
		if rt.TraceFile == "-" {
			tw = trace.New(os.Stderr, rt.TraceBuffer)
		} else if tw, err = trace.Open(rt.TraceFile, rt.TraceBuffer); err != nil {
			log.Error("trace file", "err", err)
			return 1
		}
		tw.SetLogger(log)
		defer closeWithin(300*time.Millisecond, func() { tw.Close() })
		tracer = engine.TracerOf(tw)
	}
	e, err := engine.New(engine.Options{Runtime: rt, Hooks: hooks, Links: engine.LinksOf(lt), Conntrack: ct,
		Deny: engine.DenyCacheOf(deny), Tracer: tracer, Log: log, HookCheck: *hookCheck, Regions: regions})
	if err != nil {
		log.Error("engine", "err", err)
		return 1
	}
	rt = e.Runtime()
	// Bind the queues before the hooks send packets to them.
	var queues []engine.Queue
	for _, n := range e.QueueNums() {
		q, err := nfq.Open(n, nfq.Options{FailOpen: rt.FailureMode == config.FailOpen})
		if err != nil {
			log.Error("nfqueue", "queue", n, "err", err)
			return 1
		}
		queues = append(queues, q)
	}
	// The metrics listener is opened before the hooks go in, so a bad
	// address stops the start without touching the kernel.
	reloads := &metrics.Reloads{}
	var metricsLn net.Listener
	if rt.MetricsAddress != "" {
		if metricsLn, err = metrics.Listen(rt.MetricsAddress, rt.MetricsAllowRemote); err != nil {
			log.Error("metrics", "err", err)
			return 1
		}
		defer metricsLn.Close()
	}
	runErr := make(chan error, 1)
	res, err := e.Reload(loaded, nil, files)
	reloads.Record(err == nil && startErrs == nil, time.Now(), res.Rechecked)
	if err != nil {
		log.Error("installing the policy", "err", err)
		sd.status("installing the policy failed: " + err.Error())
		return 1
	}
	keepRunningCopy(*statsPath, loaded, log) // for diff --pid, reload --dry-run (running.go)
	if fl != nil {
		fl.start(ctx)
		fl.report(fl.first, res.Gen, nil, nil)
	}
	go func() { runErr <- e.Run(ctx, queues) }()
	queueRange := fmt.Sprintf("%d-%d", rt.QueueBase, int(rt.QueueBase)+len(queues)-1)
	log.Info("nfgate running", "backend", hooks.Backend, "queues", queueRange,
		"per_stage", rt.Queues, "failure_mode", rt.FailureMode.String(), "mark_mask", fmt.Sprintf("%#x", rt.MarkMask))
	if metricsLn != nil {
		o := metrics.Options{Engine: e, DenyCache: deny, Reloads: reloads, Version: version}
		if tw != nil {
			o.Trace = tw.Stats
		}
		reg := metrics.NewRegistry(o)
		if fl != nil {
			for _, c := range fl.collectors() {
				reg.MustRegister(c)
			}
		}
		go func() {
			if err := metrics.Serve(ctx, metricsLn, metrics.Handler(reg)); err != nil {
				log.Error("metrics server stopped", "err", err)
			}
		}()
		log.Info("metrics", "address", metricsLn.Addr().String())
	}
	liveStatus := func(prefix string) string {
		gen, hash := e.Gen()
		return fmt.Sprintf("%spolicy generation %d (%s) live; queues %s; failure mode %s", prefix, gen, hash, queueRange, rt.FailureMode)
	}
	var wdTick <-chan time.Time
	wd := watchdogInterval()
	hc := newHealth(max(wd/2, time.Second))
	if wd > 0 {
		t := time.NewTicker(wd / 3)
		defer t.Stop()
		wdTick = t.C
	}
	var lastReload struct {
		OK     bool      `json:"ok"`
		Time   time.Time `json:"time"`
		Gen    uint64    `json:"gen"`
		Errors []string  `json:"errors,omitempty"`
		// Degraded: the new policy is live, but its re-check of
		// existing flows failed (Warnings say how).
		Degraded bool     `json:"degraded,omitempty"`
		Warnings []string `json:"warnings,omitempty"`
		// LastGood: the configuration was rejected at start and the last
		// good one runs instead.
		LastGood string `json:"last_good,omitempty"`
	}
	lastReload.OK, lastReload.Time, lastReload.Gen = startErrs == nil, time.Now(), res.Gen
	lastReload.Errors, lastReload.LastGood = startErrs, lastGoodNote
	unhealthy := ""

	var statsMu sync.Mutex
	writeStats := func() {
		if *statsPath == "" {
			return
		}
		statsMu.Lock()
		defer statsMu.Unlock()
		v := struct {
			engine.StatsView
			DenyCache  denycache.Stats `json:"deny_cache"`
			Trace      *trace.Stats    `json:"trace,omitempty"`
			LastReload any             `json:"last_reload"`
			Datastore  *fleetStats     `json:"datastore,omitempty"`
		}{StatsView: e.Snapshot(), DenyCache: deny.Stats(), LastReload: &lastReload}
		if tw != nil {
			s := tw.Stats()
			v.Trace = &s
		}
		if fl != nil {
			v.Datastore = fl.stats()
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		tmp := *statsPath + ".tmp"
		if os.WriteFile(tmp, b, 0o644) == nil {
			os.Rename(tmp, *statsPath)
		}
	}
	saveGood := func(lv liveLoad) {
		if *lastGoodPath == "" || fl != nil || lv.l == nil {
			return
		}
		if err := saveLastGood(*lastGoodPath, *cfgPath, lv.files, lv.l.Hash); err != nil {
			log.Warn("keeping a copy of the configuration that went live", "file", *lastGoodPath, "err", err)
		}
	}
	// apply swaps in a new policy (l nil: rejected, errs says why), the
	// same way for SIGHUP and for a datastore change: re-check of existing
	// flows, trace reload line, counters, systemd STATUS. The caller writes
	// the stats file. It runs on the reload goroutine, never on the signal
	// loop.
	apply := func(l *engine.Loaded, nrt config.Runtime, errs, files []string, okWhat, failWhat string) error {
		if l != nil && nrt != fileRT {
			// The engine, its queues, hooks, trace and deny cache were built
			// from rt at start; only policy and [gateway] change on reload.
			log.Warn("[engine] changes take effect at restart; kept the running values", "running", fmt.Sprintf("%+v", fileRT), "file", fmt.Sprintf("%+v", nrt))
		}
		for _, msg := range errs {
			log.Error("config", "error", msg)
		}
		cutBefore := e.Stats().Cut.Load()
		res, err := e.Reload(l, errs, files)
		now := time.Now()
		reloads.Record(err == nil, now, res.Rechecked)
		statsMu.Lock()
		lastReload.OK, lastReload.Time, lastReload.Gen, lastReload.Errors = err == nil, now, res.Gen, nil
		lastReload.Degraded, lastReload.Warnings, lastReload.LastGood = false, nil, ""
		if err != nil {
			lastReload.Gen, _ = e.Gen()
			lastReload.Errors = errs
			if len(errs) == 0 {
				lastReload.Errors = []string{err.Error()}
			}
		} else if res.RecheckErr != nil {
			lastReload.Degraded = true
			lastReload.Warnings = []string{"re-check of existing flows incomplete: " + res.RecheckErr.Error()}
		}
		statsMu.Unlock()
		if err == nil {
			keepRunningCopy(*statsPath, l, log) // for diff --pid, reload --dry-run (running.go)
		}
		switch {
		case err == nil && res.RecheckErr != nil:
			sd.ready(liveStatus(fmt.Sprintf("%s, DEGRADED: re-check of existing flows incomplete (%v), %d flows re-checked; ",
				okWhat, res.RecheckErr, res.Rechecked)))
		case err == nil:
			go func() {
				time.Sleep(3 * time.Second)
				log.Info("re-check after reload", "cut", e.Stats().Cut.Load()-cutBefore)
			}()
			sd.ready(liveStatus(fmt.Sprintf("%s, %d flows re-checked; ", okWhat, res.Rechecked)))
		default:
			sd.ready(liveStatus(fmt.Sprintf("%s (%s); previous ", failWhat, firstLine(lastReload.Errors))))
		}
		return err
	}
	// The reload goroutine: SIGHUPs (coalesced) and datastore snapshots,
	// one at a time. Loading runs with a deadline on a goroutine of its
	// own; a load still running after it (never expected: loading is
	// bounded, config/limits.go) refuses the next one.
	if startErrs == nil && fl == nil {
		saveGood(liveLoad{l: loaded, files: files})
	}
	hup := make(chan struct{}, 1)
	var loading atomic.Bool
	loadBounded := func() liveLoad {
		if !loading.CompareAndSwap(false, true) {
			return liveLoad{errs: []string{"the previous configuration load is still running; previous policy stays live"}}
		}
		done := make(chan liveLoad, 1)
		go func() { defer loading.Store(false); done <- loadLiveFull(*cfgPath) }()
		select {
		case lv := <-done:
			return lv
		case <-time.After(*reloadTimeout):
			return liveLoad{errs: []string{fmt.Sprintf("loading and compiling the configuration did not finish within %v (--reload-timeout); previous policy stays live", *reloadTimeout)}}
		case <-ctx.Done():
			return liveLoad{errs: []string{"stopping"}}
		}
	}
	reloadDone := make(chan struct{})
	go func() {
		defer close(reloadDone)
		snaps := fl.snapshots()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if fl != nil {
					// The local files with the current etcd resources:
					// the snapshot arrives on fl.snapshots().
					fl.w.Reload()
					continue
				}
				lv := loadBounded()
				if ctx.Err() != nil {
					return
				}
				if apply(lv.l, lv.rt, lv.errs, lv.files, "reloaded", "reload FAILED") == nil {
					saveGood(lv)
				}
				lv = liveLoad{}
				debug.FreeOSMemory() // the old policy and the load's garbage
				writeStats()
			case s, ok := <-snaps:
				if !ok {
					snaps = nil // ctx ended; the stop follows
					continue
				}
				l, nrt, errs, files := fl.load(s)
				err := apply(l, nrt, errs, files, fmt.Sprintf("datastore revision %d applied", s.Revision),
					fmt.Sprintf("datastore revision %d REJECTED", s.Revision))
				gen, _ := e.Gen()
				fl.report(s, gen, err, errs)
				writeStats()
			}
		}
	}()

	// The hooks are installed and verified (Reload) and the readers start:
	// only now is the service ready.
	close(started)
	if startErrs != nil {
		sd.ready(liveStatus("DEGRADED: configuration rejected (" + firstLine(startErrs) + "); " + lastGoodNote + "; "))
	} else {
		sd.ready(liveStatus(""))
	}
	var reopening atomic.Bool
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	writeStats()
	for {
		select {
		case <-tick.C:
			writeStats()
		case now := <-wdTick:
			var rows []metrics.QueueRow
			if r, err := metrics.ReadQueueFile(metrics.DefaultQueueFile); err == nil && r != nil {
				rows = r
			}
			if err := hc.check(now, e.Readers(), rows); err != nil {
				if unhealthy == "" {
					log.Error("packet path not making progress: no longer feeding the systemd watchdog", "err", err)
					sd.status("unhealthy: " + err.Error())
				}
				unhealthy = err.Error()
				continue
			}
			if unhealthy != "" {
				log.Info("packet path making progress again")
				sd.status(liveStatus(""))
				unhealthy = ""
			}
			sd.watchdog()
		case err := <-runErr:
			writeStats()
			if err != nil {
				log.Error("engine stopped", "err", err)
				sd.stopping("engine stopped: " + err.Error())
				return 1
			}
			return 0
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				sd.reloading()
				select {
				case hup <- struct{}{}:
				default: // one is pending already: it reads the files as they are then
				}
			case syscall.SIGUSR1:
				if tw != nil && reopening.CompareAndSwap(false, true) {
					go func() {
						defer reopening.Store(false)
						if err := tw.Reopen(); err != nil {
							log.Error("trace reopen", "err", err)
						}
					}()
				}
			default:
				// Within a second, whatever else is going on (a reload, a
				// re-check, a slow disk): the kernel rules stay either way.
				log.Info("stopping; kernel rules stay in place (run `nfgate cleanup` to remove them)", "signal", s.String(),
					"failure_mode", rt.FailureMode.String())
				sd.stopping("stopping; kernel rules stay in place (failure mode " + rt.FailureMode.String() + ")")
				cancel()
				select {
				case <-runErr:
				case <-time.After(400 * time.Millisecond):
				}
				closeWithin(100*time.Millisecond, writeStats)
				return 0
			}
		}
	}
}

// closeWithin runs fn, waiting for it at most d (a shutdown must not hang
// on a slow disk).
func closeWithin(d time.Duration, fn func()) {
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

func firstLine(errs []string) string {
	if len(errs) == 0 {
		return "unknown error"
	}
	if len(errs) > 1 {
		return fmt.Sprintf("%s; and %d more", errs[0], len(errs)-1)
	}
	return errs[0]
}
