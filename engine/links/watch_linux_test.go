//go:build linux

package links

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// testNetNS creates a named network namespace for one test and deletes it
// when the test ends, pass or fail. It skips, saying why, without root or
// iproute2.
func testNetNS(t *testing.T) (name string, fd int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs the ip command (iproute2), and CI=true: .ci/deps.sh installs it")
		}
		t.Skip("needs the ip command (iproute2)")
	}
	name = fmt.Sprintf("nfgate-links-%d-%d", os.Getpid(), rand.Uint32())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return name, int(f.Fd())
}

// ipIn runs an ip command inside the namespace.
func ipIn(t *testing.T, ns string, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
}

// waitFor waits, at most 5 seconds, until cond holds on the table, checking
// after each change notification.
func waitFor(t *testing.T, tb *Table, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for !cond() {
		select {
		case <-tb.Changed():
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; table: %s", what, describe(tb))
		}
	}
}

func TestWatchNetNS(t *testing.T) {
	ns, fd := testNetNS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tb, err := WatchNetNS(ctx, fd)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()

	// The initial dump: a fresh namespace has only its loopback.
	if n, ok := tb.Name(1); !ok || n != "lo" {
		t.Fatalf("Name(1) = %q, %v; want lo from the initial dump (table: %s)", n, ok, describe(tb))
	}

	ipIn(t, ns, "link", "add", "nfg0", "type", "veth", "peer", "name", "nfg1")
	var idx uint32
	waitFor(t, tb, "veth nfg0 to appear", func() bool {
		var ok bool
		idx, ok = tb.Index("nfg0")
		return ok
	})
	if n, ok := tb.Name(idx); !ok || n != "nfg0" {
		t.Errorf("Name(%d) = %q, %v; want nfg0", idx, n, ok)
	}
	if _, ok := tb.Index("nfg1"); !ok {
		t.Errorf("veth peer nfg1 missing: %s", describe(tb))
	}

	ipIn(t, ns, "addr", "add", "198.18.5.1/24", "dev", "nfg0")
	ipIn(t, ns, "addr", "add", "2001:db8:5::1/64", "dev", "nfg0", "nodad")
	want := []netip.Addr{netip.MustParseAddr("198.18.5.1"), netip.MustParseAddr("2001:db8:5::1")}
	waitFor(t, tb, "addresses on nfg0", func() bool {
		a, _ := tb.Addrs("nfg0")
		return slices.Equal(a, want)
	})

	ipIn(t, ns, "link", "set", "nfg0", "name", "nfg0r")
	waitFor(t, tb, "rename of nfg0 to nfg0r", func() bool {
		n, _ := tb.Name(idx)
		return n == "nfg0r"
	})
	if _, ok := tb.Index("nfg0"); ok {
		t.Error("old name nfg0 still resolves after the rename")
	}
	if a, _ := tb.Addrs("nfg0r"); !slices.Equal(a, want) {
		t.Errorf("addresses after rename = %v, want %v", a, want)
	}

	ipIn(t, ns, "addr", "del", "198.18.5.1/24", "dev", "nfg0r")
	waitFor(t, tb, "address removal", func() bool {
		a, _ := tb.Addrs("nfg0r")
		return slices.Equal(a, want[1:])
	})

	ipIn(t, ns, "link", "del", "nfg0r")
	waitFor(t, tb, "veth pair to be gone", func() bool {
		_, ok0 := tb.Name(idx)
		_, ok1 := tb.Index("nfg1")
		return !ok0 && !ok1
	})
	if got := describe(tb); !strings.HasPrefix(got, "1:lo[") || strings.Contains(got, "nfg") {
		t.Errorf("table after delete = %s, want only lo", got)
	}
}

// TestWatchStopsOnContext: cancelling the context stops the watcher, and the
// table keeps its last state.
func TestWatchStopsOnContext(t *testing.T) {
	_, fd := testNetNS(t)
	ctx, cancel := context.WithCancel(context.Background())
	tb, err := WatchNetNS(ctx, fd)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-tb.done:
	case <-time.After(5 * time.Second):
		t.Fatal("watcher still running 5s after its context was cancelled")
	}
	tb.Close()
	if n, ok := tb.Name(1); !ok || n != "lo" {
		t.Errorf("after stop, Name(1) = %q, %v", n, ok)
	}
}
