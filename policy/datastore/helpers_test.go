package datastore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/policy/datastore/etcdtest"
)

const pfx = "/calico/resources/v3/projectcalico.org/"

// Values as Calico's etcdv3 backend stores them: encoding/json of the v3
// API object, with the metadata calicoctl and libcalico-go set (uid,
// creationTimestamp) and the policy-name annotation.
func gnpJSON(name string, order, port int) string {
	return fmt.Sprintf(`{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":%q,"uid":"8a6d3e0c-1f7e-4c55-9a0e-3b2f1f4c0d11","creationTimestamp":"2024-05-01T10:00:00Z","annotations":{"projectcalico.org/metadata":"{\"name\":\"%s\"}"}},"spec":{"tier":"default","order":%d,"ingress":[{"action":"Allow","protocol":"TCP","source":{},"destination":{"ports":[%d]}}],"egress":[{"action":"Allow","source":{},"destination":{}}],"selector":"role == 'gateway'","types":["Ingress","Egress"],"applyOnForward":true}}`, name, name, order, port)
}

func hepJSON(name, node, iface, ip string) string {
	return fmt.Sprintf(`{"kind":"HostEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":%q,"uid":"0c5d","creationTimestamp":"2024-05-01T10:00:00Z","labels":{"role":"gateway"}},"spec":{"node":%q,"interfaceName":%q,"expectedIPs":[%q]}}`, name, node, iface, ip)
}

const (
	gnsJSON   = `{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"partners","uid":"77","creationTimestamp":"2024-05-01T10:00:00Z","labels":{"kind":"partner"}},"spec":{"nets":["198.19.0.0/16"]}}`
	tierJSON  = `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"security","uid":"78","creationTimestamp":"2024-05-01T10:00:00Z"},"spec":{"order":100}}`
	profJSON  = `{"kind":"Profile","apiVersion":"projectcalico.org/v3","metadata":{"name":"edge","uid":"79","creationTimestamp":"2024-05-01T10:00:00Z"},"spec":{"ingress":[{"action":"Deny","source":{},"destination":{}}],"egress":[{"action":"Allow","source":{},"destination":{}}],"labelsToApply":{"zone":"edge"}}}`
	felixJSON = `{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default","uid":"80","creationTimestamp":"2024-05-01T10:00:00Z"},"spec":{"iptablesFilterDenyAction":"Reject","logSeverityScreen":"Info","reportingInterval":"0s"}}`
)

// fleetMain writes a gateway's local configuration.
func fleetMain(t testing.TB, node string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nfgate.toml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("[gateway]\nnodeName = %q\nfailsafeInboundHostPorts = \"tcp:22\"\n", node)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return quietLog()
}

func newWatcher(t *testing.T, endpoint, main, cache string) (*Watcher, <-chan *Snapshot) {
	t.Helper()
	node := ""
	if l, _ := config.Load(main); l != nil && l.Policy != nil {
		node = l.Policy.Settings.NodeName // as config.Load sets Datastore.NodeName
	}
	w, err := New(Options{
		Datastore:   config.Datastore{Endpoints: []string{endpoint}, Prefix: "/calico", CacheFile: cache, NodeName: node},
		MainPath:    main,
		Quiet:       20 * time.Millisecond,
		MaxDelay:    200 * time.Millisecond,
		ListTimeout: time.Second,
		Logger:      testLog(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := w.Watch(ctx)
	t.Cleanup(func() {
		cancel()
		for range ch {
		}
		w.Close()
	})
	return w, ch
}

// next waits for a snapshot satisfying ok.
func next(t *testing.T, ch <-chan *Snapshot, d time.Duration, what string, ok func(*Snapshot) bool) *Snapshot {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case s, open := <-ch:
			if !open {
				t.Fatalf("waiting for %s: channel closed", what)
			}
			if ok(s) {
				return s
			}
		case <-timeout:
			t.Fatalf("no snapshot with %s within %v", what, d)
		}
	}
}

func good(s *Snapshot) bool { return s.Err == nil && s.Loaded != nil && s.Loaded.Policy != nil }

func policyOrder(s *Snapshot, name string) float64 {
	if !good(s) {
		return -1
	}
	for _, p := range s.Loaded.Policy.Policies {
		if p.Name == name && p.Order != nil {
			return *p.Order
		}
	}
	return -1
}

func put(t testing.TB, cli *clientv3.Client, key, value string) int64 {
	t.Helper()
	return etcdtest.Put(t, cli, key, value)
}

// proxy forwards TCP to etcd and can cut the gateway off.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.Cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func clientWithLease(id clientv3.LeaseID) clientv3.OpOption { return clientv3.WithLease(id) }
