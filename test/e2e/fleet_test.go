//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/policy/datastore"
	"github.com/nfgate/nfgate/policy/datastore/etcdtest"
	"github.com/nfgate/nfgate/test/netlab"
)

// The fleet's policy, as a Calico user writes it and applies it with the
// real calicoctl (v3.32.1, DATASTORE_TYPE=etcdv3). Forwarded TCP out of
// each gateway's maintenance interface meets four tiers, in Calico's order:
//
//	security      (order 100, defaultAction Pass)  denies 8099
//	kube-admin    (built-in, 1000, Pass)           denies 8098
//	default       (built-in, 1000000, Deny)        passes 8097; allows 22, the port of the
//	                                               moment, 8098 and 8099; the rest is dropped
//	kube-baseline (built-in, 10000000, Pass)       allows 8097; denies 8000
//
// so a gateway allows the port of the moment and 8097 and drops 8098, 8099
// and every other port only if it orders the tiers and honours their
// default actions as Felix does.
const fleetBase = `apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: security
spec:
  order: 100
  defaultAction: Pass
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: security.deny-8099
spec:
  tier: security
  order: 10
  selector: network == 'maintenance'
  applyOnForward: true
  types: [Egress]
  egress:
  - action: Deny
    protocol: TCP
    destination:
      ports: [8099]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: admin-deny-8098
spec:
  tier: kube-admin
  selector: network == 'maintenance'
  applyOnForward: true
  types: [Egress]
  egress:
  - action: Deny
    protocol: TCP
    destination:
      ports: [8098]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: baseline
spec:
  tier: kube-baseline
  selector: network == 'maintenance'
  applyOnForward: true
  types: [Egress]
  egress:
  - action: Allow
    protocol: TCP
    destination:
      ports: [8097]
  - action: Deny
    protocol: TCP
    destination:
      ports: [8000]
`

// fleetPolicy is the default tier's policy allowing port.
func fleetPolicy(port int) string {
	return fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: maint-allowed
spec:
  order: 100
  selector: network == 'maintenance'
  applyOnForward: true
  types: [Egress]
  egress:
  - action: Pass
    protocol: TCP
    destination:
      ports: [8097]
  - action: Allow
    protocol: TCP
    destination:
      ports: [22, %d, 8098, 8099]
`, port)
}

func fleetHEP(node string) string {
	return fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: %s.maint0
  labels:
    network: maintenance
spec:
  node: %s
  interfaceName: maint0
  expectedIPs: [%s]
`, node, node, netlab.GWMaint)
}

// calicoKeys is where Calico's etcdv3 backend keeps v3 resources.
const calicoKeys = "/calico/resources/v3/projectcalico.org/"

// etcdLink makes etcd (on the root namespace's loopback) reachable from a
// gateway namespace: a TCP forwarder listening on the gateway's loopback.
// Cut drops the gateway's connections and refuses new ones (the gateway
// is cut off from the datastore); Restore ends that.
type etcdLink struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func linkEtcd(t *testing.T, lab *netlab.Lab, endpoint string) *etcdLink {
	p := &etcdLink{ln: lab.Listen(netlab.GW, "tcp", "127.0.0.1:0"), target: strings.TrimPrefix(endpoint, "http://")}
	t.Cleanup(p.Cut)
	go func() {
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			u, err := net.DialTimeout("tcp", p.target, time.Second)
			if p.cut || err != nil {
				p.mu.Unlock()
				c.Close()
				if u != nil {
					u.Close()
				}
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

func (p *etcdLink) URL() string { return "http://" + p.ln.Addr().String() }

func (p *etcdLink) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *etcdLink) Restore() { p.mu.Lock(); p.cut = false; p.mu.Unlock() }

// gateway is one member of the fleet: its own lab (client, gateway,
// maintenance network), its daemon and its link to etcd.
type gateway struct {
	name string
	lab  *netlab.Lab
	d    *daemon
	link *etcdLink
	cfg  string // the local TOML without [engine]
}

// fleetStats is the part of the --stats file fleet mode adds.
type fleetStats struct {
	stats
	Datastore *struct {
		Snapshots        uint64 `json:"snapshots"`
		Rejected         uint64 `json:"rejected"`
		Connected        bool   `json:"connected"`
		Node             string `json:"node"`
		AppliedRevision  int64  `json:"applied_revision"`
		AppliedFromCache bool   `json:"applied_from_cache"`
		LastError        string `json:"last_error"`
	} `json:"datastore"`
}

func (g *gateway) stats() fleetStats {
	var s fleetStats
	b, _ := os.ReadFile(g.d.stats)
	json.Unmarshal(b, &s)
	return s
}

// waitStats polls the stats file (written every second and after every
// reload) until ok, at most d.
func (g *gateway) waitStats(d time.Duration, ok func(fleetStats) bool) (fleetStats, bool) {
	deadline := time.Now().Add(d)
	for {
		s := g.stats()
		if s.Datastore != nil && ok(s) {
			return s, true
		}
		if time.Now().After(deadline) {
			return s, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// works tells whether a new TCP flow from the client to the maintenance
// host's port gets through this gateway (a denied SYN is dropped: no
// answer within timeout).
func (g *gateway) works(port int, timeout time.Duration) bool {
	return g.lab.TCPWorks(netlab.Client, fmt.Sprintf("%s:%d", netlab.MaintIP, port), timeout)
}

// reloadAfter is the first trace reload line (ok or not) written at or
// after t0.
func (g *gateway) reloadAfter(t0 time.Time) (map[string]any, time.Time) {
	for _, r := range g.d.Trace() {
		if r["type"] != "reload" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["time"]))
		if err == nil && !at.Before(t0) {
			return r, at
		}
	}
	return nil, time.Time{}
}

// each runs fn for every gateway at once and waits.
func each(gws []*gateway, fn func(i int, g *gateway)) {
	var wg sync.WaitGroup
	for i, g := range gws {
		wg.Add(1)
		go func() { defer wg.Done(); fn(i, g) }()
	}
	wg.Wait()
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1 // nearest rank
	return s[max(0, min(i, len(s)-1))]
}

// TestFleet runs three gateways, each `nfgate run` in its own namespace lab
// with real traffic through it, on one real etcd written by the real
// calicoctl as a Calico user does: a Pass tier and Calico's built-in tiers
// are enforced in Felix's order; a change reaches every gateway (measured:
// calicoctl apply to enforced, p50/p99); while the datastore is locked
// (calicoctl datastore migrate lock) nothing changes; a resource calicoctl
// would refuse, written by another client, is reported and the last good
// policy stays; with etcd stopped enforcement is unchanged and a gateway
// restarted enforces its cache; a change made while a gateway was cut off
// is applied when it returns; without etcd and cache the daemon refuses to
// start.
func TestFleet(t *testing.T) {
	const nGW, changes = 3, 10
	var gws []*gateway
	for i := 1; i <= nGW; i++ {
		lab := netlab.NewGateway(t) // skips without root
		gws = append(gws, &gateway{name: fmt.Sprintf("gw%d", i), lab: lab})
	}
	etcd := etcdtest.Start(t, nil)
	ctl := etcd.NeedCalicoctl(t) // skips, saying why, without Calico's kit
	cli := etcd.Client(t)
	c := checker{t}
	apply := func(yaml string) time.Duration {
		t0 := time.Now()
		ctl.Apply(t, yaml)
		return time.Since(t0)
	}
	setup := fleetBase + "---\n" + fleetPolicy(8000)
	for _, g := range gws {
		setup += "---\n" + fleetHEP(g.name)
	}
	apply(setup)

	for _, g := range gws {
		for p := 8000; p <= 8000+changes+2; p++ {
			netlab.EchoServer(g.lab.Listen(netlab.Maint, "tcp", fmt.Sprintf(":%d", p)))
		}
		for _, p := range []int{8097, 8098, 8099} {
			netlab.EchoServer(g.lab.Listen(netlab.Maint, "tcp", fmt.Sprintf(":%d", p)))
		}
		g.link = linkEtcd(t, g.lab, etcd.Endpoint)
	}
	for _, g := range gws {
		g.cfg = fmt.Sprintf(`
[gateway]
nodeName = %q

[datastore]
endpoints = [%q]
cacheFile = %q
statusTTL = "5s"
`, g.name, g.link.URL(), filepath.Join(t.TempDir(), "cache.json"))
		g.d = startDaemon(t, g.lab, g.cfg, "")
	}
	each(gws, func(i int, g *gateway) {
		c.is(g.name+": started from calicoctl's etcd: 8000 allowed (security's Pass, kube-admin, default's Allow; kube-baseline's Deny not reached)", g.works(8000, time.Second), true)
		c.is(g.name+": 8099 denied by the security tier before default's Allow", g.works(8099, 300*time.Millisecond), false)
		c.is(g.name+": 8098 denied by kube-admin (order 1000) before default's Allow", g.works(8098, 300*time.Millisecond), false)
		c.is(g.name+": 8097 passed by default, allowed by kube-baseline", g.works(8097, time.Second), true)
		c.is(g.name+": 8001 (in no policy) dropped at the end of the default tier", g.works(8001, 300*time.Millisecond), false)
	})

	// Convergence: change the policy `changes` times with calicoctl; each
	// time every gateway must allow the new port and deny the previous one.
	var swap, traffic, ctlTime []time.Duration
	var mu sync.Mutex
	var toWrite []time.Duration   // calicoctl start -> its write seen by a watcher
	var fromWrite []time.Duration // that write -> reload done
	for k := 1; k <= changes; k++ {
		port := 8000 + k
		wctx, wcancel := context.WithCancel(context.Background())
		wch := cli.Watch(wctx, calicoKeys+"globalnetworkpolicies/maint-allowed")
		seen := make(chan time.Time, 1)
		go func() {
			if _, ok := <-wch; ok {
				seen <- time.Now()
			}
		}()
		t0 := time.Now()
		ctlTime = append(ctlTime, apply(fleetPolicy(port)))
		var written time.Duration
		select {
		case at := <-seen:
			written = at.Sub(t0)
			toWrite = append(toWrite, written)
		case <-time.After(2 * time.Second):
			t.Errorf("change %d: calicoctl's write not seen by a watcher", k)
		}
		wcancel()
		each(gws, func(i int, g *gateway) {
			deadline := t0.Add(10 * time.Second)
			for !g.works(port, 50*time.Millisecond) {
				if time.Now().After(deadline) {
					t.Errorf("%s: change %d (port %d) not enforced within 10s", g.name, k, port)
					return
				}
			}
			tr := time.Since(t0)
			// The reload line is written once the swap has returned
			// (after the re-check of existing flows): new flows can pass
			// a little before it.
			var line map[string]any
			var at time.Time
			for end := time.Now().Add(3 * time.Second); line == nil && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
				line, at = g.reloadAfter(t0)
			}
			mu.Lock()
			traffic = append(traffic, tr)
			if line != nil && line["ok"] == true {
				swap = append(swap, at.Sub(t0))
				fromWrite = append(fromWrite, at.Sub(t0)-written)
			} else {
				t.Errorf("%s: change %d: no good reload line in the trace (%v)", g.name, k, line)
			}
			mu.Unlock()
			if g.works(port-1, 300*time.Millisecond) {
				t.Errorf("%s: change %d: the previous port %d is still allowed", g.name, k, port-1)
			}
		})
	}
	c.is(fmt.Sprintf("all %d gateways enforced all %d changes (old port denied, new allowed)", nGW, changes), !t.Failed(), true)
	msg := fmt.Sprintf("fleet convergence, %d gateways x %d changes, from `calicoctl apply` started: reload done (trace line) p50 %v, p99 %v (max); "+
		"first new flow through (polled every 50ms) p50 %v, p99 %v; calicoctl's etcd write seen after p50 %v (it exits after p50 %v); "+
		"that write -> reload done p50 %v, p99 %v",
		nGW, changes, percentile(swap, .5).Round(time.Millisecond), percentile(swap, .99).Round(time.Millisecond),
		percentile(traffic, .5).Round(time.Millisecond), percentile(traffic, .99).Round(time.Millisecond),
		percentile(toWrite, .5).Round(time.Millisecond), percentile(ctlTime, .5).Round(time.Millisecond),
		percentile(fromWrite, .5).Round(time.Millisecond), percentile(fromWrite, .99).Round(time.Millisecond))
	t.Log(msg)
	fmt.Println("TestFleet:", msg) // also visible without -v
	last := 8000 + changes
	each(gws, func(i int, g *gateway) {
		c.is(g.name+": after the changes: 8099, 8098 still denied, 8097 still allowed",
			!g.works(8099, 300*time.Millisecond) && !g.works(8098, 300*time.Millisecond) && g.works(8097, time.Second), true)
	})

	// Every gateway publishes its status; `nfgate status` shows the fleet.
	inSync := func() (*datastore.FleetStatus, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		fs, err := datastore.ListStatus(ctx, cli, "/calico")
		if err != nil || len(fs.Gateways) != nGW {
			return fs, false
		}
		for _, s := range fs.Gateways {
			if s.Revision < fs.Revision || s.LastError != "" {
				return fs, false
			}
		}
		return fs, true
	}
	ok := false
	for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, ok = inSync()
	}
	c.is("status keys: 3 gateways at the newest revision, no error", ok, true)
	out, _ := gws[0].lab.Exec(netlab.GW, nfgateBin, "status", "--datastore-endpoints", gws[0].link.URL())
	t.Logf("nfgate status:\n%s", out)
	c.is("`nfgate status` lists every gateway in sync", strings.Contains(out, "3 gateway(s), 3 in sync"), true)

	// Calico's ready flag: while the datastore is locked no change applies
	// (Felix restarts and waits); unlocked, the change made meanwhile does.
	before := make([]fleetStats, nGW)
	for i, g := range gws {
		before[i] = g.stats()
	}
	if out, err := ctl.Run("", "datastore", "migrate", "lock"); err != nil {
		t.Fatalf("calicoctl datastore migrate lock: %v\n%s", err, out)
	}
	apply(fleetPolicy(last + 1))
	each(gws, func(i int, g *gateway) {
		s, ok := g.waitStats(5*time.Second, func(s fleetStats) bool { return s.ReloadErrs > before[i].ReloadErrs })
		c.is(g.name+": locked: not applied, reported naming ClusterInformation", ok && s.Gen == before[i].Gen &&
			strings.Contains(s.Datastore.LastError, "clusterinformations/default"), true)
		c.is(g.name+": locked: new flow to the port of the change made meanwhile", g.works(last+1, 300*time.Millisecond), false)
		c.is(g.name+": locked: new flow to the allowed port", g.works(last, time.Second), true)
	})
	if out, err := ctl.Run("", "datastore", "migrate", "unlock"); err != nil {
		t.Fatalf("calicoctl datastore migrate unlock: %v\n%s", err, out)
	}
	each(gws, func(i int, g *gateway) {
		_, ok := g.waitStats(10*time.Second, func(s fleetStats) bool { return s.Gen > before[i].Gen && s.Datastore.LastError == "" })
		c.is(g.name+": unlocked: the change made while locked applied, error cleared", ok, true)
		c.is(g.name+": unlocked: new flow to the port of that change", g.works(last+1, time.Second), true)
	})
	last++

	// A resource calicoctl would refuse, written by another client:
	// reported (trace, stats, status), the last good policy stays.
	for i, g := range gws {
		before[i] = g.stats()
	}
	t0 := time.Now()
	etcdtest.Put(t, cli, calicoKeys+"globalnetworkpolicies/broken",
		`{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"broken"},"spec":{"selector":"all()","ingress":[{"action":"Allw"}]}}`)
	each(gws, func(i int, g *gateway) {
		s, ok := g.waitStats(5*time.Second, func(s fleetStats) bool { return s.ReloadErrs > before[i].ReloadErrs })
		c.is(g.name+": invalid resource rejected (reload_errors +1, generation kept)", ok && s.Gen == before[i].Gen, true)
		c.is(g.name+": stats name the bad key", strings.Contains(s.Datastore.LastError, "globalnetworkpolicies/broken"), true)
		line, _ := g.reloadAfter(t0)
		c.is(g.name+": trace reload line ok=false naming the etcd key", line != nil && line["ok"] == false &&
			strings.Contains(fmt.Sprint(line["errors"]), calicoKeys+"globalnetworkpolicies/broken"), true)
		if i == 0 && line != nil {
			t.Logf("reload trace line: %v", line)
		}
		c.is(g.name+": last good policy stays: new flow to the allowed port", g.works(last, time.Second), true)
		c.is(g.name+": last good policy stays: new flow to the old port", g.works(last-1, 300*time.Millisecond), false)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	fs, err := datastore.ListStatus(ctx, cli, "/calico")
	cancel()
	bad := err == nil && len(fs.Gateways) == nGW
	for _, s := range fs.Gateways {
		bad = bad && strings.Contains(s.LastError, "globalnetworkpolicies/broken")
	}
	c.is("status keys show the error on every gateway", bad, true)
	for i, g := range gws {
		before[i] = g.stats()
	}
	ctl.Delete(t, "globalnetworkpolicy", "broken")
	each(gws, func(i int, g *gateway) {
		s, ok := g.waitStats(5*time.Second, func(s fleetStats) bool { return s.Reloads > before[i].Reloads })
		c.is(g.name+": bad resource deleted (calicoctl delete): good policy applied again, error cleared", ok && s.Datastore.LastError == "", true)
	})

	// etcd stopped: enforcement unchanged.
	etcd.Stop()
	time.Sleep(500 * time.Millisecond)
	for i, g := range gws {
		before[i] = g.stats()
	}
	each(gws, func(i int, g *gateway) {
		c.is(g.name+": etcd stopped: new flow to the allowed port", g.works(last, time.Second), true)
		c.is(g.name+": etcd stopped: new flow to the old port", g.works(last-1, 300*time.Millisecond), false)
	})
	each(gws, func(i int, g *gateway) {
		s := g.d.Stats()
		c.is(g.name+": etcd stopped: same generation, no reload", s.Gen == before[i].Gen && s.Reloads == before[i].Reloads && s.ReloadErrs == before[i].ReloadErrs, true)
	})

	// A gateway restarted while etcd is down enforces its cache, tiers
	// included.
	g3 := gws[2]
	netlab.Stop(g3.d.cmd, unix.SIGTERM, 5*time.Second)
	start := time.Now()
	g3.d.start() // waits for the first policy (etcd list timeout 5s, then the cache)
	t.Logf("%s restarted with etcd down: policy live after %v", g3.name, time.Since(start).Round(time.Millisecond))
	s, _ := g3.waitStats(3*time.Second, func(s fleetStats) bool { return s.Datastore.AppliedFromCache })
	c.is(g3.name+": restarted with etcd down: enforcing the cache (stats)", s.Datastore != nil && s.Datastore.AppliedFromCache, true)
	c.is(g3.name+": log says it enforces cached policy", strings.Contains(g3.d.log.String(), "enforcing cached policy from"), true)
	c.is(g3.name+": from cache: new flow to the allowed port", g3.works(last, time.Second), true)
	c.is(g3.name+": from cache: new flow to the old port", g3.works(last-1, 300*time.Millisecond), false)
	c.is(g3.name+": from cache: 8098 denied (kube-admin), 8097 allowed (kube-baseline)",
		!g3.works(8098, 300*time.Millisecond) && g3.works(8097, time.Second), true)

	// Without etcd and without a cache the daemon refuses to start (before
	// touching the kernel), so systemd retries.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "nfgate.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[gateway]\nnodeName = \"gw9\"\n[datastore]\nendpoints = [%q]\ncacheFile = %q\n",
		gws[0].link.URL(), filepath.Join(dir, "cache.json"))), 0o600)
	// (Its own lock directory: gw1's daemon holds the namespace's lock.)
	out, err = gws[0].lab.Exec(netlab.GW, nfgateBin, "run", "--config", cfg, "--datastore-wait", "1s", "--lock-dir", dir)
	c.is("no etcd, no cache: `nfgate run` exits non-zero saying it refuses to start", err != nil && strings.Contains(out, "refusing to start"), true)
	t.Logf("refusal: %s", lastLines(out, 2))

	// etcd back: every gateway reconnects; the cached one switches to etcd.
	etcd.Restart(t)
	each(gws, func(i int, g *gateway) {
		_, ok := g.waitStats(20*time.Second, func(s fleetStats) bool { return s.Datastore.Connected && !s.Datastore.AppliedFromCache })
		c.is(g.name+": etcd back: connected, enforcing etcd's set", ok, true)
	})

	// A change while gw2 is cut off reaches it when it returns.
	g2 := gws[1]
	g2.link.Cut()
	before[1] = g2.stats()
	next := last + 1
	apply(fleetPolicy(next))
	each([]*gateway{gws[0], gws[2]}, func(i int, g *gateway) {
		ok := false
		for deadline := time.Now().Add(10 * time.Second); !ok && time.Now().Before(deadline); {
			ok = g.works(next, 50*time.Millisecond)
		}
		c.is(g.name+": change while gw2 is cut off: enforced", ok, true)
	})
	c.is(g2.name+": cut off: old policy stays: new flow to the new port", g2.works(next, 300*time.Millisecond), false)
	c.is(g2.name+": cut off: old policy stays: new flow to the old port", g2.works(last, time.Second), true)
	c.is(g2.name+": cut off: no reload", g2.stats().Reloads == before[1].Reloads, true)
	g2.link.Restore()
	t0 = time.Now()
	ok = false
	for deadline := time.Now().Add(20 * time.Second); !ok && time.Now().Before(deadline); {
		ok = g2.works(next, 50*time.Millisecond)
	}
	c.is(g2.name+": back: the change made while cut off is enforced", ok, true)
	t.Logf("%s: link restored -> change enforced in %v (gRPC reconnect backoff included)", g2.name, time.Since(t0).Round(time.Millisecond))
	c.is(g2.name+": back: new flow to the old port", g2.works(last, 300*time.Millisecond), false)

	// SIGHUP in fleet mode re-reads the local file with etcd's resources
	// (the local file alone has no host endpoint: it would police nothing).
	g1 := gws[0]
	g1.d.write(g1.cfg + "\n[[globalNetworkPolicy]]\nname = \"Bad_Name\"\n" + engineTOML(g1.d.dir, ""))
	s = fleetStats{stats: g1.d.Reload()}
	c.is(g1.name+": SIGHUP with a bad local file: rejected", s.ReloadErrs > 0, true)
	var line map[string]any // the newest reload line
	for _, r := range g1.d.Trace() {
		if r["type"] == "reload" {
			line = r
		}
	}
	c.is(g1.name+": its reload line names the local file", line != nil && line["ok"] == false && strings.Contains(fmt.Sprint(line["errors"]), "nfgate.toml"), true)
	g1.d.write(g1.cfg + engineTOML(g1.d.dir, ""))
	gen := g1.stats().Gen
	st := g1.d.Reload()
	c.is(g1.name+": SIGHUP with the good file: new generation", st.Gen == gen+1, true)
	c.is(g1.name+": after SIGHUP: new flow to the allowed port", g1.works(next, time.Second), true)
	c.is(g1.name+": after SIGHUP: new flow to the old port (etcd's policy still in force)", g1.works(last, 300*time.Millisecond), false)
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}
