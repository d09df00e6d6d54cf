//go:build linux

package netbench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfgate/nfgate/test/netlab"
)

// Addresses (198.18.0.0/15 only). The client also owns ClientSpoofBase+0..7
// as extra source addresses, so the UDP generator can make more distinct
// flows than one address has ports.
const (
	ClientIP   = "198.18.1.2"
	GWClientIP = "198.18.1.1"
	GWServerIP = "198.18.2.1"
	ServerIP   = "198.18.2.2"
	clientNet  = "198.18.1.0/24"
	nSources   = 8
	firstExtra = 16 // 198.18.1.16 .. .23
)

// Namespace names inside the lab.
const (
	nsClient = "client"
	nsGW     = "gw"
	nsServer = "server"
)

// Lab is the client — gateway — server topology.
type Lab struct {
	*netlab.Lab
	t TB
	// A process parked in each namespace: its /proc/<pid>/net shows the
	// namespace's counters without forking anything.
	parkedGW, parkedServer int
}

// TB is what the harness needs from a test: testing.TB, or Main's shim.
type TB = testing.TB

// NewLab builds the topology. Everything is removed by t's cleanup.
func NewLab(t TB) *Lab {
	l := &Lab{Lab: netlab.New(t), t: t}
	for _, n := range []string{nsClient, nsGW, nsServer} {
		l.AddNS(n)
	}
	l.Router(nsGW)
	l.Link(nsClient, "eth0", []string{ClientIP + "/24"}, nsGW, "cli0", []string{GWClientIP + "/24"})
	l.Link(nsGW, "srv0", []string{GWServerIP + "/24"}, nsServer, "eth0", []string{ServerIP + "/24"})
	for i := 0; i < nSources; i++ {
		l.MustNS(nsClient, "ip", "addr", "add", fmt.Sprintf("198.18.1.%d/32", firstExtra+i), "dev", "eth0")
	}
	l.Route(nsClient, "default", "via", GWClientIP)
	l.Route(nsServer, "default", "via", GWServerIP)
	// Room for many short-lived client sockets.
	l.MustNS(nsClient, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1")
	l.MustNS(nsServer, "sysctl", "-qw", "net.core.somaxconn=4096", "net.ipv4.tcp_max_syn_backlog=8192")
	// The server drops the UDP generator's packets before any socket
	// lookup (no ICMP port unreachable goes back), counting them.
	for _, p := range []int{PortUDPEarly, PortUDPDeep} {
		l.MustNS(nsServer, "iptables", "-t", "raw", "-A", "PREROUTING", "-p", "udp", "--dport", strconv.Itoa(p), "-j", "DROP")
	}
	l.parkedGW = l.park(nsGW)
	l.parkedServer = l.park(nsServer)
	return l
}

func (l *Lab) park(ns string) int {
	cmd := l.Start(ns, nil, "sleep", "86400")
	return cmd.Process.Pid
}

// ServerRx returns the server interface's received packet count.
func (l *Lab) ServerRx() uint64 {
	return netDevRx(l.parkedServer, "eth0")
}

// ServerPortRx returns the packets the server received for UDP port p
// (its raw PREROUTING rule's counter).
func (l *Lab) ServerPortRx(p int) uint64 {
	out, err := l.Exec(nsServer, "iptables", "-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && strings.HasSuffix(line, fmt.Sprintf("udp dpt:%d", p)) {
			v, _ := strconv.ParseUint(f[0], 10, 64)
			return v
		}
	}
	return 0
}

// netDevRx reads one interface's rx_packets from /proc/<pid>/net/dev.
func netDevRx(pid int, ifc string) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != ifc {
			continue
		}
		f := strings.Fields(rest)
		if len(f) > 1 {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// QueueStats sums the gateway's NFQUEUE counters (queue_dropped, user_dropped).
func (l *Lab) QueueStats() (queueDropped, userDropped uint64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/netfilter/nfnetlink_queue", l.parkedGW))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 7 {
			q, _ := strconv.ParseUint(f[5], 10, 64)
			u, _ := strconv.ParseUint(f[6], 10, 64)
			queueDropped += q
			userDropped += u
		}
	}
	return
}

// QueuedNow returns how many packets wait in the gateway's NFQUEUEs.
func (l *Lab) QueuedNow() uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/netfilter/nfnetlink_queue", l.parkedGW))
	if err != nil {
		return 0
	}
	var n uint64
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			v, _ := strconv.ParseUint(f[2], 10, 64)
			n += v
		}
	}
	return n
}

// Settle waits (up to 5 s) until the gateway's queues are empty, so one
// measurement's backlog never delays the next one's packets.
func (l *Lab) Settle() {
	end := time.Now().Add(5 * time.Second)
	for l.QueuedNow() > 0 && time.Now().Before(end) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
}

// ResetGW removes every rule from the gateway (everything here is
// iptables-nft, so one nft flush; touching iptables-legacy would register
// its tables' hooks in the namespace and slow every contender) and
// flushes its conntrack table.
func (l *Lab) ResetGW() {
	l.t.Helper()
	if out, err := l.Exec(nsGW, "nft", "flush", "ruleset"); err != nil {
		l.t.Fatalf("nft flush ruleset: %v: %s", err, out)
	}
	l.FlushConntrack()
}

// FlushConntrack empties the gateway's conntrack table.
func (l *Lab) FlushConntrack() {
	l.Exec(nsGW, "conntrack", "-F")
}

// IptablesRestore loads rules into the gateway (iptables-restore, flushing
// the tables named in the input).
func (l *Lab) IptablesRestore(rules string) error {
	f, err := os.CreateTemp("", "netbench-ipt")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	f.WriteString(rules)
	f.Close()
	out, err := l.Exec(nsGW, "iptables-restore", f.Name())
	if err != nil {
		return fmt.Errorf("iptables-restore: %v: %s", err, out)
	}
	return nil
}

// shim is a testing.TB for running the harness outside `go test`: Fatal
// panics (Main recovers), Cleanup functions run in reverse at Close.
type shim struct {
	testing.TB // never called: every method netlab uses is overridden
	mu         sync.Mutex
	cleanups   []func()
	closed     bool
	verbose    bool
}

type fatal struct{ msg string }

func (s *shim) Helper()                   {}
func (s *shim) Name() string              { return "netbench" }
func (s *shim) Failed() bool              { return false }
func (s *shim) Fatalf(f string, a ...any) { panic(fatal{fmt.Sprintf(f, a...)}) }
func (s *shim) Fatal(a ...any)            { panic(fatal{fmt.Sprint(a...)}) }
func (s *shim) Skip(a ...any)             { panic(fatal{fmt.Sprint(a...)}) }
func (s *shim) Skipf(f string, a ...any)  { panic(fatal{fmt.Sprintf(f, a...)}) }
func (s *shim) Errorf(f string, a ...any) { fmt.Fprintf(os.Stderr, "netbench: "+f+"\n", a...) }
func (s *shim) Error(a ...any)            { fmt.Fprintln(os.Stderr, append([]any{"netbench:"}, a...)...) }
func (s *shim) Log(a ...any) {
	if s.verbose {
		fmt.Fprintln(os.Stderr, a...)
	}
}
func (s *shim) Logf(f string, a ...any) {
	if s.verbose {
		fmt.Fprintf(os.Stderr, f+"\n", a...)
	}
}
func (s *shim) TempDir() string {
	d, err := os.MkdirTemp("", "netbench")
	if err != nil {
		panic(fatal{err.Error()})
	}
	s.Cleanup(func() { os.RemoveAll(d) })
	return d
}
func (s *shim) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		f()
		return
	}
	s.cleanups = append(s.cleanups, f)
}

// Close runs the cleanups once, newest first.
func (s *shim) Close() {
	s.mu.Lock()
	cs := s.cleanups
	s.cleanups, s.closed = nil, true
	s.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// timeout bounds anything that waits.
const timeout = 20 * time.Second

// UDPEcho serves a UDP echo on port in the server namespace.
func (l *Lab) UDPEcho(port int) {
	netlab.UDPEcho(l.ListenPacket(nsServer, "udp", fmt.Sprintf(":%d", port)))
}

// EchoServer serves netlab's TCP echo (greeting, then echo) on port in the
// server namespace.
func (l *Lab) EchoServer(port int) {
	netlab.EchoServer(l.Listen(nsServer, "tcp", fmt.Sprintf(":%d", port)))
}
