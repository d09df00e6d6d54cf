//go:build linux

package ctnl

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/test/netlab"
)

func TestTupleRoundTrip(t *testing.T) {
	for _, c := range []struct{ src, dst string }{{"198.18.0.1", "198.18.1.2"}, {"2001:db8::1", "2001:db8:1::2"}} {
		src, dst := netip.MustParseAddr(c.src), netip.MustParseAddr(c.dst)
		got := decodeTuple(encodeTuple(17, src, dst, 4000, 53))
		if got != (tuple{17, src, dst, 4000, 53}) {
			t.Errorf("%s -> %s: decoded %+v", c.src, c.dst, got)
		}
	}
}

// The request's nfgenmsg carries the flow's family: AF_INET6 for an IPv6
// flow (a library that guessed it from the tuples sent AF_INET, and the
// kernel refused every IPv6 update with EINVAL).
func TestRequestFamily(t *testing.T) {
	m := newMsg(ctNew, unix.NLM_F_REQUEST|unix.NLM_F_ACK, unix.AF_INET6)
	b := m.bytes(7)
	if b[16] != unix.AF_INET6 || binary.NativeEndian.Uint16(b[4:]) != nfnlSubsysCTNetlink<<8|ctNew || binary.NativeEndian.Uint32(b[8:]) != 7 {
		t.Errorf("header % x", b[:20])
	}
}

var markRE = regexp.MustCompile(`mark=(\d+)`)

// ctMarks lists "proto src dport -> mark" for every entry of one family.
func ctMarks(t *testing.T, lab *netlab.Lab, fam string) map[string]uint32 {
	t.Helper()
	out, err := lab.Exec("ns", "conntrack", "-L", "-f", fam)
	if err != nil && !strings.Contains(out, "flow entries") {
		t.Fatalf("conntrack -L: %v: %s", err, out)
	}
	res := map[string]uint32{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || strings.HasPrefix(l, "conntrack") {
			continue
		}
		var src, dport string
		for _, x := range f {
			if v, ok := strings.CutPrefix(x, "src="); ok && src == "" {
				src = v
			}
			if v, ok := strings.CutPrefix(x, "dport="); ok && dport == "" {
				dport = v
			}
		}
		m := markRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		var mark uint32
		fmt.Sscan(m[1], &mark)
		res[f[0]+" "+src+" "+dport] = mark
	}
	return res
}

// Remark rewrites only nfgate's bits, for IPv4 and IPv6 flows alike, and
// leaves flows without them alone; Delete removes an IPv6 flow by its
// original and by its reply tuple. Real kernel, in a namespace.
func TestRemarkAndDeleteInKernel(t *testing.T) {
	netlab.RequireRoot(t, "conntrack")
	lab := netlab.New(t)
	lab.AddNS("ns")
	const (
		nfgBits = 0x001f0000 // nfgate's persisted bits (owned)
		recheck = 0x00100000
		other   = 0x80000001 // somebody else's bits
	)
	add := func(_, proto, src, dst string, sport, dport int, mark uint32) {
		args := []string{"-I", "-p", proto, "-s", src, "-d", dst, "--sport", fmt.Sprint(sport), "--dport", fmt.Sprint(dport),
			"-t", "300", "--mark", fmt.Sprint(mark)} // (conntrack 1.4.7's -u overwrites the mark)
		if proto == "tcp" {
			args = append(args, "--state", "ESTABLISHED")
		}
		lab.MustNS("ns", "conntrack", args...)
	}
	add("ipv4", "tcp", "198.18.0.1", "198.18.1.1", 40001, 22, other|0x00040000)
	add("ipv4", "udp", "198.18.0.1", "198.18.1.1", 40002, 53, 0x00050000)
	add("ipv6", "tcp", "2001:db8::1", "2001:db8:1::1", 40003, 22, other|0x00040000)
	add("ipv6", "udp", "2001:db8::1", "2001:db8:1::1", 40004, 53, 0x00010000)
	add("ipv6", "udp", "2001:db8::1", "2001:db8:1::1", 40005, 80, other) // not nfgate's
	var n int
	var st Stats
	err := lab.Do("ns", func() error {
		c, err := Dial()
		if err != nil {
			return err
		}
		defer c.Close()
		st, err = c.RemarkStats(nfgBits, nfgBits, recheck)
		n = st.Changed
		return err
	})
	if err != nil {
		t.Fatalf("Remark: %v (%+v)", err, st)
	}
	if n != 4 {
		t.Errorf("Remark changed %d flows, want 4 (%+v)", n, st)
	}
	want := map[string]uint32{
		"tcp 198.18.0.1 22": other | recheck, "udp 198.18.0.1 53": recheck,
		"tcp 2001:db8::1 22": other | recheck, "udp 2001:db8::1 53": recheck, "udp 2001:db8::1 80": other,
	}
	got := ctMarks(t, lab, "ipv4")
	for k, v := range ctMarks(t, lab, "ipv6") {
		got[k] = v
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: mark %#x, want %#x", k, got[k], w)
		}
	}
	t.Logf("checked: marks after Remark %v", got)
	// Delete: the IPv6 TCP flow by its original tuple, the IPv6 UDP one
	// by its reply tuple (as a packet after DNAT shows it: same here).
	err = lab.Do("ns", func() error {
		c, err := Dial()
		if err != nil {
			return err
		}
		defer c.Close()
		a, b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::1")
		if err := c.Delete(Tuple{Proto: 6, Src: a, Dst: b, SrcPort: 40003, DstPort: 22}); err != nil {
			return err
		}
		return c.Delete(Tuple{Proto: 17, Src: a, Dst: b, SrcPort: 40004, DstPort: 53})
	})
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	got = ctMarks(t, lab, "ipv6")
	if _, ok := got["tcp 2001:db8::1 22"]; ok || len(got) != 1 {
		t.Errorf("after Delete the IPv6 table holds %v, want only the udp/80 flow", got)
	}
}
