//go:build linux

package ipt

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/test/netlab"
)

func TestOursAndDescribeDrift(t *testing.T) {
	st := parseSave([]byte(saved))
	want := "*filter\n:NFGATE-FORWARD\n:NFGATE-FWD\n-A FORWARD -j NFGATE-FORWARD\n-A NFGATE-FORWARD -i maint0 -g NFGATE-FWD\n-A NFGATE-FWD -j NFQUEUE --queue-num 104\n"
	if st.ours != want {
		t.Errorf("ours:\n%s\nwant:\n%s", st.ours, want)
	}
	flushed := parseSave([]byte(strings.Replace(saved, "-A FORWARD -j NFGATE-FORWARD\n", "", 1)))
	if d := describeDrift(st.ours, flushed.ours); d != "missing [-A FORWARD -j NFGATE-FORWARD]" {
		t.Errorf("drift %q", d)
	}
	other := parseSave([]byte(strings.Replace(saved, "--queue-num 104", "--queue-num 204 --queue-bypass", 1)))
	if d := describeDrift(st.ours, other.ours); !strings.Contains(d, "missing [-A NFGATE-FWD -j NFQUEUE --queue-num 104]") ||
		!strings.Contains(d, "unexpected [-A NFGATE-FWD -j NFQUEUE --queue-num 204 --queue-bypass]") {
		t.Errorf("drift %q", d)
	}
}

// In a namespace: after Apply the kernel matches; `iptables -F FORWARD`
// (the case) is notified by nf_tables at once and reported as the
// missing jump; another writer's queue number is reported too; Apply puts
// it right.
func TestDriftInKernel(t *testing.T) {
	netlab.RequireRoot(t)
	lab := netlab.New(t)
	lab.AddNS("ns")
	var in *Installer
	var changes <-chan struct{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, _ := engine.NewMarks(0x00ff0000)
	plan := &engine.HookPlan{Marks: m, QueueBase: 100, Queues: 1, InvalidDrop: true, Filter: engine.Dispatch{Names: []string{"eth0"}}}
	do := func(fn func() error) {
		t.Helper()
		if err := lab.Do("ns", fn); err != nil {
			t.Fatal(err)
		}
	}
	do(func() (err error) {
		if in, err = Detect("nft"); err != nil {
			return err
		}
		changes = in.Changes(ctx)
		return in.Apply(plan)
	})
	if changes == nil {
		t.Fatal("no change notifications from nf_tables")
	}
	drift := func() string {
		var d string
		do(func() (err error) { d, err = in.Drift(); return })
		return d
	}
	waitChange := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(2 * time.Second):
			t.Errorf("%s: no change notification", what)
		}
	}
	// Drain the notifications of our own Apply.
	time.Sleep(100 * time.Millisecond)
	for len(changes) > 0 {
		<-changes
	}
	if d := drift(); d != "" {
		t.Fatalf("drift right after Apply: %s", d)
	}
	lab.MustNS("ns", "iptables", "-F", "FORWARD")
	waitChange("iptables -F FORWARD")
	if d := drift(); !strings.Contains(d, "IPv4: missing [-A FORWARD -j NFGATE-FORWARD]") {
		t.Errorf("drift after iptables -F FORWARD: %q", d)
	}
	do(func() error { return in.Apply(plan) })
	if d := drift(); d != "" {
		t.Errorf("drift after Apply: %s", d)
	}
	lab.MustNS("ns", "ip6tables", "-R", "NFGATE-FWD", "8", "-j", "NFQUEUE", "--queue-num", "204", "--queue-bypass")
	waitChange("ip6tables -R")
	if d := drift(); !strings.Contains(d, "IPv6: missing") || !strings.Contains(d, "--queue-num 204 --queue-bypass") {
		t.Errorf("drift after another writer's rule: %q", d)
	}
	t.Logf("checked: %s", drift())
}
