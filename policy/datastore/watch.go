package datastore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"

	"github.com/nfgate/nfgate/policy/config"
)

// Options configure a Watcher.
type Options struct {
	// Datastore is the [datastore] table. CacheFile "" disables the cache.
	Datastore config.Datastore
	// MainPath is the local configuration, loaded with the datastore's
	// resources by config.LoadWith for every snapshot.
	MainPath string
	// Client, when set, is used instead of a client made from Datastore
	// (and is not closed by Close).
	Client *clientv3.Client
	// Quiet and MaxDelay coalesce bursts: a snapshot is built once no
	// change arrived for Quiet, and at most MaxDelay after the first
	// change of a burst. Defaults 100ms and 1s.
	Quiet, MaxDelay time.Duration
	// ListTimeout bounds one full list; default 5s.
	ListTimeout time.Duration
	Logger      *slog.Logger // default slog.Default()
}

// Snapshot is one state of the datastore, loaded with the local files.
type Snapshot struct {
	// Revision is the etcd revision the resources were read at (for a
	// cached set, the revision it had when saved).
	Revision  int64
	Resources []Resource // in key order
	// Loaded is config.LoadWith(MainPath, resources); nil only when no
	// resource set could be obtained at all. Loaded.Policy is nil exactly
	// when Err is set.
	Loaded *config.Loaded
	// Err is why this snapshot must not be applied: config.Errors naming
	// the etcd keys (and local files) at fault, or the datastore being
	// unreachable with no usable cache. The last good snapshot stays in
	// force.
	Err error
	// FromCache: the resources are the on-disk cache because etcd could not
	// be reached when the gateway started.
	FromCache bool
	// Saved is when the cached set was written (FromCache only).
	Saved time.Time
	Time  time.Time // when the snapshot was built
}

// HashHex is the configuration hash (local files and resources) in hex;
// "" when nothing was loaded.
func (s *Snapshot) HashHex() string {
	if s == nil || s.Loaded == nil {
		return ""
	}
	return hex.EncodeToString(s.Loaded.Hash[:])
}

// Stats are a Watcher's counters, for metrics and status.
type Stats struct {
	Snapshots   uint64 // good snapshots delivered
	Rejected    uint64 // snapshots that failed validation (last good kept)
	Relists     uint64 // full re-lists after the first (compaction, lost watch)
	ListErrors  uint64 // failed lists (etcd unreachable or slow)
	CacheErrors uint64 // failed cache reads or writes
	Revision    int64  // newest datastore revision seen
	Connected   bool   // the gRPC connection to etcd is up
	FromCache   bool   // the last good snapshot came from the on-disk cache
}

// Watcher follows the Calico resources in etcd and delivers snapshots.
type Watcher struct {
	opts   Options
	cli    *clientv3.Client
	own    bool
	log    *slog.Logger
	out    chan *Snapshot
	reload chan struct{}
	once   sync.Once

	mu       sync.Mutex
	lastGood *Snapshot
	stats    Stats

	// owned by the run goroutine
	unread    map[string]int64 // unreadKinds' key counts at the last list
	res       map[string]Resource
	have      bool // res holds a list or a cache
	rev       int64
	fromCache bool
	saved     time.Time
	latest    *Snapshot
}

// New makes a Watcher; it does not contact etcd until Watch.
func New(opts Options) (*Watcher, error) {
	if opts.Quiet <= 0 {
		opts.Quiet = 100 * time.Millisecond
	}
	if opts.MaxDelay < opts.Quiet {
		opts.MaxDelay = max(time.Second, opts.Quiet)
	}
	if opts.ListTimeout <= 0 {
		opts.ListTimeout = 5 * time.Second
	}
	if opts.Datastore.Prefix == "" {
		opts.Datastore.Prefix = config.DefaultDatastorePrefix
	}
	w := &Watcher{opts: opts, cli: opts.Client, log: opts.Logger, out: make(chan *Snapshot, 1), reload: make(chan struct{}, 1)}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.cli == nil {
		cli, err := NewClient(&opts.Datastore)
		if err != nil {
			return nil, err
		}
		w.cli, w.own = cli, true
	}
	return w, nil
}

// Client is the etcd client (for a StatusWriter).
func (w *Watcher) Client() *clientv3.Client { return w.cli }

// Close closes the client if the Watcher made it.
func (w *Watcher) Close() error {
	if w.own {
		return w.cli.Close()
	}
	return nil
}

// Watch lists the resources, then watches them until ctx ends, and
// delivers a snapshot after the first list and after every (coalesced)
// change. The channel holds only the newest undelivered snapshot: a slow
// reader skips intermediate ones. It is closed when ctx ends. Call once.
func (w *Watcher) Watch(ctx context.Context) <-chan *Snapshot {
	w.once.Do(func() { go w.run(ctx) })
	return w.out
}

// Reload rebuilds a snapshot from the current resources and the local
// files (SIGHUP), even when nothing changed.
func (w *Watcher) Reload() {
	select {
	case w.reload <- struct{}{}:
	default:
	}
}

// LastGood is the newest snapshot without errors, or nil.
func (w *Watcher) LastGood() *Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastGood
}

// Stats returns the counters.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	s := w.stats
	w.mu.Unlock()
	if cc := w.cli.ActiveConnection(); cc != nil {
		s.Connected = cc.GetState() == connectivity.Ready
	}
	return s
}

func (w *Watcher) count(f func(*Stats)) {
	w.mu.Lock()
	f(&w.stats)
	w.mu.Unlock()
}

func (w *Watcher) run(ctx context.Context) {
	defer close(w.out)
	backoff := 100 * time.Millisecond
	for lists := 0; ctx.Err() == nil; {
		if err := w.list(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.count(func(s *Stats) { s.ListErrors++ })
			if !w.have {
				w.useCache()
			} else {
				w.log.Warn("datastore: etcd unreachable; keeping the last good policy", "err", err, "retry", backoff)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			case <-w.reload:
				if w.have {
					w.emit(true)
				}
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if lists++; lists > 1 {
			w.count(func(s *Stats) { s.Relists++ })
		}
		w.emit(false)
		err := w.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		w.log.Info("datastore: re-listing", "reason", err)
	}
}

// list reads every resource kind at one revision.
func (w *Watcher) list(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, w.opts.ListTimeout)
	defer cancel()
	rp := ResourcePrefix(w.opts.Datastore.Prefix)
	ops := make([]clientv3.Op, 0, len(kinds)+len(unreadKinds))
	for _, k := range kinds {
		ops = append(ops, w.listOp(rp, k.Plural, k.Own))
	}
	for _, k := range unreadKinds {
		ops = append(ops, clientv3.OpGet(rp+k.Plural+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()))
	}
	resp, err := w.cli.Txn(lctx).Then(ops...).Commit()
	if err != nil {
		return err
	}
	w.noteUnread(resp.Responses[len(kinds):])
	res := map[string]Resource{}
	for _, r := range resp.Responses[:len(kinds)] {
		for _, kv := range r.GetResponseRange().GetKvs() {
			if x, ok := newResource(w.opts.Datastore.Prefix, string(kv.Key), kv.Value, kv.ModRevision); ok {
				res[x.Key] = x
			}
		}
	}
	if w.fromCache {
		w.log.Info("datastore: etcd reachable again; the cached resource set is replaced", "revision", resp.Header.Revision)
	}
	w.res, w.have, w.rev, w.fromCache = res, true, resp.Header.Revision, false
	w.count(func(s *Stats) { s.Revision = max(s.Revision, w.rev) })
	return nil
}

// listOp reads one kind's folder; for an Own kind only this gateway's key
// (none without a node name).
func (w *Watcher) listOp(rp, plural string, own bool) clientv3.Op {
	if !own {
		return clientv3.OpGet(rp+plural+"/", clientv3.WithPrefix())
	}
	return clientv3.OpGet(rp + plural + "/" + w.ownName())
}

// ownName is the name of this gateway's own resources (its Node); a name
// no Calico resource can have when the node name is unknown.
func (w *Watcher) ownName() string {
	if n := w.opts.Datastore.NodeName; n != "" {
		return n
	}
	return "/"
}

// noteUnread logs, when their number changed, the resources of kinds
// Felix would use and nfgate does not read (unreadKinds).
func (w *Watcher) noteUnread(counts []*etcdserverpb.ResponseOp) {
	if w.unread == nil {
		w.unread = map[string]int64{}
	}
	for i, k := range unreadKinds {
		n := counts[i].GetResponseRange().GetCount()
		if n != w.unread[k.Kind] && n > 0 {
			w.log.Warn(fmt.Sprintf("datastore: %d %s resource(s) are not read by nfgate: %s", n, k.Kind, k.Why),
				"folder", ResourcePrefix(w.opts.Datastore.Prefix)+k.Plural+"/")
		}
		w.unread[k.Kind] = n
	}
}

func (w *Watcher) useCache() {
	path := w.opts.Datastore.CacheFile
	fail := func(err error) {
		w.log.Error("datastore: etcd unreachable and no usable cache; no datastore policy to enforce yet", "err", err)
		s := &Snapshot{Err: fmt.Errorf("datastore unreachable and no usable cache: %w", err), Time: time.Now()}
		w.latest = s
		w.send(s)
	}
	if path == "" {
		fail(errors.New("cacheFile is not configured"))
		return
	}
	rev, saved, res, err := readCache(path, w.opts.Datastore.Prefix)
	if err != nil {
		w.count(func(s *Stats) { s.CacheErrors++ })
		fail(err)
		return
	}
	w.res, w.have, w.rev, w.fromCache, w.saved = res, true, rev, true, saved
	w.log.Warn("datastore: etcd unreachable; enforcing the cached resource set", "file", path, "saved", saved, "revision", rev, "resources", len(res))
	w.emit(true)
}

var errCompacted = errors.New("watch revision compacted")

type watchMsg struct {
	resp   clientv3.WatchResponse
	closed bool
}

// watch follows every kind from the listed revision until a watch fails.
func (w *Watcher) watch(ctx context.Context) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	rp := ResourcePrefix(w.opts.Datastore.Prefix)
	msgs := make(chan watchMsg)
	for _, k := range kinds {
		var wc clientv3.WatchChan
		if k.Own {
			wc = w.cli.Watch(wctx, rp+k.Plural+"/"+w.ownName(), clientv3.WithRev(w.rev+1))
		} else {
			wc = w.cli.Watch(wctx, rp+k.Plural+"/", clientv3.WithPrefix(), clientv3.WithRev(w.rev+1))
		}
		go func() {
			for r := range wc {
				select {
				case msgs <- watchMsg{resp: r}:
				case <-wctx.Done():
					return
				}
			}
			select {
			case msgs <- watchMsg{closed: true}:
			case <-wctx.Done():
			}
		}()
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var pending bool
	var first time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.reload:
			w.emit(true)
		case <-timer.C:
			pending = false
			w.emit(false)
		case m := <-msgs:
			if m.closed {
				return errors.New("watch closed")
			}
			r := m.resp
			if r.CompactRevision != 0 || errors.Is(r.Err(), rpctypes.ErrCompacted) {
				return fmt.Errorf("%w (compacted at %d)", errCompacted, r.CompactRevision)
			}
			if err := r.Err(); err != nil {
				return err
			}
			if len(r.Events) == 0 {
				continue
			}
			for _, ev := range r.Events {
				key := string(ev.Kv.Key)
				if ev.Type == mvccpb.DELETE {
					delete(w.res, key)
				} else if x, ok := newResource(w.opts.Datastore.Prefix, key, ev.Kv.Value, ev.Kv.ModRevision); ok {
					w.res[key] = x
				}
				w.rev = max(w.rev, ev.Kv.ModRevision)
			}
			w.count(func(s *Stats) { s.Revision = max(s.Revision, w.rev) })
			now := time.Now()
			if !pending {
				pending, first = true, now
			}
			timer.Reset(max(0, min(w.opts.Quiet, first.Add(w.opts.MaxDelay).Sub(now))))
		}
	}
}

// build loads res with the local files. For a set read from etcd (not the
// cache) Calico's ready flag must be true (ready.go); notReady says it is
// not.
func (w *Watcher) build(res map[string]Resource, rev int64, fromCache bool, saved time.Time) (s *Snapshot, notReadyFlag bool) {
	docs, list, errs := documents(res, w.opts.Datastore.NodeName)
	if !fromCache {
		if d := notReady(w.opts.Datastore.Prefix, res); d != nil {
			notReadyFlag = true
			errs = append(config.Errors{*d}, errs...)
		}
	}
	loaded, err := config.LoadWith(w.opts.MainPath, docs)
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			errs = append(errs, ce...)
		} else {
			errs = append(errs, config.Diag{File: w.opts.MainPath, Msg: err.Error()})
		}
	}
	s = &Snapshot{Revision: rev, Resources: list, Loaded: loaded, FromCache: fromCache, Time: time.Now()}
	if fromCache {
		s.Saved = saved
	}
	if len(errs) > 0 {
		s.Err = errs
		loaded.Policy = nil
	}
	return s, notReadyFlag
}

// emit loads the current resources with the local files and delivers the
// snapshot if it differs from the last one delivered (or force). While the
// datastore is not ready and nothing has been delivered yet, the cached set
// stands in for it, as when etcd is unreachable.
func (w *Watcher) emit(force bool) {
	s, notReadyFlag := w.build(w.res, w.rev, w.fromCache, w.saved)
	if notReadyFlag && w.LastGood() == nil && w.opts.Datastore.CacheFile != "" {
		path := w.opts.Datastore.CacheFile
		if rev, saved, res, err := readCache(path, w.opts.Datastore.Prefix); err != nil {
			w.count(func(s *Stats) { s.CacheErrors++ })
			w.log.Error("datastore: not ready and no usable cache", "err", err)
		} else if cs, _ := w.build(res, rev, true, saved); cs.Err == nil {
			w.log.Warn("datastore: not ready; enforcing the cached resource set", "why", s.Err.(config.Errors)[0].String(),
				"file", path, "saved", saved, "revision", rev, "resources", len(res))
			s = cs
		}
	}
	if p := w.latest; !force && p != nil && p.Loaded != nil && p.Loaded.Hash == s.Loaded.Hash && errText(p.Err) == errText(s.Err) && p.FromCache == s.FromCache {
		return
	}
	w.latest = s
	if s.Err != nil {
		w.count(func(st *Stats) { st.Rejected++ })
		ce := s.Err.(config.Errors)
		if notReadyFlag {
			w.log.Warn("datastore: not ready; the last good policy stays", "revision", s.Revision, "errors", len(ce))
		} else {
			w.log.Warn("datastore: resource set rejected; the last good policy stays", "revision", s.Revision, "errors", len(ce))
		}
		for i, d := range ce {
			if i == 20 {
				w.log.Warn("datastore: more errors not shown", "count", len(ce)-i)
				break
			}
			w.log.Warn("datastore: invalid", "error", d.String())
		}
	} else {
		w.mu.Lock()
		w.lastGood = s
		w.stats.Snapshots++
		w.stats.FromCache = s.FromCache
		w.mu.Unlock()
		w.log.Info("datastore: snapshot", "revision", s.Revision, "resources", len(s.Resources), "hash", s.HashHex()[:12], "fromCache", s.FromCache)
		if !s.FromCache && w.opts.Datastore.CacheFile != "" {
			if err := writeCache(w.opts.Datastore.CacheFile, s.Revision, s.Resources); err != nil {
				w.count(func(st *Stats) { st.CacheErrors++ })
				w.log.Error("datastore: cannot write the cache", "file", w.opts.Datastore.CacheFile, "err", err)
			}
		}
	}
	w.send(s)
}

// send delivers s, replacing an undelivered older snapshot.
func (w *Watcher) send(s *Snapshot) {
	select {
	case w.out <- s:
		return
	default:
	}
	select {
	case <-w.out:
	default:
	}
	w.out <- s
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
