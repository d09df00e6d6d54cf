//go:build linux

package kset_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/kset"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/dtree"
	"github.com/nfgate/nfgate/test/netlab"
)

func addr(s string) dtree.U128 {
	a := netip.MustParseAddr(s)
	if a.Is4() {
		b := a.As4()
		return dtree.U128{Lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var v dtree.U128
	for i := range 8 {
		v.Hi = v.Hi<<8 | uint64(b[i])
		v.Lo = v.Lo<<8 | uint64(b[8+i])
	}
	return v
}

func span(lo, hi string) [2]dtree.U128 { return [2]dtree.U128{addr(lo), addr(hi)} }

type rig struct {
	lab  *netlab.Lab
	sets *kset.Sets
	app0 uint32
	mnt0 uint32
	spec engine.RegionSpec
}

func newRig(t *testing.T) *rig {
	lab := netlab.NewGateway(t)
	netlab.RequireTools(t, "nft")
	m, err := engine.NewMarks(0x00ff0000)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{lab: lab, sets: kset.Open(int(lab.NetNSFd(netlab.GW).Fd())), app0: lab.IfIndex(netlab.GW, "app0"),
		mnt0: lab.IfIndex(netlab.GW, "maint0"),
		spec: engine.RegionSpec{Marks: m, Size: 64, FailsafeIn: []policy.ProtoPort{{Protocol: 6, Port: 22}}}}
	if err := r.sets.Reset(&r.spec); err != nil {
		t.Fatal(err)
	}
	return r
}

// udpGets reports whether one datagram from ns to addr arrives at pc.
func udpGets(t *testing.T, lab *netlab.Lab, ns, to string, pc net.PacketConn) bool {
	t.Helper()
	c, err := lab.Dial(ns, "udp", to, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 16)
	_, _, err = pc.ReadFrom(buf)
	return err == nil
}

func TestRegionsInTheKernel(t *testing.T) {
	r := newRig(t)
	lab := r.lab
	pc := lab.ListenPacket(netlab.Maint, "udp", ":9005")
	pc2 := lab.ListenPacket(netlab.Maint, "udp", ":9011")
	pc6 := lab.ListenPacket(netlab.Maint, "udp6", "[::]:9006")
	netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":9005"))
	netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":22"))
	netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":9100"))

	// An established flow inside the region-to-be must survive it.
	est, err := lab.Dial(netlab.Client, "tcp", netlab.MaintIP+":9005", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer est.Close()
	est.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.ReadFull(est, make([]byte, 6)); err != nil {
		t.Fatal("no greeting on the established flow")
	}

	els := []engine.RegionElem{
		{Stage: policy.StageForward, Fam: 4, Kind: engine.RegionPorts, InIf: r.app0, OutIf: r.mnt0,
			Src: span("198.18.1.0", "198.18.1.255"), Dst: span(netlab.MaintIP, netlab.MaintIP),
			Proto: [2]uint8{17, 17}, A: [2]uint16{0, 65535}, B: [2]uint16{9000, 9010}},
		{Stage: policy.StageForward, Fam: 4, Kind: engine.RegionPorts, InIf: r.app0, OutIf: r.mnt0,
			Src: span("198.18.1.0", "198.18.1.255"), Dst: span(netlab.MaintIP, netlab.MaintIP),
			Proto: [2]uint8{6, 6}, A: [2]uint16{0, 65535}, B: [2]uint16{9000, 9010}},
		{Stage: policy.StageForward, Fam: 6, Kind: engine.RegionPorts, InIf: r.app0, OutIf: r.mnt0,
			Src: span("2001:db8:1::", "2001:db8:1::ffff"), Dst: span(netlab.MaintIP6, netlab.MaintIP6),
			Proto: [2]uint8{17, 17}, A: [2]uint16{0, 65535}, B: [2]uint16{9006, 9006}},
		{Stage: policy.StageForward, Fam: 4, Kind: engine.RegionICMP, InIf: r.app0, OutIf: r.mnt0,
			Src: span("198.18.1.2", "198.18.1.2"), Dst: span(netlab.MaintIP, netlab.MaintIP),
			Proto: [2]uint8{1, 1}, A: [2]uint16{8, 8}, B: [2]uint16{0, 255}},
		// An input element over the failsafe port 22 (the installer
		// never makes one): the chain's failsafe rule comes first.
		{Stage: policy.StageInput, Fam: 4, Kind: engine.RegionPorts, InIf: r.app0,
			Src: span("0.0.0.0", "255.255.255.255"), Dst: span(netlab.GWApp, netlab.GWApp),
			Proto: [2]uint8{6, 6}, A: [2]uint16{0, 65535}, B: [2]uint16{1, 9100}},
	}
	if !udpGets(t, lab, netlab.Client, netlab.MaintIP+":9005", pc) || !lab.Ping(netlab.Client, netlab.MaintIP) {
		t.Fatal("the lab does not forward before any element")
	}
	if err := r.sets.Add(els, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want bool) {
		t.Helper()
		t.Logf("checked: %-70s %v", what, got)
		if got != want {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	check("UDP to a port in the forward element is dropped", udpGets(t, lab, netlab.Client, netlab.MaintIP+":9005", pc), false)
	check("UDP to a port outside it passes", udpGets(t, lab, netlab.Client, netlab.MaintIP+":9011", pc2), true)
	check("IPv6 UDP in the IPv6 element is dropped", udpGets(t, lab, netlab.Client, "["+netlab.MaintIP6+"]:9006", pc6), false)
	check("ICMP echo in the ICMP element is dropped", lab.Ping(netlab.Client, netlab.MaintIP), false)
	check("TCP connect in the TCP element fails", lab.TCPWorks(netlab.Client, netlab.MaintIP+":9005", 500*time.Millisecond), false)
	check("an established flow in the TCP element keeps working", netlab.Roundtrip(est, "still here\n", time.Second), true)
	check("failsafe SSH to the gateway passes an element covering port 22", lab.TCPWorks(netlab.Client, netlab.GWApp+":22", time.Second), true)
	check("TCP to the gateway in the input element fails", lab.TCPWorks(netlab.Client, netlab.GWApp+":9100", 500*time.Millisecond), false)
	// A packet carrying one of nfgate's decided bits is nfgate's chain's
	// business, not the region's.
	lab.MustNS(netlab.GW, "nft", "add table inet marker; add chain inet marker c { type filter hook forward priority -10; }; add rule inet marker c udp dport 9005 meta mark set 0x40000")
	check("a packet with nfgate's decided bit set passes the element", udpGets(t, lab, netlab.Client, netlab.MaintIP+":9005", pc), true)
	lab.MustNS(netlab.GW, "nft", "delete table inet marker")

	counts := map[engine.RegionElem]uint64{}
	if err := r.sets.Counters(func(el engine.RegionElem, p, b uint64) { counts[el] = p }); err != nil {
		t.Fatal(err)
	}
	check("the kernel holds every element, decoded back as installed", len(counts) == len(els), true)
	for _, el := range els[:4] {
		if counts[el] == 0 {
			t.Errorf("element %+v: counter 0 (known: %v)", el, counts)
		}
	}
	if out, err := lab.Exec(netlab.GW, "nft", "list", "table", "inet", kset.TableName); err == nil {
		t.Logf("nft list table:\n%s", out)
	}

	// Overlap: nf_tables refuses an element with a corner inside another.
	bad := els[0]
	bad.B = [2]uint16{9005, 9020}
	err = r.sets.Add([]engine.RegionElem{bad}, time.Second)
	check("an element with a corner inside another is refused (the installer splits it)", err != nil, true)

	// Delete, then the port passes again.
	if err := r.sets.Delete(els[:1]); err != nil {
		t.Fatal(err)
	}
	check("after Delete, UDP to the port passes", udpGets(t, lab, netlab.Client, netlab.MaintIP+":9005", pc), true)
	if err := r.sets.Delete(els[:1]); err != nil {
		t.Errorf("deleting an element already gone: %v", err)
	}

	// The kernel's own timeout.
	if err := r.sets.Add(els[:1], time.Second); err != nil {
		t.Fatal(err)
	}
	check("a re-added element drops again", udpGets(t, lab, netlab.Client, netlab.MaintIP+":9005", pc), false)
	time.Sleep(1500 * time.Millisecond)
	check("after its timeout the port passes", udpGets(t, lab, netlab.Client, netlab.MaintIP+":9005", pc), true)

	// Reset empties every set.
	if err := r.sets.Reset(&r.spec); err != nil {
		t.Fatal(err)
	}
	check("after Reset, ICMP passes again", lab.Ping(netlab.Client, netlab.MaintIP), true)
}

func TestRejectAction(t *testing.T) {
	r := newRig(t)
	r.spec.Reject = true
	if err := r.sets.Reset(&r.spec); err != nil {
		t.Fatal(err)
	}
	netlab.EchoServer(r.lab.Listen(netlab.Maint, "tcp", ":9005"))
	el := engine.RegionElem{Stage: policy.StageForward, Fam: 4, Kind: engine.RegionPorts, InIf: r.app0, OutIf: r.mnt0,
		Src: span("0.0.0.0", "255.255.255.255"), Dst: span(netlab.MaintIP, netlab.MaintIP),
		Proto: [2]uint8{6, 6}, A: [2]uint16{0, 65535}, B: [2]uint16{9005, 9005}}
	if err := r.sets.Add([]engine.RegionElem{el}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err := r.lab.Dial(netlab.Client, "tcp", netlab.MaintIP+":9005", 2*time.Second)
	t.Logf("connect under a REJECT element: %v after %v", err, time.Since(t0).Round(time.Millisecond))
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Errorf("connect: %v, want refused (ICMP port unreachable)", err)
	}
}

func TestDriftAndRemove(t *testing.T) {
	r := newRig(t)
	if d, err := r.sets.Drift(); err != nil || d != "" {
		t.Fatalf("fresh table drifts: %q %v", d, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := r.sets.Changes(ctx)
	if ch == nil {
		t.Fatal("no change notifications")
	}
	el := engine.RegionElem{Stage: policy.StageForward, Fam: 4, Kind: engine.RegionPorts, InIf: r.app0, OutIf: r.mnt0,
		Src: span("0.0.0.0", "255.255.255.255"), Dst: span(netlab.MaintIP, netlab.MaintIP),
		Proto: [2]uint8{6, 6}, A: [2]uint16{0, 65535}, B: [2]uint16{9005, 9005}}
	jumps := func() string {
		out, _ := r.lab.Exec(netlab.GW, "nft", "list", "chain", "inet", kset.TableName, "forward")
		return out
	}
	if strings.Contains(jumps(), "jump") {
		t.Errorf("a stage without elements jumps to its regions:\n%s", jumps())
	}
	for _, tamper := range []string{"flush chain inet " + kset.TableName + " forward-regions", "flush chain inet " + kset.TableName + " forward",
		"delete table inet " + kset.TableName, "delete chain inet " + kset.TableName + " prednat"} {
		if err := r.sets.Add([]engine.RegionElem{el}, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(jumps(), "jump forward-regions") {
			t.Errorf("the stage's first element did not turn its jump on:\n%s", jumps())
		}
		// Drain what our own Reset signalled.
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		}
		if out, err := r.lab.Exec(netlab.GW, "nft", tamper); err != nil {
			if !strings.Contains(out, "No such file") {
				t.Fatalf("nft %s: %v: %s", tamper, err, out)
			}
		}
		select {
		case <-ch:
		case <-time.After(2 * time.Second):
			t.Errorf("%s: no change notification", tamper)
		}
		d, err := r.sets.Drift()
		t.Logf("after %q: drift %q", tamper, d)
		if err != nil || d == "" {
			t.Errorf("%s: drift %q, %v", tamper, d, err)
		}
		if err := r.sets.Reset(&r.spec); err != nil {
			t.Fatal(err)
		}
		if d, _ := r.sets.Drift(); d != "" {
			t.Errorf("after Reset: drift %q", d)
		}
	}
	if err := r.sets.Add([]engine.RegionElem{el}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.sets.Delete([]engine.RegionElem{el}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(jumps(), "jump") {
		t.Errorf("the stage's last element did not turn its jump off:\n%s", jumps())
	}
	if d, _ := r.sets.Drift(); d != "" {
		t.Errorf("after the last element went: drift %q", d)
	}
	if err := r.sets.Remove(); err != nil {
		t.Fatal(err)
	}
	if out, err := r.lab.Exec(netlab.GW, "nft", "list", "tables"); err != nil || strings.Contains(out, kset.TableName) {
		t.Errorf("after Remove: %v %s", err, out)
	}
	if err := r.sets.Remove(); err != nil {
		t.Errorf("Remove of a missing table: %v", err)
	}
}
