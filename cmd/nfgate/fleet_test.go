package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/policy/datastore"
)

const fleetLocal = `[gateway]
nodeName = "gw1"

[datastore]
endpoints = ["http://127.0.0.1:1"]
`

const fleetPolicyKey = "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/default.allow-ssh"

func fleetPolicyJSON(action string) string {
	return `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"allow-ssh"},"spec":{"selector":"all()","ingress":[{"action":"` +
		action + `","protocol":"TCP","destination":{"ports":[22]}}]}}`
}

// snapshotOf builds what the watcher would deliver for the local file at
// main and one policy in etcd.
func snapshotOf(t *testing.T, main, action string) *datastore.Snapshot {
	t.Helper()
	ld, err := config.LoadWith(main, []config.Document{{Name: fleetPolicyKey, Data: []byte(fleetPolicyJSON(action))}})
	s := &datastore.Snapshot{Revision: 7, Loaded: ld, Err: err,
		Resources: []datastore.Resource{{Key: fleetPolicyKey, Kind: "GlobalNetworkPolicy", Name: "allow-ssh"}}}
	if err != nil {
		ld.Policy = nil
	}
	return s
}

func writeLocal(t *testing.T, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nfgate.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// A snapshot becomes the engine's policy the way a local file does; its
// problems name the etcd key, and the files the trace lists are the local
// ones plus the datastore revision.
func TestFleetSnapshotToEngine(t *testing.T) {
	main := writeLocal(t, fleetLocal, 0o600)
	f := &fleet{ds: config.Datastore{Prefix: "/calico"}, log: slog.New(slog.DiscardHandler), node: "gw1"}

	l, _, errs, files := f.load(snapshotOf(t, main, "Allow"))
	if l == nil || len(errs) > 0 {
		t.Fatalf("good snapshot rejected: %v", errs)
	}
	want := []string{main, "etcd /calico revision 7 (1 resources)"}
	if !slices.Equal(files, want) {
		t.Errorf("files = %q, want %q", files, want)
	}
	if len(l.Config.Policies) != 1 || l.Config.Policies[0].Name != "allow-ssh" {
		t.Errorf("policy from etcd not in the compiled configuration: %+v", l.Config.Policies)
	}

	l, _, errs, _ = f.load(snapshotOf(t, main, "Allw"))
	if l != nil || len(errs) != 1 || !strings.HasPrefix(errs[0], fleetPolicyKey+": ") {
		t.Errorf("bad resource: loaded=%v errs=%q, want one error naming %s", l != nil, errs, fleetPolicyKey)
	}

	writable := writeLocal(t, fleetLocal, 0o666)
	l, _, errs, _ = f.load(snapshotOf(t, writable, "Allow"))
	if l != nil || len(errs) != 1 || !strings.Contains(errs[0], "writable by group and others") {
		t.Errorf("world-writable local file: loaded=%v errs=%q, want it refused", l != nil, errs)
	}

	_, _, errs, _ = f.load(&datastore.Snapshot{Err: os.ErrDeadlineExceeded})
	if len(errs) != 1 {
		t.Errorf("unreachable, no cache: errs=%q, want one", errs)
	}
}

// Without etcd and without a cache the daemon refuses to start, before it
// touches the kernel (so this runs without root).
func TestRunRefusesWithoutDatastorePolicy(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "nfgate.toml")
	text := fleetLocal + "cacheFile = \"" + filepath.Join(dir, "cache.json") + "\"\n"
	if err := os.WriteFile(main, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	r, w, _ := os.Pipe()
	os.Stderr = w
	start := time.Now()
	code := runMain([]string{"--config", main, "--datastore-wait", "300ms"})
	os.Stderr = stderr
	w.Close()
	out, _ := io.ReadAll(r)
	if code != 1 || !strings.Contains(string(out), "refusing to start") {
		t.Errorf("exit %d, output:\n%s\nwant exit 1 and a refusal", code, out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusal took %v; --datastore-wait 300ms", d)
	}
}
