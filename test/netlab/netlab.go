//go:build linux

// Package netlab builds throw-away network namespace labs for end-to-end
// tests: namespaces joined by veth pairs, addresses from 198.18.0.0/15 and
// 2001:db8::/32, forwarding on in routers. Every name carries a random
// per-lab tag so parallel tests never collide, and everything is torn down
// by t.Cleanup, even when the test fails.
//
// Sockets can be opened inside a namespace from the test process itself
// (Listen, Dial): a socket stays in the namespace it was created in.
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Lab is one set of namespaces.
type Lab struct {
	t     testing.TB
	Tag   string
	mu    sync.Mutex
	nss   []string
	procs []*exec.Cmd
}

// RequireRoot skips t unless the test runs as root with the tools the lab
// needs (ip, iptables, ip6tables) and the extra ones named. Under CI=true a
// missing tool fails the test instead: CI installs every tool (.ci/deps.sh),
// so a skip there would hide a test that silently stopped running.
func RequireRoot(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netlab: needs root (network namespaces, iptables); skipping")
	}
	RequireTools(t, append([]string{"ip", "iptables", "ip6tables"}, tools...)...)
}

// RequireTools skips t (fails it under CI=true) unless every tool is on
// PATH.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if InCI() {
				t.Fatalf("netlab: %s not installed, and CI=true: every tool must be there (.ci/deps.sh installs it)", tool)
				return
			}
			t.Skipf("netlab: %s not installed (run `make deps`); skipping", tool)
		}
	}
}

// InCI reports whether the tests run in CI (CI=true), where nothing may be
// skipped for a missing tool.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1" || v == "yes"
}

// New creates an empty lab; its namespaces are deleted when the test ends.
func New(t testing.TB) *Lab {
	t.Helper()
	RequireRoot(t)
	b := make([]byte, 3)
	rand.Read(b)
	l := &Lab{t: t, Tag: hex.EncodeToString(b)}
	t.Cleanup(l.Close)
	return l
}

// NS returns the full namespace name of a lab-local name.
func (l *Lab) NS(name string) string { return "nfg" + l.Tag + "-" + name }

// AddNS creates namespace name with lo up.
func (l *Lab) AddNS(name string) string {
	l.t.Helper()
	ns := l.NS(name)
	l.must("ip", "netns", "add", ns)
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	l.MustNS(name, "ip", "link", "set", "lo", "up")
	l.MustNS(name, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return ns
}

// Router enables IPv4 and IPv6 forwarding in a namespace.
func (l *Lab) Router(name string) {
	l.MustNS(name, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
}

// Link joins a/aIf with b/bIf by a veth pair and gives each side its
// addresses (CIDR notation).
func (l *Lab) Link(a, aIf string, aAddrs []string, b, bIf string, bAddrs []string) {
	l.t.Helper()
	x, y := "v"+l.Tag+randHex(2), "v"+l.Tag+randHex(2)
	l.must("ip", "link", "add", x, "type", "veth", "peer", "name", y)
	l.must("ip", "link", "set", x, "netns", l.NS(a))
	l.must("ip", "link", "set", y, "netns", l.NS(b))
	l.MustNS(a, "ip", "link", "set", x, "name", aIf)
	l.MustNS(b, "ip", "link", "set", y, "name", bIf)
	for _, s := range []struct {
		ns, ifc string
		addrs   []string
	}{{a, aIf, aAddrs}, {b, bIf, bAddrs}} {
		for _, ad := range s.addrs {
			args := []string{"addr", "add", ad, "dev", s.ifc}
			if strings.Contains(ad, ":") {
				args = append(args, "nodad")
			}
			l.MustNS(s.ns, "ip", args...)
		}
		l.MustNS(s.ns, "ip", "link", "set", s.ifc, "up")
	}
}

// Route adds a route (e.g. "default via 198.18.1.1").
func (l *Lab) Route(ns string, args ...string) {
	l.t.Helper()
	cmd := []string{"route", "add"}
	if len(args) > 0 && strings.Contains(strings.Join(args, " "), ":") {
		cmd = []string{"-6", "route", "add"}
	}
	l.MustNS(ns, "ip", append(cmd, args...)...)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (l *Lab) must(name string, args ...string) string {
	l.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("netlab: %s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Exec runs a command in namespace ns and returns its combined output.
func (l *Lab) Exec(ns string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.NS(ns), name}, args...)...).CombinedOutput()
	return string(out), err
}

// MustNS is Exec that fails the test on error.
func (l *Lab) MustNS(ns string, name string, args ...string) string {
	l.t.Helper()
	out, err := l.Exec(ns, name, args...)
	if err != nil {
		l.t.Fatalf("netlab: [%s] %s %s: %v: %s", ns, name, strings.Join(args, " "), err, out)
	}
	return out
}

// Start runs a long-lived command in ns; it is killed at cleanup. Output
// goes to out (may be nil).
func (l *Lab) Start(ns string, out io.Writer, name string, args ...string) *exec.Cmd {
	l.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.NS(ns), name}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("netlab: start %s: %v", name, err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, cmd)
	l.mu.Unlock()
	return cmd
}

// Stop sends sig to a started command's process group and waits (bounded).
func Stop(cmd *exec.Cmd, sig unix.Signal, wait time.Duration) error {
	if cmd.Process == nil {
		return nil
	}
	unix.Kill(-cmd.Process.Pid, sig)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		return <-done
	}
}

// Close kills started processes and deletes the namespaces.
func (l *Lab) Close() {
	l.mu.Lock()
	procs, nss := l.procs, l.nss
	l.procs, l.nss = nil, nil
	l.mu.Unlock()
	for _, p := range procs {
		if p.ProcessState == nil && p.Process != nil {
			unix.Kill(-p.Process.Pid, unix.SIGKILL)
			p.Wait()
		}
	}
	for i := len(nss) - 1; i >= 0; i-- {
		exec.Command("ip", "netns", "del", nss[i]).Run()
	}
}

// Do runs fn on a thread inside namespace ns (sockets fn opens stay there).
func (l *Lab) Do(ns string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + l.NS(ns))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with the goroutine.
		return errors.Join(ferr, fmt.Errorf("setns back: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Listen opens a listener in ns ("tcp"/"tcp6"/"udp"... address host:port).
func (l *Lab) Listen(ns, network, addr string) net.Listener {
	l.t.Helper()
	var ln net.Listener
	err := l.Do(ns, func() (err error) { ln, err = net.Listen(network, addr); return })
	if err != nil {
		l.t.Fatalf("netlab: listen %s %s in %s: %v", network, addr, ns, err)
	}
	l.t.Cleanup(func() { ln.Close() })
	return ln
}

// ListenPacket opens a UDP socket in ns.
func (l *Lab) ListenPacket(ns, network, addr string) net.PacketConn {
	l.t.Helper()
	var pc net.PacketConn
	err := l.Do(ns, func() (err error) { pc, err = net.ListenPacket(network, addr); return })
	if err != nil {
		l.t.Fatalf("netlab: listen %s %s in %s: %v", network, addr, ns, err)
	}
	l.t.Cleanup(func() { pc.Close() })
	return pc
}

// Dial connects from ns with a timeout.
func (l *Lab) Dial(ns, network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := l.Do(ns, func() (err error) {
		d := net.Dialer{Timeout: timeout}
		c, err = d.Dial(network, addr)
		return
	})
	return c, err
}

// EchoServer serves TCP on ln: each connection gets "hello\n", then every
// line it sends is echoed back. It stops when ln is closed.
func EchoServer(ln net.Listener) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("hello\n"))
				buf := make([]byte, 512)
				for {
					c.SetReadDeadline(time.Now().Add(5 * time.Minute))
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// UDPEcho echoes every datagram back to its sender until pc is closed.
func UDPEcho(pc net.PacketConn) {
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// TCPWorks reports whether a TCP connection from ns to addr gets the echo
// server's greeting within timeout.
func (l *Lab) TCPWorks(ns, addr string, timeout time.Duration) bool {
	c, err := l.Dial(ns, "tcp", addr, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	buf := make([]byte, 6)
	_, err = io.ReadFull(c, buf)
	return err == nil && string(buf) == "hello\n"
}

// UDPWorks reports whether a datagram from ns to addr is echoed within timeout.
func (l *Lab) UDPWorks(ns, addr string, timeout time.Duration) bool {
	c, err := l.Dial(ns, "udp", addr, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping")); err != nil {
		return false
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	return err == nil && string(buf[:n]) == "ping"
}

// Ping reports whether one ICMP echo from ns to addr is answered.
func (l *Lab) Ping(ns, addr string) bool {
	_, err := l.Exec(ns, "ping", "-c", "1", "-W", "1", addr)
	return err == nil
}

// Roundtrip sends a line on an established connection and reports whether
// it comes back within timeout.
func Roundtrip(c net.Conn, msg string, timeout time.Duration) bool {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return err == nil && bytes.Equal(buf, []byte(msg))
}

// IfIndex returns the index of interface ifc in ns.
func (l *Lab) IfIndex(ns, ifc string) uint32 {
	l.t.Helper()
	var idx uint32
	err := l.Do(ns, func() error {
		i, err := net.InterfaceByName(ifc)
		if err == nil {
			idx = uint32(i.Index)
		}
		return err
	})
	if err != nil {
		l.t.Fatalf("netlab: %s in %s: %v", ifc, ns, err)
	}
	return idx
}

// NetNSFd opens ns's namespace file (for netlink sockets bound to it).
func (l *Lab) NetNSFd(ns string) *os.File {
	l.t.Helper()
	f, err := os.Open("/run/netns/" + l.NS(ns))
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { f.Close() })
	return f
}

// Gateway lab names and addresses.
const (
	Client = "client" // eth0 198.18.1.2, 2001:db8:1::2 — application network
	GW     = "gw"     // app0 .1.1, maint0 .2.1, lan0 .3.1, lan1 .4.1
	Maint  = "maint"  // eth0 198.18.2.2, 2001:db8:2::2 — maintenance network
	LanA   = "lana"   // eth0 198.18.3.2 — no endpoint (also the management net)
	LanB   = "lanb"   // eth0 198.18.4.2 — no endpoint

	ClientIP  = "198.18.1.2"
	ClientIP6 = "2001:db8:1::2"
	GWApp     = "198.18.1.1"
	GWApp6    = "2001:db8:1::1"
	GWMaint   = "198.18.2.1"
	GWLanA    = "198.18.3.1"
	MaintIP   = "198.18.2.2"
	MaintIP6  = "2001:db8:2::2"
	LanAIP    = "198.18.3.2"
	LanBIP    = "198.18.4.2"
)

// NewGateway builds the standard topology: a gateway namespace routing
// between a client (application network, gw interface app0), a
// maintenance host (maint0) and two networks without endpoints (lan0, lan1).
func NewGateway(t testing.TB) *Lab {
	l := New(t)
	for _, n := range []string{GW, Client, Maint, LanA, LanB} {
		l.AddNS(n)
	}
	l.Router(GW)
	l.Link(Client, "eth0", []string{ClientIP + "/24", ClientIP6 + "/64"}, GW, "app0", []string{GWApp + "/24", GWApp6 + "/64"})
	l.Link(Maint, "eth0", []string{MaintIP + "/24", MaintIP6 + "/64"}, GW, "maint0", []string{GWMaint + "/24", "2001:db8:2::1/64"})
	l.Link(LanA, "eth0", []string{LanAIP + "/24"}, GW, "lan0", []string{GWLanA + "/24"})
	l.Link(LanB, "eth0", []string{LanBIP + "/24"}, GW, "lan1", []string{"198.18.4.1/24"})
	l.Route(Client, "default", "via", GWApp)
	l.Route(Client, "default", "via", GWApp6)
	l.Route(Maint, "default", "via", GWMaint)
	l.Route(Maint, "default", "via", "2001:db8:2::1")
	l.Route(LanA, "default", "via", GWLanA)
	l.Route(LanB, "default", "via", "198.18.4.1")
	return l
}
