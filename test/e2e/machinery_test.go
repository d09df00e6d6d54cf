//go:build linux

package e2e

import (
	"context"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/engine/ipt"
	"github.com/nfgate/nfgate/engine/nfq"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/test/netlab"
)

// nsHooks runs the iptables installer inside the lab's gateway namespace.
type nsHooks struct {
	lab *netlab.Lab
	in  *ipt.Installer
}

func (h *nsHooks) Apply(p *engine.HookPlan) error {
	return h.lab.Do(netlab.GW, func() error { return h.in.Apply(p) })
}
func (h *nsHooks) Remove() error { return h.lab.Do(netlab.GW, func() error { return h.in.Remove() }) }

// TestKernelMachinery runs the engine in-process against the real kernel
// with a hand-written policy (the tutorial's maintenance-network rule), to
// pin the hook/mark/NF_REPEAT machinery independently of the policy
// compiler: SSH forwarded to maint0 is accepted once per flow, everything
// else to maint0 is dropped, lan0<->lan1 (no endpoint) is never queued.
func TestKernelMachinery(t *testing.T) {
	lab := netlab.NewGateway(t)
	maintIdx := lab.IfIndex(netlab.GW, "maint0")
	var ifaces []engine.Iface
	for _, n := range []string{"app0", "maint0", "lan0", "lan1", "lo"} {
		ifaces = append(ifaces, engine.Iface{Index: lab.IfIndex(netlab.GW, n), Name: n})
	}
	pol := &enginetest.Policy{
		BindFn: func(ifc policy.Interface) policy.Binding {
			b := policy.NoBinding()
			if ifc.Name == "maint0" {
				b.Filter, b.ForwardIn = 0, 0
			}
			return b
		},
		ForwardFn: func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
			if out != 0 {
				return enginetest.NoDecision
			}
			if pkt.Proto == classify.ProtoTCP && pkt.DstPort == 22 {
				return enginetest.Decide(policy.Accept, 0, 0)
			}
			return enginetest.Decide(policy.Drop, 0, policy.NoIndex)
		},
		LocalFn: func(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision {
			return enginetest.Decide(policy.Accept, 0, 0)
		},
	}
	var in *ipt.Installer
	if err := lab.Do(netlab.GW, func() (err error) { in, err = ipt.Detect("auto"); return }); err != nil {
		t.Fatal(err)
	}
	rt := config.DefaultRuntime()
	rt.Queues = 2
	rt.QueueBase = 200
	e, err := engine.New(engine.Options{Runtime: rt, Hooks: &nsHooks{lab, in}, Links: enginetest.NewLinks(ifaces...),
		Log: slog.New(slog.DiscardHandler), Deny: enginetest.NewDenyCache(),
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &policy.Config{HostEndpoints: []policy.HostEndpoint{{Name: "gw.maint0", InterfaceName: "maint0"}},
		Settings: policy.Settings{FailsafeInbound: policy.DefaultFailsafeInbound(), FailsafeOutbound: policy.DefaultFailsafeOutbound()}}
	if _, err := e.Swap(&engine.Loaded{Policy: pol, Config: cfg, Hash: "test"}); err != nil {
		t.Fatal(err)
	}
	nsf := lab.NetNSFd(netlab.GW)
	var qs []engine.Queue
	for _, n := range e.QueueNums() {
		q, _ := nfq.Open(n, nfq.Options{NetNS: int(nsf.Fd())})
		qs = append(qs, q)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go e.Run(ctx, qs)
	time.Sleep(200 * time.Millisecond) // queues bound

	for _, p := range []string{"22", "80"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	netlab.EchoServer(lab.Listen(netlab.LanB, "tcp", ":80"))

	check := func(what string, got, want bool) {
		t.Helper()
		t.Logf("checked: %s: %v", what, got)
		if got != want {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		c, err := lab.Dial(netlab.Client, "tcp", net.JoinHostPort(netlab.MaintIP, "22"), 2*time.Second)
		if err != nil {
			t.Fatalf("ssh to maintenance: %v", err)
		}
		conns = append(conns, c)
		check("SSH flow forwarded to maintenance: greeting + 5 round trips", readGreeting(c) &&
			netlab.Roundtrip(c, "a", time.Second) && netlab.Roundtrip(c, "b", time.Second) && netlab.Roundtrip(c, "c", time.Second) &&
			netlab.Roundtrip(c, "d", time.Second) && netlab.Roundtrip(c, "e", time.Second), true)
	}
	check("TCP/80 forwarded to maintenance", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", time.Second), false)
	check("lan0 -> lan1 (no endpoints) TCP/80", lab.TCPWorks(netlab.LanA, netlab.LanBIP+":80", 2*time.Second), true)
	s := e.Snapshot()
	t.Logf("queued per stage: %v, deny-cache hits %d", s.Queued, s.DenyHits)
	if s.Accepted["forward"] != 3 {
		t.Errorf("forward stage accepted %d flows, want 3 (one verdict per flow)", s.Accepted["forward"])
	}
	if s.Queued["forward"] > 3+8 { // 3 SSH flows + the denied SYN and its retransmissions
		t.Errorf("forward stage queued %d packets: established packets are reaching userspace", s.Queued["forward"])
	}
	for _, c := range conns {
		c.Close()
	}
	out, _ := exec.Command("ip", "netns", "exec", lab.NS(netlab.GW), "iptables-save", "-c", "-t", "filter").CombinedOutput()
	if !strings.Contains(string(out), "NFQUEUE") {
		t.Errorf("no NFQUEUE rule installed:\n%s", out)
	}
	_ = maintIdx
	cancel()
}
