package datastore

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Status is what one gateway publishes about itself, as JSON at
// StatusKey(prefix, node), under a lease so that it disappears when the
// gateway stops refreshing it.
type Status struct {
	Node string `json:"node"`
	// Generation counts the policies the gateway has applied.
	Generation uint64 `json:"generation"`
	// Hash is the applied configuration's hash (local files and datastore
	// resources), Revision the datastore revision it was read at.
	Hash     string    `json:"hash"`
	Revision int64     `json:"revision"`
	Applied  time.Time `json:"applied"`
	// FromCache: enforcing the on-disk cache because etcd was unreachable
	// at start.
	FromCache bool `json:"fromCache,omitempty"`
	// LastError is the newest problem (a rejected resource set, ...) and
	// when it happened; empty once a later snapshot applied cleanly.
	LastError string    `json:"lastError,omitempty"`
	ErrorTime time.Time `json:"errorTime,omitzero"`
	Updated   time.Time `json:"updated"` // set when written
}

// StatusKey is where node's status lives.
func StatusKey(prefix, node string) string { return StatusPrefix(prefix) + node }

// StatusPrefix is the folder of every gateway's status.
func StatusPrefix(prefix string) string { return prefix + "/nfgate/status/" }

// StatusWriter keeps one gateway's status key current: Set records the
// newest status, Run writes it under a lease it keeps alive, re-granting
// the lease and re-writing the key after etcd comes back.
type StatusWriter struct {
	cli    *clientv3.Client
	key    string
	ttl    int64
	log    *slog.Logger
	mu     sync.Mutex
	st     *Status
	change chan struct{}
}

// NewStatusWriter writes node's status under prefix with a lease of ttl.
func NewStatusWriter(cli *clientv3.Client, prefix, node string, ttl time.Duration, log *slog.Logger) *StatusWriter {
	if log == nil {
		log = slog.Default()
	}
	return &StatusWriter{cli: cli, key: StatusKey(prefix, node), ttl: max(int64(ttl/time.Second), 2), log: log, change: make(chan struct{}, 1)}
}

// Set records st (Node and Updated are filled in); Run writes it soon.
func (w *StatusWriter) Set(st Status) {
	w.mu.Lock()
	w.st = &st
	w.mu.Unlock()
	select {
	case w.change <- struct{}{}:
	default:
	}
}

// Run writes the status until ctx ends, then revokes the lease (the key
// disappears at once on a clean stop).
func (w *StatusWriter) Run(ctx context.Context) {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		lease, err := w.cli.Grant(ctx, w.ttl)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		w.withLease(ctx, lease.ID)
	}
}

func (w *StatusWriter) withLease(ctx context.Context, id clientv3.LeaseID) {
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ka, err := w.cli.KeepAlive(kctx, id)
	if err != nil {
		return
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		w.cli.Revoke(rctx, id)
		rcancel()
	}()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	dirty := true
	for {
		if dirty {
			dirty = !w.put(ctx, id)
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ka:
			if !ok {
				return // lease lost (expired while cut off): grant another
			}
		case <-w.change:
			dirty = true
		case <-retry.C:
		}
	}
}

func (w *StatusWriter) put(ctx context.Context, id clientv3.LeaseID) bool {
	w.mu.Lock()
	st := w.st
	w.mu.Unlock()
	if st == nil {
		return true
	}
	s := *st
	s.Node = w.key[strings.LastIndexByte(w.key, '/')+1:]
	s.Updated = time.Now().UTC()
	data, _ := json.Marshal(s)
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := w.cli.Put(pctx, w.key, string(data), clientv3.WithLease(id)); err != nil {
		w.log.Debug("datastore: status write failed; will retry", "err", err)
		return false
	}
	return true
}

// FleetStatus is every gateway's status and the datastore's newest
// resource revision.
type FleetStatus struct {
	// Revision is the newest modification of any resource nfgate reads (a
	// gateway whose Revision is lower has not applied it).
	Revision int64    `json:"revision"`
	Gateways []Status `json:"gateways"`
	// Bad lists status keys whose value is not a Status.
	Bad []string `json:"bad,omitempty"`
	// NotReady, when set, is why no gateway applies changes: Calico's ready
	// flag (ClusterInformation default) is not true.
	NotReady string `json:"not_ready,omitempty"`
}

// ListStatus reads the fleet's state.
func ListStatus(ctx context.Context, cli *clientv3.Client, prefix string) (*FleetStatus, error) {
	ops := []clientv3.Op{clientv3.OpGet(StatusPrefix(prefix), clientv3.WithPrefix())}
	rp := ResourcePrefix(prefix)
	for _, k := range kinds {
		if k.Own {
			continue // per gateway: not part of the fleet's revision
		}
		ops = append(ops, clientv3.OpGet(rp+k.Plural+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly()))
	}
	ciKey := rp + "clusterinformations/" + clusterInfoName
	ops = append(ops, clientv3.OpGet(ciKey))
	resp, err := cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	fs := &FleetStatus{Gateways: []Status{}}
	ci := map[string]Resource{}
	for _, kv := range resp.Responses[len(ops)-1].GetResponseRange().GetKvs() {
		if r, ok := newResource(prefix, string(kv.Key), kv.Value, kv.ModRevision); ok {
			ci[r.Key] = r
		}
	}
	if d := notReady(prefix, ci); d != nil {
		fs.NotReady = d.String()
	}
	resp.Responses = resp.Responses[:len(ops)-1]
	for _, kv := range resp.Responses[0].GetResponseRange().GetKvs() {
		var s Status
		if json.Unmarshal(kv.Value, &s) != nil || s.Node == "" {
			fs.Bad = append(fs.Bad, string(kv.Key))
			continue
		}
		fs.Gateways = append(fs.Gateways, s)
	}
	for _, r := range resp.Responses[1:] {
		for _, kv := range r.GetResponseRange().GetKvs() {
			fs.Revision = max(fs.Revision, kv.ModRevision)
		}
	}
	sort.Slice(fs.Gateways, func(i, j int) bool { return fs.Gateways[i].Node < fs.Gateways[j].Node })
	return fs, nil
}
