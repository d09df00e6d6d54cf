package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nfgate/nfgate/conntrack/ctnl"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/denycache"
	"github.com/nfgate/nfgate/engine/ipt"
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
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := ipt.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, "nfgate cleanup:", err)
		return 1
	}
	return 0
}

// loadLive reads, validates and compiles path. On failure errs holds
// one "file:line: problem" line per error.
func loadLive(path string) (l *engine.Loaded, rt config.Runtime, errs []string, files []string) {
	ld, err := config.Load(path)
	if ld != nil {
		files = ld.Files
	}
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			for _, d := range ce {
				errs = append(errs, d.String())
			}
		} else {
			errs = append(errs, err.Error())
		}
		return nil, rt, errs, files
	}
	if probs := configPermProblems(ld.Files); len(probs) > 0 {
		return nil, rt, probs, files
	}
	prog, err := policy.Compile(ld.Policy)
	if err != nil {
		return nil, rt, strings.Split(err.Error(), "\n"), files
	}
	return &engine.Loaded{Policy: prog, Config: ld.Policy, Hash: hex.EncodeToString(ld.Hash[:4]), Files: ld.Files},
		ld.Runtime, nil, files
}

// ctAdapter adapts ctnl to engine.Conntrack.
type ctAdapter struct{ c *ctnl.Conn }

func (a ctAdapter) Recheck(owned, clear, set uint32) (int, error) {
	return a.c.Remark(owned, clear, set)
}
func (a ctAdapter) Cut(t engine.FlowTuple) error {
	icmp := t.Proto == 1 || t.Proto == 58
	return a.c.Delete(ctnl.Tuple{Proto: t.Proto, Src: t.Src, Dst: t.Dst, SrcPort: t.SrcPort, DstPort: t.DstPort, ICMP: icmp})
}

func runMain(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfgPath := fs.String("config", "/etc/nfgate/nfgate.toml", "configuration file")
	balance := fs.Int("queue-balance", 0, "NFQUEUE queues per stage (default: engine.queues, else the number of CPUs)")
	statsPath := fs.String("stats", "", "write counters as JSON to this file every second (nfgate reload reads it)")
	cleanup := fs.Bool("cleanup", false, "remove nfgate's kernel rules and exit")
	verbose := fs.Bool("v", false, "debug logging")
	dsWait := fs.Duration("datastore-wait", 30*time.Second,
		"with a [datastore]: how long to wait at start for a usable policy from etcd (or its cache) before giving up")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	lvl := slog.LevelInfo
	if *verbose {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	sd := sdNotify{log}
	if *cleanup {
		if err := ipt.Cleanup(); err != nil {
			log.Error("cleanup", "err", err)
			return 1
		}
		return 0
	}

	// Register signals before anything slow, so an early SIGHUP is not fatal.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The policy: the local files, or in fleet mode (a [datastore] table)
	// the local files with the resources in etcd (fleet.go).
	fl, loaded, rt, errs, files := initialPolicy(ctx, *cfgPath, *dsWait, sigs, log)
	if loaded == nil {
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, e)
		}
		log.Error("configuration rejected", "files", files)
		sd.status("configuration rejected: " + strings.Join(errs, "; "))
		return 1
	}
	if fl != nil {
		// The status writer revokes its lease once ctx ends.
		f := fl
		defer func() { cancel(); f.close() }()
	}
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
		defer c.Close()
		ct = ctAdapter{c}
	}
	deny := denycache.New(rt.DenyCacheSize, rt.DenyCacheTTL, time.Now)
	var tw *trace.Writer
	var tracer engine.Tracer
	if rt.TraceFile != "" {
		if rt.TraceFile == "-" {
			tw = trace.New(os.Stderr, rt.TraceBuffer)
		} else if tw, err = trace.Open(rt.TraceFile, rt.TraceBuffer); err != nil {
			log.Error("trace file", "err", err)
			return 1
		}
		defer tw.Close()
		tracer = engine.TracerOf(tw)
	}
	e, err := engine.New(engine.Options{Runtime: rt, Hooks: hooks, Links: engine.LinksOf(lt), Conntrack: ct,
		Deny: engine.DenyCacheOf(deny), Tracer: tracer, Log: log})
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
	reloads.Record(err == nil, time.Now(), res.Rechecked)
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
	// The hooks are installed and verified (Reload) and the readers start:
	// only now is the service ready.
	sd.ready(liveStatus(""))
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
	}
	lastReload.OK, lastReload.Time, lastReload.Gen = true, time.Now(), res.Gen
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
	// apply swaps in a new policy (l nil: rejected, errs says why), the
	// same way for SIGHUP and for a datastore change: re-check of existing
	// flows, trace reload line, counters, systemd STATUS. The caller writes
	// the stats file.
	apply := func(l *engine.Loaded, nrt config.Runtime, errs, files []string, okWhat, failWhat string) error {
		if l != nil && nrt != rt {
			// The engine, its queues, hooks, trace and deny cache were built
			// from rt at start; only policy and [gateway] change on reload.
			log.Warn("[engine] changes take effect at restart; kept the running values", "running", fmt.Sprintf("%+v", rt), "file", fmt.Sprintf("%+v", nrt))
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
		if err != nil {
			lastReload.Gen, _ = e.Gen()
			lastReload.Errors = errs
			if len(errs) == 0 {
				lastReload.Errors = []string{err.Error()}
			}
		}
		statsMu.Unlock()
		if err == nil {
			keepRunningCopy(*statsPath, l, log)
			go func() {
				time.Sleep(3 * time.Second)
				log.Info("re-check after reload", "cut", e.Stats().Cut.Load()-cutBefore)
			}()
			sd.ready(liveStatus(fmt.Sprintf("%s, %d flows re-checked; ", okWhat, res.Rechecked)))
		} else {
			sd.ready(liveStatus(fmt.Sprintf("%s (%s); previous ", failWhat, firstLine(lastReload.Errors))))
		}
		return err
	}
	snaps := fl.snapshots()
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
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				sd.reloading()
				if fl != nil {
					// The local files with the current etcd resources:
					// the snapshot arrives on fl.snapshots().
					fl.w.Reload()
					break
				}
				l, nrt, errs, files := loadLive(*cfgPath)
				apply(l, nrt, errs, files, "reloaded", "reload FAILED")
				writeStats()
			case syscall.SIGUSR1:
				if tw != nil {
					if err := tw.Reopen(); err != nil {
						log.Error("trace reopen", "err", err)
					}
				}
			default:
				log.Info("stopping; kernel rules stay in place (run `nfgate cleanup` to remove them)", "signal", s.String(),
					"failure_mode", rt.FailureMode.String())
				sd.stopping("stopping; kernel rules stay in place (failure mode " + rt.FailureMode.String() + ")")
				cancel()
				select {
				case <-runErr:
				case <-time.After(5 * time.Second):
				}
				writeStats()
				return 0
			}
		}
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
