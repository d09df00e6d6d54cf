package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
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
	prog, err := policy.Compile(ld.Policy)
	if err != nil {
		return nil, rt, strings.Split(err.Error(), "\n"), files
	}
	return &engine.Loaded{Policy: named(prog), Config: ld.Policy, Hash: hex.EncodeToString(ld.Hash[:4]), Files: ld.Files},
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
	statsPath := fs.String("stats", "", "write counters as JSON to this file every second")
	cleanup := fs.Bool("cleanup", false, "remove nfgate's kernel rules and exit")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	lvl := slog.LevelInfo
	if *verbose {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
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

	loaded, rt, errs, files := loadLive(*cfgPath)
	if loaded == nil {
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, e)
		}
		log.Error("configuration rejected", "files", files)
		return 1
	}
	if *balance > 0 {
		rt.Queues = *balance
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

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
	runErr := make(chan error, 1)
	if _, err := e.Reload(loaded, nil, files); err != nil {
		log.Error("installing the policy", "err", err)
		return 1
	}
	go func() { runErr <- e.Run(ctx, queues) }()
	log.Info("nfgate running", "backend", hooks.Backend, "queues", fmt.Sprintf("%d-%d", rt.QueueBase, int(rt.QueueBase)+len(queues)-1),
		"per_stage", rt.Queues, "failure_mode", rt.FailureMode.String(), "mark_mask", fmt.Sprintf("%#x", rt.MarkMask))

	var statsMu sync.Mutex
	writeStats := func() {
		if *statsPath == "" {
			return
		}
		statsMu.Lock()
		defer statsMu.Unlock()
		v := struct {
			engine.StatsView
			DenyCache denycache.Stats `json:"deny_cache"`
			Trace     *trace.Stats    `json:"trace,omitempty"`
		}{StatsView: e.Snapshot(), DenyCache: deny.Stats()}
		if tw != nil {
			s := tw.Stats()
			v.Trace = &s
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		tmp := *statsPath + ".tmp"
		if os.WriteFile(tmp, b, 0o644) == nil {
			os.Rename(tmp, *statsPath)
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	writeStats()
	for {
		select {
		case <-tick.C:
			writeStats()
		case err := <-runErr:
			writeStats()
			if err != nil {
				log.Error("engine stopped", "err", err)
				return 1
			}
			return 0
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				l, nrt, errs, files := loadLive(*cfgPath)
				if l != nil && (nrt.QueueBase != rt.QueueBase || nrt.MarkMask != rt.MarkMask || nrt.FailureMode != rt.FailureMode) {
					log.Warn("queueBase, markMask and failureMode changes need a restart; kept the running values")
				}
				for _, msg := range errs {
					log.Error("config", "error", msg)
				}
				cutBefore := e.Stats().Cut.Load()
				if _, err := e.Reload(l, errs, files); err == nil {
					go func() {
						time.Sleep(3 * time.Second)
						log.Info("re-check after reload", "cut", e.Stats().Cut.Load()-cutBefore)
					}()
				}
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
