package datastore

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/policy/datastore/etcdtest"
)

func TestNotReady(t *testing.T) {
	const key = pfx + "clusterinformations/default"
	ci := func(spec string) map[string]Resource {
		r, _ := newResource("/calico", key, []byte(`{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":`+spec+`}`), 1)
		return map[string]Resource{key: r}
	}
	for _, tc := range []struct {
		name string
		res  map[string]Resource
		want string // "" for ready, else a substring of the problem
	}{
		{"ready", ci(`{"clusterGUID":"x","datastoreReady":true}`), ""},
		{"locked (calicoctl datastore migrate lock)", ci(`{"clusterGUID":"x","datastoreReady":false}`), "spec.datastoreReady: the datastore is not ready"},
		{"flag absent", ci(`{"clusterGUID":"x"}`), "not ready"},
		{"flag not a boolean", ci(`{"datastoreReady":"yes"}`), "cannot read"},
		{"ClusterInformation missing", map[string]Resource{}, "missing: the datastore is not initialised"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := notReady("/calico", tc.res)
			switch {
			case tc.want == "" && d != nil:
				t.Errorf("not ready: %s", d)
			case tc.want != "" && d == nil:
				t.Errorf("ready, want %q", tc.want)
			case d != nil && (!strings.Contains(d.String(), tc.want) || !strings.HasPrefix(d.String(), key+": ClusterInformation/default")):
				t.Errorf("got %q, want it to name %s and say %q", d, key, tc.want)
			}
		})
	}
}

func gnpYAML(name string, order, port int) string {
	return "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: " + name + "}\nspec:\n  order: " + strconv.Itoa(order) +
		"\n  selector: role == 'gateway'\n  ingress:\n  - action: Allow\n    protocol: TCP\n    destination: {ports: [" + strconv.Itoa(port) + "]}\n"
}

// Calico's ready flag, with the real calicoctl: `calicoctl datastore
// migrate lock` stops every change from being applied (Felix restarts and
// waits); a gateway starting meanwhile enforces its cache; `unlock` applies
// what changed.
func TestWatchHonoursCalicoReadyFlag(t *testing.T) {
	srv := etcdtest.Start(t, nil)
	ctl := srv.NeedCalicoctl(t)
	ctl.Apply(t, gnpYAML("allow-ssh", 1, 22))
	main := fleetMain(t, "gw1")
	cache := t.TempDir() + "/cache.json"
	w, ch := newWatcher(t, srv.Endpoint, main, cache)
	first := next(t, ch, 10*time.Second, "order 1", func(s *Snapshot) bool { return policyOrder(s, "allow-ssh") == 1 })

	if out, err := ctl.Run("", "datastore", "migrate", "lock"); err != nil {
		t.Fatalf("calicoctl datastore migrate lock: %v\n%s", err, out)
	}
	s := next(t, ch, 5*time.Second, "not ready", func(s *Snapshot) bool { return s.Err != nil })
	want := pfx + "clusterinformations/default: ClusterInformation/default: spec.datastoreReady: the datastore is not ready"
	if !strings.HasPrefix(s.Err.Error(), want) {
		t.Errorf("locked datastore: %v\nwant it to start with %s", s.Err, want)
	}
	ctl.Apply(t, gnpYAML("allow-ssh", 2, 22))
	deadline := time.After(700 * time.Millisecond)
wait:
	for {
		select {
		case s := <-ch:
			if s.Err == nil {
				t.Fatalf("a change was applied while the datastore is locked (order %v)", policyOrder(s, "allow-ssh"))
			}
		case <-deadline:
			break wait
		}
	}
	if w.LastGood() != first {
		t.Error("the last good snapshot changed while the datastore is locked")
	}

	// Starting while locked: the cache stands in, as when etcd is
	// unreachable; without a cache there is nothing to enforce.
	w2, ch2 := newWatcher(t, srv.Endpoint, main, cache)
	s = next(t, ch2, 10*time.Second, "a snapshot", func(*Snapshot) bool { return true })
	if !good(s) || !s.FromCache || policyOrder(s, "allow-ssh") != 1 {
		t.Errorf("start while locked: fromCache=%v order=%v err=%v; want the cached set", s.FromCache, policyOrder(s, "allow-ssh"), s.Err)
	}
	_, ch3 := newWatcher(t, srv.Endpoint, main, "")
	s = next(t, ch3, 10*time.Second, "a snapshot", func(*Snapshot) bool { return true })
	if s.Err == nil || !strings.Contains(s.Err.Error(), "not ready") {
		t.Errorf("start while locked without a cache: err %v; want not ready", s.Err)
	}

	if out, err := ctl.Run("", "datastore", "migrate", "unlock"); err != nil {
		t.Fatalf("calicoctl datastore migrate unlock: %v\n%s", err, out)
	}
	next(t, ch, 5*time.Second, "the change made while locked", func(s *Snapshot) bool { return policyOrder(s, "allow-ssh") == 2 })
	s = next(t, ch2, 5*time.Second, "the live set", func(s *Snapshot) bool { return policyOrder(s, "allow-ssh") == 2 })
	if s.FromCache || w2.Stats().FromCache {
		t.Error("after unlock the gateway that started from its cache still says fromCache")
	}
}

// syncBuf is a log sink shared by goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Kinds Felix would use and nfgate does not read are logged, not ignored
// silently.
func TestWatchLogsUnreadKinds(t *testing.T) {
	srv := etcdtest.Start(t, nil)
	ctl := srv.NeedCalicoctl(t)
	ctl.Apply(t, gnpYAML("allow-ssh", 1, 22)+`---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: deny-all, namespace: ns1}
spec:
  types: [Ingress]
  ingress:
  - action: Deny
`)
	var buf syncBuf
	w, err := New(Options{Datastore: config.Datastore{Endpoints: []string{srv.Endpoint}}, MainPath: fleetMain(t, "gw1"),
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := next(t, w.Watch(ctx), 10*time.Second, "a snapshot", func(*Snapshot) bool { return true })
	if !good(s) {
		t.Fatalf("snapshot rejected: %v", s.Err)
	}
	for _, want := range []string{"1 NetworkPolicy resource(s) are not read by nfgate", "projectcalico.org/namespace"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
}
