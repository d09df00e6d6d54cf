package datastore

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/policy/datastore/etcdtest"
)

func TestNormalise(t *testing.T) {
	for _, tc := range []struct {
		name, key, value string
		want             string // substring of the normalised JSON, or of the error
		wantErr          bool
	}{
		{"server metadata dropped", "globalnetworksets/partners", gnsJSON, `"metadata":{"labels":{"kind":"partner"},"name":"partners"}`, false},
		{"policy name from Calico's annotation", "globalnetworkpolicies/default.allow-ssh", gnpJSON("allow-ssh", 10, 22), `"name":"allow-ssh"`, false},
		{"annotation removed", "globalnetworkpolicies/allow-ssh", gnpJSON("allow-ssh", 10, 22), `"metadata":{"name":"allow-ssh"}`, false},
		{"name filled from the key", "tiers/security", `{"kind":"Tier","apiVersion":"projectcalico.org/v3","spec":{}}`, `"name":"security"`, false},
		{"numbers kept exactly", "tiers/security", `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"security"},"spec":{"order":100.25}}`, `"order":100.25`, false},
		{"other fields left to the loader", "tiers/security", `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"security","namespace":"x"}}`, `"namespace":"x"`, false},
		{"status dropped (calicoctl writes Tiers with status {})", "tiers/default",
			`{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"default","uid":"84f0","creationTimestamp":"2026-12-01T22:52:52Z"},"spec":{"order":1000000,"defaultAction":"Deny"},"status":{}}`,
			`"spec":{"defaultAction":"Deny","order":1000000}}`, false},
		{"Kubernetes object metadata dropped", "globalnetworksets/partners",
			`{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"partners","finalizers":["x.io/y"],"ownerReferences":[{"kind":"ConfigMap","name":"c","uid":"1","apiVersion":"v1"}],"generateName":"p-","deletionGracePeriodSeconds":5,"annotations":{"note":"kept"}},"spec":{}}`,
			`"metadata":{"annotations":{"note":"kept"},"name":"partners"}`, false},
		{"calicoctl's FelixConfiguration defaults dropped", "felixconfigurations/default",
			`{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"logSeverityScreen":"Info","nftablesMode":"Auto","bpfLogLevel":"","bpfConnectTimeLoadBalancing":"TCP","bpfHostNetworkedNATWithoutCTLB":"Enabled","floatingIPs":"Disabled"}}`,
			`"spec":{"logSeverityScreen":"Info"}}`, false},
		{"other values of those fields kept", "felixconfigurations/default",
			`{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"nftablesMode":"Enabled","bpfLogLevel":"Debug","floatingIPs":"Disabled"}}`,
			`"spec":{"bpfLogLevel":"Debug","nftablesMode":"Enabled"}}`, false},
		{"namespace filled from the key", "networksets/ns1/partners", `{"kind":"NetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"partners"},"spec":{}}`, `"metadata":{"name":"partners","namespace":"ns1"}`, false},
		{"namespace differs from the key", "networksets/ns1/partners", `{"kind":"NetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"partners","namespace":"ns2"},"spec":{}}`, `namespace "ns2" does not match the key's namespace "ns1"`, true},
		{"a FelixConfiguration keeps its creationTimestamp (the oldest selector-scoped one wins)", "felixconfigurations/edge",
			`{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"edge","uid":"1","creationTimestamp":"2026-12-01T23:33:20Z"},"spec":{"nodeSelector":"all()"}}`,
			`"metadata":{"creationTimestamp":"2026-12-01T23:33:20Z","name":"edge"}`, false},
		{"not JSON", "tiers/security", `order: 1`, "value is not a JSON object", true},
		{"two values", "tiers/security", `{} {}`, "more than one JSON value", true},
		{"kind under the wrong key", "tiers/partners", gnsJSON, "a GlobalNetworkSet is stored under the key of a Tier", true},
		{"name differs from the key", "globalnetworksets/other", gnsJSON, `name "partners" does not match the key's name "other"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := newResource("/calico", pfx+tc.key, []byte(tc.value), 1)
			if !ok {
				t.Fatalf("key %s not recognised", tc.key)
			}
			got := string(r.Data)
			if r.Err != nil {
				got = r.Err.String()
				if !strings.HasPrefix(got, pfx+tc.key+": ") {
					t.Errorf("error %q does not start with the key", got)
				}
			}
			if (r.Err != nil) != tc.wantErr || !strings.Contains(got, tc.want) {
				t.Errorf("got %s\nwant (error=%v) %s", got, tc.wantErr, tc.want)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct{ kind, key string }{
		{"GlobalNetworkPolicy", "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/x"},
		{"HostEndpoint", "/calico/resources/v3/projectcalico.org/hostendpoints/x"},
		{"GlobalNetworkSet", "/calico/resources/v3/projectcalico.org/globalnetworksets/x"},
		{"Profile", "/calico/resources/v3/projectcalico.org/profiles/x"},
		{"Tier", "/calico/resources/v3/projectcalico.org/tiers/x"},
		{"FelixConfiguration", "/calico/resources/v3/projectcalico.org/felixconfigurations/x"},
		{"ClusterInformation", "/calico/resources/v3/projectcalico.org/clusterinformations/x"},
		{"StagedGlobalNetworkPolicy", "/calico/resources/v3/projectcalico.org/stagedglobalnetworkpolicies/x"},
		{"Node", "/calico/resources/v3/projectcalico.org/nodes/x"},
	} {
		if k, _ := Key("/calico", tc.kind, "x"); k != tc.key {
			t.Errorf("Key(%s) = %s, want %s", tc.kind, k, tc.key)
		}
		if kind, name, ok := parseKey("/calico", tc.key); !ok || kind != tc.kind || name != "x" {
			t.Errorf("parseKey(%s) = %s %s %v", tc.key, kind, name, ok)
		}
	}
	if kind, name, ok := parseKey("/calico", pfx+"networksets/ns1/x"); !ok || kind != "NetworkSet" || name != "ns1/x" {
		t.Errorf("namespaced key: %s %s %v", kind, name, ok)
	}
	for _, k := range []string{pfx + "ippools/x", pfx + "networkpolicies/ns/x", pfx + "hostendpoints/", "/other/resources/v3/projectcalico.org/tiers/x",
		pfx + "networksets/x", pfx + "networksets/ns1/", pfx + "networksets/ns1/x/y", pfx + "tiers/a/b"} {
		if _, _, ok := parseKey("/calico", k); ok {
			t.Errorf("parseKey(%s) accepted a key nfgate does not read", k)
		}
	}
}

func TestWatchReadsCalicoLayout(t *testing.T) {
	srv := etcdtest.Start(t, nil)
	cli := srv.Client(t)
	etcdtest.InitCalico(t, cli)
	put(t, cli, pfx+"globalnetworkpolicies/default.allow-ssh", gnpJSON("allow-ssh", 10, 22))
	put(t, cli, pfx+"hostendpoints/gw1-eth0", hepJSON("gw1-eth0", "gw1", "eth0", "198.18.0.1"))
	put(t, cli, pfx+"hostendpoints/gw2-eth0", hepJSON("gw2-eth0", "gw2", "eth0", "198.18.0.2"))
	put(t, cli, pfx+"globalnetworksets/partners", gnsJSON)
	put(t, cli, pfx+"tiers/security", tierJSON)
	put(t, cli, pfx+"profiles/edge", profJSON)
	put(t, cli, pfx+"felixconfigurations/default", felixJSON)
	put(t, cli, pfx+"ippools/default-ipv4-ippool", `{"kind":"IPPool"}`) // not read
	put(t, cli, "/calico/resources/v3/projectcalico.org/networkpolicies/ns1/np", `{}`)

	_, ch := newWatcher(t, srv.Endpoint, fleetMain(t, "gw1"), "")
	s := next(t, ch, 10*time.Second, "the first snapshot", func(*Snapshot) bool { return true })
	if s.Err != nil {
		t.Fatalf("first snapshot rejected: %v", s.Err)
	}
	p := s.Loaded.Policy
	if len(s.Resources) != 11 {
		t.Errorf("%d resources, want 11 (calicoctl's 4 and the 7 written here; IPPool and namespaced policy not read)", len(s.Resources))
	}
	if len(p.Policies) != 1 || p.Policies[0].Name != "allow-ssh" || *p.Policies[0].Order != 10 || !p.Policies[0].ApplyOnForward {
		t.Errorf("policies: %+v", p.Policies)
	}
	if len(p.HostEndpoints) != 1 || p.HostEndpoints[0].Name != "gw1-eth0" || len(p.RemoteHostEndpoints) != 1 {
		t.Errorf("own host endpoints %+v, remote %d: want gw1-eth0 only, gw2's as remote", p.HostEndpoints, len(p.RemoteHostEndpoints))
	}
	if len(p.NetworkSets) != 1 || len(p.Profiles) < 1 || !slices.ContainsFunc(p.Tiers, func(t policy.Tier) bool { return t.Name == "security" }) {
		t.Errorf("sets %d profiles %d tiers %+v", len(p.NetworkSets), len(p.Profiles), p.Tiers)
	}
	if p.Settings.DenyAction != policy.DenyReject {
		t.Errorf("FelixConfiguration default's iptablesFilterDenyAction not applied")
	}
	if len(p.Settings.FailsafeInbound) != 1 {
		t.Errorf("local failsafe ports lost: %+v", p.Settings.FailsafeInbound)
	}
}

// The kinds of issue 11's second round: staged policies, namespaced
// network sets, and this gateway's Node (only its own key is read and
// watched: its labels select FelixConfigurations with a nodeSelector).
func TestWatchReadsStagedNetworkSetsAndOwnNode(t *testing.T) {
	srv := etcdtest.Start(t, nil)
	cli := srv.Client(t)
	etcdtest.InitCalico(t, cli)
	put(t, cli, pfx+"hostendpoints/gw1-eth0", hepJSON("gw1-eth0", "gw1", "eth0", "198.18.0.1"))
	put(t, cli, pfx+"stagedglobalnetworkpolicies/try-deny", `{"kind":"StagedGlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"try-deny","uid":"1","creationTimestamp":"2026-12-01T23:33:20Z","labels":{"projectcalico.org/tier":"default"}},"spec":{"stagedAction":"Set","tier":"default","selector":"role == 'gateway'","applyOnForward":true,"egress":[{"action":"Deny","source":{},"destination":{}}],"types":["Egress"]}}`)
	put(t, cli, pfx+"networksets/ns1/partners", `{"kind":"NetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"partners","namespace":"ns1","uid":"2","creationTimestamp":"2026-12-01T23:33:20Z","labels":{"kind":"partner"}},"spec":{"nets":["198.19.0.0/16"]}}`)
	put(t, cli, pfx+"felixconfigurations/edge", `{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"edge","uid":"3","creationTimestamp":"2026-12-01T23:33:20Z"},"spec":{"nodeSelector":"site == 'edge'","failsafeOutboundHostPorts":[]}}`)
	node := func(name, site string) string {
		return fmt.Sprintf(`{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":%q,"uid":"4","creationTimestamp":"2026-12-01T23:31:53Z","labels":{"site":%q}},"spec":{"bgp":{"ipv4Address":"198.18.0.1/24"}},"status":{}}`, name, site)
	}
	put(t, cli, pfx+"nodes/gw1", node("gw1", "edge"))
	put(t, cli, pfx+"nodes/gw10", node("gw10", "core")) // shares gw1's key prefix

	_, ch := newWatcher(t, srv.Endpoint, fleetMain(t, "gw1"), "")
	s := next(t, ch, 10*time.Second, "the first snapshot", func(*Snapshot) bool { return true })
	if !good(s) {
		t.Fatalf("first snapshot rejected: %v", s.Err)
	}
	p := s.Loaded.Policy
	if len(p.Policies) != 1 || !p.Policies[0].Staged || !p.Policies[0].ApplyOnForward {
		t.Errorf("policies: %+v", p.Policies)
	}
	if len(p.NetworkSets) != 1 || p.NetworkSets[0].Namespace != "ns1" {
		t.Errorf("network sets: %+v", p.NetworkSets)
	}
	if len(p.Settings.FailsafeOutbound) != 0 {
		t.Errorf("FelixConfiguration edge (nodeSelector site == 'edge', Node gw1 site=edge) not applied: %+v", p.Settings.FailsafeOutbound)
	}
	for _, r := range s.Resources {
		if r.Kind == "Node" && r.Name != "gw1" {
			t.Errorf("another gateway's Node read: %s", r.Key)
		}
	}
	// Another node's Node changes nothing; this one's labels do.
	put(t, cli, pfx+"nodes/gw10", node("gw10", "edge"))
	put(t, cli, pfx+"nodes/gw1", node("gw1", "core"))
	s = next(t, ch, 10*time.Second, "the default failsafes back", func(s *Snapshot) bool {
		return good(s) && len(s.Loaded.Policy.Settings.FailsafeOutbound) == len(policy.DefaultFailsafeOutbound())
	})
	for _, r := range s.Resources {
		if r.Kind == "Node" && r.Name != "gw1" {
			t.Errorf("another gateway's Node read: %s", r.Key)
		}
	}
}

func TestWatchChangesCoalescedAndTimed(t *testing.T) {
	srv := etcdtest.Start(t, nil)
	cli := srv.Client(t)
	etcdtest.InitCalico(t, cli)
	key := pfx + "globalnetworkpolicies/allow-ssh"
	put(t, cli, key, gnpJSON("allow-ssh", 1, 22))
	put(t, cli, pfx+"hostendpoints/gw1-eth0", hepJSON("gw1-eth0", "gw1", "eth0", "198.18.0.1"))
	w, ch := newWatcher(t, srv.Endpoint, fleetMain(t, "gw1"), "")
	next(t, ch, 10*time.Second, "order 1", func(s *Snapshot) bool { return policyOrder(s, "allow-ssh") == 1 })

	// Change to snapshot, one change at a time.
	const n = 50
	lat := make([]time.Duration, 0, n)
	for i := 2; i < n+2; i++ {
		t0 := time.Now()
		put(t, cli, key, gnpJSON("allow-ssh", i, 22))
		next(t, ch, 5*time.Second, "the new order", func(s *Snapshot) bool { return policyOrder(s, "allow-ssh") == float64(i) })
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	t.Logf("change-to-snapshot over %d changes (quiet period %v): p50 %v, p99 %v, max %v",
		n, w.opts.Quiet, lat[n/2].Round(time.Microsecond), lat[n*99/100].Round(time.Microsecond), lat[n-1].Round(time.Microsecond))

	// A burst of 30 changes is coalesced into few snapshots ending with the last.
	before := w.Stats().Snapshots
	for i := 100; i < 130; i++ {
		put(t, cli, key, gnpJSON("allow-ssh", i, 22))
	}
	next(t, ch, 5*time.Second, "the burst's last order", func(s *Snapshot) bool { return policyOrder(s, "allow-ssh") == 129 })
	if got := w.Stats().Snapshots - before; got > 10 {
		t.Errorf("a burst of 30 changes gave %d snapshots; want them coalesced", got)
	}
}

func TestWatchInvalidResourceKeepsLastGood(t *testing.T) {
	srv := etcdtest.Start(t, nil)
	cli := srv.Client(t)
	etcdtest.InitCalico(t, cli)
	put(t, cli, pfx+"globalnetworkpolicies/allow-ssh", gnpJSON("allow-ssh", 1, 22))
	w, ch := newWatcher(t, srv.Endpoint, fleetMain(t, "gw1"), "")
	first := next(t, ch, 10*time.Second, "a good snapshot", good)

	badKey := pfx + "globalnetworkpolicies/bad"
	put(t, cli, badKey, `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"bad"},"spec":{"ingress":[{"action":"Allw","source":{},"destination":{"ports":[22]}}]}}`)
	s := next(t, ch, 5*time.Second, "a rejected snapshot", func(s *Snapshot) bool { return s.Err != nil })
	want := badKey + `: GlobalNetworkPolicy/bad: spec.ingress[0].action: invalid action "Allw"`
	if !strings.Contains(s.Err.Error(), want) {
		t.Errorf("error:\n%v\nwant it to contain\n%s", s.Err, want)
	}
	if s.Loaded.Policy != nil {
		t.Error("a rejected snapshot carries a policy")
	}
	if w.LastGood() != first || w.Stats().Rejected != 1 {
		t.Errorf("last good changed or rejection not counted: %+v", w.Stats())
	}
	// Unparseable JSON is rejected the same way.
	put(t, cli, pfx+"tiers/broken", `{"kind":"Tier",`)
	s = next(t, ch, 5*time.Second, "the broken tier reported", func(s *Snapshot) bool {
		return s.Err != nil && strings.Contains(s.Err.Error(), pfx+"tiers/broken: Tier/broken: value is not a JSON object")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cli.Delete(ctx, badKey)
	cli.Delete(ctx, pfx+"tiers/broken")
	s = next(t, ch, 5*time.Second, "good again", good)
	if w.LastGood() != s || s.HashHex() != first.HashHex() {
		t.Errorf("after removing the bad resources the snapshot differs from the first good one")
	}
}

func TestWatchEtcdStoppedAndRestarted(t *testing.T) {
	srv := etcdtest.Start(t, nil)
	cli := srv.Client(t)
	etcdtest.InitCalico(t, cli)
	key := pfx + "globalnetworkpolicies/allow-ssh"
	put(t, cli, key, gnpJSON("allow-ssh", 1, 22))
	w, ch := newWatcher(t, srv.Endpoint, fleetMain(t, "gw1"), "")
	first := next(t, ch, 10*time.Second, "order 1", func(s *Snapshot) bool { return policyOrder(s, "allow-ssh") == 1 })

	srv.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().Connected && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if w.Stats().Connected {
		t.Error("still connected 10s after etcd stopped")
	}
	select {
	case s := <-ch:
		t.Fatalf("a snapshot while etcd is down: %+v", s)
	case <-time.After(500 * time.Millisecond):
	}
	if w.LastGood() != first {
		t.Fatal("the last good snapshot changed while etcd was down")
	}

	srv.Restart(t)
	put(t, cli, key, gnpJSON("allow-ssh", 2, 22))
	next(t, ch, 30*time.Second, "the change made after etcd came back", func(s *Snapshot) bool { return policyOrder(s, "allow-ssh") == 2 })
}

func TestWatchCutOffCompactedRelists(t *testing.T) {
	srv := etcdtest.Start(t, nil)
	cli := srv.Client(t)
	etcdtest.InitCalico(t, cli)
	key := pfx + "globalnetworkpolicies/allow-ssh"
	put(t, cli, key, gnpJSON("allow-ssh", 1, 22))
	px := newProxy(t, strings.TrimPrefix(srv.Endpoint, "http://"))
	w, ch := newWatcher(t, px.URL(), fleetMain(t, "gw1"), "")
	next(t, ch, 10*time.Second, "order 1", func(s *Snapshot) bool { return policyOrder(s, "allow-ssh") == 1 })

	px.Cut()
	// Changes while the gateway is cut off, then compaction of that history.
	put(t, cli, key, gnpJSON("allow-ssh", 2, 22))
	put(t, cli, pfx+"globalnetworksets/partners", gnsJSON)
	rev := put(t, cli, key, gnpJSON("allow-ssh", 3, 22))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if policyOrder(w.LastGood(), "allow-ssh") != 1 {
		t.Fatal("the last good policy changed while cut off")
	}
	px.Restore()
	s := next(t, ch, 30*time.Second, "the changes made while cut off", func(s *Snapshot) bool { return policyOrder(s, "allow-ssh") == 3 })
	if len(s.Loaded.Policy.NetworkSets) != 1 {
		t.Error("the network set created while cut off is missing")
	}
	if w.Stats().Relists == 0 {
		t.Error("no re-list after the watch revision was compacted")
	}
}

func TestCacheUsedWhenEtcdDownAtStart(t *testing.T) {
	srv := etcdtest.Start(t, nil)
	cli := srv.Client(t)
	etcdtest.InitCalico(t, cli)
	put(t, cli, pfx+"globalnetworkpolicies/allow-ssh", gnpJSON("allow-ssh", 7, 22))
	put(t, cli, pfx+"hostendpoints/gw1-eth0", hepJSON("gw1-eth0", "gw1", "eth0", "198.18.0.1"))
	main := fleetMain(t, "gw1")
	cache := t.TempDir() + "/sub/cache.json"

	ctx, cancel := context.WithCancel(context.Background())
	w1, err := New(Options{Datastore: config.Datastore{Endpoints: []string{srv.Endpoint}, CacheFile: cache}, MainPath: main, ListTimeout: time.Second, Logger: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	live := next(t, w1.Watch(ctx), 10*time.Second, "a live snapshot", good)
	cancel()
	w1.Close()
	fi, err := os.Stat(cache)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cache mode %v, want 0600", fi.Mode().Perm())
	}

	srv.Stop()
	w2, ch := newWatcher(t, srv.Endpoint, main, cache)
	s := next(t, ch, 15*time.Second, "the cached snapshot", func(*Snapshot) bool { return true })
	if !good(s) || !s.FromCache || s.HashHex() != live.HashHex() || policyOrder(s, "allow-ssh") != 7 || s.Saved.IsZero() {
		t.Fatalf("restart with etcd down: fromCache=%v err=%v same hash=%v", s.FromCache, s.Err, s.HashHex() == live.HashHex())
	}
	if !w2.Stats().FromCache {
		t.Error("stats do not say the policy comes from the cache")
	}

	// A corrupt cache is refused (reported), not enforced.
	data, _ := os.ReadFile(cache)
	os.WriteFile(cache, []byte(strings.Replace(string(data), `\"order\":7`, `\"order\":8`, 1)), 0o600)
	_, ch3 := newWatcher(t, srv.Endpoint, main, cache)
	s = next(t, ch3, 15*time.Second, "a report", func(*Snapshot) bool { return true })
	if s.Err == nil || !strings.Contains(s.Err.Error(), "checksum mismatch") || s.Loaded != nil {
		t.Errorf("corrupt cache: err %v", s.Err)
	}

	// etcd back: the live set replaces the cached one and says so.
	srv.Restart(t)
	put(t, cli, pfx+"globalnetworkpolicies/allow-ssh", gnpJSON("allow-ssh", 9, 22))
	s = next(t, ch, 30*time.Second, "live again", func(s *Snapshot) bool { return policyOrder(s, "allow-ssh") == 9 })
	if s.FromCache {
		t.Error("live snapshot marked fromCache")
	}
}
