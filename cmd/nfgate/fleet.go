package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/policy/datastore"
)

// Fleet mode (docs/fleet.md): when the main file has a [datastore] table,
// the policy is the local files together with the Calico resources in
// etcd. policy/datastore watches etcd and delivers whole snapshots; each
// one goes through the same compile and swap as a SIGHUP reload.

// fleet is the running daemon's link to the datastore.
type fleet struct {
	w     *datastore.Watcher
	snaps <-chan *datastore.Snapshot
	sw    *datastore.StatusWriter
	swOut chan struct{} // closed when the status writer has stopped
	ds    config.Datastore
	node  string
	log   *slog.Logger
	first *datastore.Snapshot // the snapshot the daemon started with

	mu      sync.Mutex
	applied *datastore.Snapshot // the snapshot in force
	at      time.Time           // when it went live
	lastErr string
	errTime time.Time
}

// initialPolicy loads the policy the daemon starts with. Without a
// [datastore] table it is loadLive(path) and fl is nil. With one, it waits
// up to wait for the first usable snapshot from etcd (or from the cache
// when etcd is unreachable); with none in time the daemon must not start,
// and errs says why. SIGTERM or SIGINT on sigs ends the wait.
func initialPolicy(ctx context.Context, path string, wait time.Duration, sigs <-chan os.Signal, log *slog.Logger) (fl *fleet, l *engine.Loaded, rt config.Runtime, errs, files []string) {
	ld, _ := config.Load(path)
	if ld == nil || ld.Datastore == nil {
		l, rt, errs, files = loadLive(path)
		return nil, l, rt, errs, files
	}
	fl, s, err := startFleet(ctx, path, *ld.Datastore, wait, sigs, log)
	if err != nil {
		return nil, nil, rt, strings.Split(err.Error(), "\n"), ld.Files
	}
	l, rt, errs, files = fl.load(s)
	if l == nil {
		fl.close()
		return nil, nil, rt, errs, files
	}
	fl.node, fl.first = s.Loaded.Policy.Settings.NodeName, s
	return fl, l, rt, nil, files
}

// startFleet starts watching the datastore and waits for the first
// snapshot without errors. A rejected resource set or an unreachable etcd
// without a cache gives no policy to enforce: rather than run with less
// than the fleet's policy (interfaces whose HostEndpoint lives in etcd
// would not be policed), the daemon refuses to start and systemd retries.
func startFleet(ctx context.Context, path string, ds config.Datastore, wait time.Duration, sigs <-chan os.Signal, log *slog.Logger) (*fleet, *datastore.Snapshot, error) {
	w, err := datastore.New(datastore.Options{Datastore: ds, MainPath: path, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("datastore: %w", err)
	}
	fl := &fleet{w: w, snaps: w.Watch(ctx), ds: ds, log: log}
	log.Info("datastore: waiting for the first snapshot", "endpoints", strings.Join(ds.Endpoints, ","), "prefix", ds.Prefix, "wait", wait)
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	var last error
	for {
		select {
		case s, ok := <-fl.snaps:
			if !ok {
				w.Close()
				return nil, nil, errors.New("datastore: stopped before the first snapshot")
			}
			if s.Err == nil && s.Loaded != nil && s.Loaded.Policy != nil {
				return fl, s, nil
			}
			last = s.Err
			log.Error("datastore: no usable policy yet", "err", firstLine(errLines(s.Err)))
		case sig := <-sigs:
			if sig == syscall.SIGTERM || sig == syscall.SIGINT {
				w.Close()
				return nil, nil, fmt.Errorf("datastore: stopped (%v) while waiting for the first snapshot", sig)
			}
			if sig == syscall.SIGHUP {
				w.Reload() // a fixed local file is read now
			}
		case <-timeout.C:
			w.Close()
			if last == nil {
				last = errors.New("etcd did not answer")
			}
			return nil, nil, fmt.Errorf("datastore: no policy to enforce after %v; refusing to start (systemd retries): %w", wait, last)
		}
	}
}

// start begins publishing the gateway's status; call after the first
// policy is live.
func (f *fleet) start(ctx context.Context) {
	f.sw = datastore.NewStatusWriter(f.w.Client(), f.ds.Prefix, f.node, f.ds.StatusTTL, f.log)
	f.swOut = make(chan struct{})
	go func() { f.sw.Run(ctx); close(f.swOut) }()
}

// stop waits (bounded) for the status writer to revoke its lease after
// ctx ended, then closes the etcd client.
func (f *fleet) close() {
	if f.swOut != nil {
		select {
		case <-f.swOut:
		case <-time.After(2 * time.Second):
		}
	}
	f.w.Close()
}

// load turns a snapshot into what the engine swaps in, like loadLive does
// for the local files alone. files are the local files and one line naming
// the datastore revision (an etcd key per resource would swamp the trace).
func (f *fleet) load(s *datastore.Snapshot) (l *engine.Loaded, rt config.Runtime, errs, files []string) {
	var local []string
	if s.Loaded != nil {
		keys := map[string]bool{}
		for _, r := range s.Resources {
			keys[r.Key] = true
		}
		for _, name := range s.Loaded.Files {
			if !keys[name] {
				local = append(local, name)
			}
		}
		rt = s.Loaded.Runtime
	}
	src := fmt.Sprintf("etcd %s revision %d (%d resources)", f.ds.Prefix, s.Revision, len(s.Resources))
	if s.FromCache {
		src = fmt.Sprintf("cache %s of etcd %s revision %d (%d resources, saved %s)", f.ds.CacheFile, f.ds.Prefix, s.Revision,
			len(s.Resources), s.Saved.UTC().Format(time.RFC3339))
	}
	files = append(slices.Clip(local), src)
	if s.Err != nil || s.Loaded == nil || s.Loaded.Policy == nil {
		errs = errLines(s.Err)
		if len(errs) == 0 {
			errs = []string{"datastore: no resource set"}
		}
		return nil, rt, errs, files
	}
	if probs := configPermProblems(local); len(probs) > 0 {
		return nil, rt, probs, files
	}
	if nd := s.Loaded.Datastore; nd == nil || !sameDatastore(*nd, f.ds) {
		f.log.Warn("[datastore] changes need a restart; kept the running connection")
	}
	if n := s.Loaded.Policy.Settings.NodeName; f.node != "" && n != f.node {
		f.log.Warn("nodeName changes need a restart; status stays published as the running name", "running", f.node, "file", n)
	}
	prog, err := policy.Compile(s.Loaded.Policy)
	if err != nil {
		return nil, rt, strings.Split(err.Error(), "\n"), files
	}
	return &engine.Loaded{Policy: prog, Config: s.Loaded.Policy, Hash: hex.EncodeToString(s.Loaded.Hash[:4]), Files: files}, rt, nil, files
}

func sameDatastore(a, b config.Datastore) bool {
	return slices.Equal(a.Endpoints, b.Endpoints) && a.CAFile == b.CAFile && a.CertFile == b.CertFile && a.KeyFile == b.KeyFile &&
		a.Prefix == b.Prefix && a.CacheFile == b.CacheFile && a.StatusTTL == b.StatusTTL
}

// errLines is one line per problem of a snapshot's error.
func errLines(err error) []string {
	if err == nil {
		return nil
	}
	var ce config.Errors
	if errors.As(err, &ce) {
		out := make([]string, len(ce))
		for i, d := range ce {
			out[i] = d.String()
		}
		return out
	}
	return []string{err.Error()}
}

// report records the outcome of applying s (err from engine.Reload, errs
// its problems) and publishes the gateway's status.
func (f *fleet) report(s *datastore.Snapshot, gen uint64, err error, errs []string) {
	f.mu.Lock()
	now := time.Now()
	if err == nil {
		f.applied, f.at, f.lastErr, f.errTime = s, now, "", time.Time{}
		if s.FromCache {
			f.log.Warn(fmt.Sprintf("enforcing cached policy from %s because the datastore is unreachable or not ready",
				s.Saved.Local().Format(time.RFC3339)), "revision", s.Revision)
		}
	} else {
		if len(errs) == 0 {
			errs = []string{err.Error()}
		}
		f.lastErr, f.errTime = firstLine(errs), now
	}
	st := datastore.Status{Generation: gen, Applied: f.at, LastError: f.lastErr, ErrorTime: f.errTime}
	if a := f.applied; a != nil {
		st.Hash, st.Revision, st.FromCache = a.HashHex(), a.Revision, a.FromCache
	}
	f.mu.Unlock()
	if f.sw != nil {
		f.sw.Set(st)
	}
}

// fleetStats is the "datastore" object of the --stats file.
type fleetStats struct {
	Node        string `json:"node"`
	Connected   bool   `json:"connected"`    // the connection to etcd is up
	Revision    int64  `json:"revision"`     // newest datastore revision seen
	Snapshots   uint64 `json:"snapshots"`    // good resource sets delivered
	Rejected    uint64 `json:"rejected"`     // resource sets that failed validation
	Relists     uint64 `json:"relists"`      // full re-lists after the first
	ListErrors  uint64 `json:"list_errors"`  // failed lists (etcd unreachable or slow)
	CacheErrors uint64 `json:"cache_errors"` // failed cache reads or writes
	// The policy in force: its datastore revision, whether it came from
	// the cache, when it went live; the newest problem since then.
	AppliedRevision  int64     `json:"applied_revision"`
	AppliedFromCache bool      `json:"applied_from_cache"`
	Applied          time.Time `json:"applied"`
	LastError        string    `json:"last_error,omitempty"`
	ErrorTime        time.Time `json:"error_time,omitzero"`
}

func (f *fleet) stats() *fleetStats {
	ws := f.w.Stats()
	v := &fleetStats{Node: f.node, Connected: ws.Connected, Revision: ws.Revision, Snapshots: ws.Snapshots, Rejected: ws.Rejected,
		Relists: ws.Relists, ListErrors: ws.ListErrors, CacheErrors: ws.CacheErrors}
	f.mu.Lock()
	defer f.mu.Unlock()
	if a := f.applied; a != nil {
		v.AppliedRevision, v.AppliedFromCache = a.Revision, a.FromCache
	}
	v.Applied, v.LastError, v.ErrorTime = f.at, f.lastErr, f.errTime
	return v
}

// collectors are the datastore's figures for the metrics registry, read
// at scrape time.
func (f *fleet) collectors() []prometheus.Collector {
	counter := func(name, help string, get func(fleetStats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "nfgate_datastore_" + name, Help: help},
			func() float64 { return get(*f.stats()) })
	}
	gauge := func(name, help string, get func(fleetStats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nfgate_datastore_" + name, Help: help},
			func() float64 { return get(*f.stats()) })
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	return []prometheus.Collector{
		counter("snapshots_total", "Good resource sets delivered by the datastore watch.", func(s fleetStats) float64 { return float64(s.Snapshots) }),
		counter("rejected_total", "Resource sets that failed validation (the last good policy stayed).", func(s fleetStats) float64 { return float64(s.Rejected) }),
		counter("relists_total", "Full re-lists after the first (compaction, lost watch).", func(s fleetStats) float64 { return float64(s.Relists) }),
		counter("list_errors_total", "Failed lists (etcd unreachable or slow).", func(s fleetStats) float64 { return float64(s.ListErrors) }),
		counter("cache_errors_total", "Failed reads or writes of the on-disk cache.", func(s fleetStats) float64 { return float64(s.CacheErrors) }),
		gauge("revision", "Newest datastore revision seen.", func(s fleetStats) float64 { return float64(s.Revision) }),
		gauge("applied_revision", "Datastore revision of the policy in force.", func(s fleetStats) float64 { return float64(s.AppliedRevision) }),
		gauge("connected", "1 when the connection to etcd is up.", func(s fleetStats) float64 { return b(s.Connected) }),
		gauge("from_cache", "1 when the policy in force came from the on-disk cache.", func(s fleetStats) float64 { return b(s.AppliedFromCache) }),
	}
}

// snapshots delivers the datastore's snapshots; nil (never ready) outside
// fleet mode.
func (f *fleet) snapshots() <-chan *datastore.Snapshot {
	if f == nil {
		return nil
	}
	return f.snaps
}
