//go:build linux

package e2e

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/kset"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/test/netlab"
)

// Issue 14: denied floods die in the kernel. nfgate installs the region
// around each denied NEW packet that the policy proves denied into a
// kernel set consulted before its queue (docs/architecture.md, "Deny
// regions in the kernel"); these tests run the daemon against real floods.

// regionView is the stats file's "regions" object.
type regionView struct {
	Installed uint64 `json:"installed"`
	Live      uint64 `json:"live"`
	Packets   uint64 `json:"packets"`
	Repairs   uint64 `json:"repairs"`
	Flushes   uint64 `json:"flushes"`
	Offers    uint64 `json:"offers"`
	Stale     uint64 `json:"stale"`
	Mismatch  uint64 `json:"mismatch"`
	Errors    uint64 `json:"errors"`
}

func (d *daemon) regions() regionView {
	d.t.Helper()
	d.Stats() // a fresh file
	b, _ := os.ReadFile(d.stats)
	var v struct {
		Regions regionView `json:"regions"`
	}
	json.Unmarshal(b, &v)
	return v.Regions
}

// waitRegions polls the stats file until ok holds (at most limit).
func (d *daemon) waitRegions(limit time.Duration, ok func(regionView) bool) regionView {
	end := time.Now().Add(limit)
	for {
		b, _ := os.ReadFile(d.stats)
		var v struct {
			Regions regionView `json:"regions"`
		}
		json.Unmarshal(b, &v)
		if ok(v.Regions) || time.Now().After(end) {
			return v.Regions
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// flooder sends raw UDP packets from the client namespace (IP_HDRINCL, so
// any source address), bounded in count and time.
type flooder struct {
	fd   int
	sent atomic.Int64
}

func newFlooder(t *testing.T, lab *netlab.Lab) *flooder {
	var fd int
	err := lab.Do(netlab.Client, func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		return
	})
	if err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	t.Cleanup(func() { unix.Close(fd) })
	return &flooder{fd: fd}
}

// run sends to dst:dport until stop, for at most d and max packets; src
// gives packet i's source address and port.
func (f *flooder) run(dst string, dport uint16, d time.Duration, max int, stop *atomic.Bool, src func(i int) ([4]byte, uint16)) {
	var pkt [28 + 8]byte
	pkt[0] = 0x45
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[8], pkt[9] = 64, unix.IPPROTO_UDP
	da := [4]byte(net.ParseIP(dst).To4())
	copy(pkt[16:20], da[:])
	binary.BigEndian.PutUint16(pkt[22:], dport)
	binary.BigEndian.PutUint16(pkt[24:], 16)
	to := &unix.SockaddrInet4{Addr: da}
	end := time.Now().Add(d)
	for i := 0; i < max; i++ {
		if i&255 == 0 && (time.Now().After(end) || stop.Load()) {
			return
		}
		sa, sp := src(i)
		copy(pkt[12:16], sa[:])
		binary.BigEndian.PutUint16(pkt[20:], sp)
		if err := unix.Sendto(f.fd, pkt[:], 0, to); err != nil {
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
				time.Sleep(20 * time.Microsecond)
			}
			continue
		}
		f.sent.Add(1)
	}
}

// The two floods of figure 5: one source with a new source port per
// packet, and random spoofed sources in 198.19.0.0/16.
var floods = []struct {
	name string
	src  func(i int) ([4]byte, uint16)
}{
	{"one source, new source port per packet", func(i int) ([4]byte, uint16) {
		return [4]byte{198, 18, 1, 2}, uint16(1024 + i%64000)
	}},
	{"spoofed random sources in 198.19.0.0/16", func(i int) ([4]byte, uint16) {
		h := uint32(i) * 2654435761
		return [4]byte{198, 19, byte(h >> 24), byte(h >> 16)}, uint16(1024 + h%60000)
	}},
}

// connectFirstTry reports whether a TCP connection gets the echo server's
// greeting with a connect timeout below the kernel's 1 s SYN
// retransmission timeout: a SYN lost to the flood fails it.
func connectFirstTry(lab *netlab.Lab, addr string) (bool, time.Duration) {
	t0 := time.Now()
	ok := lab.TCPWorks(netlab.Client, addr, 800*time.Millisecond)
	return ok, time.Since(t0)
}

// During a max-rate denied flood of either kind, failsafe SSH to the
// gateway and an allowed SSH connection through it succeed at the first
// SYN, and the flood dies in the kernel: only the packets before its
// region was installed reach the queue.
func TestRegionFloodsSSHFirstTry(t *testing.T) {
	if testing.Short() {
		t.Skip("flood test skipped in -short mode")
	}
	lab := netlab.NewGateway(t)
	netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":22"))
	netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":22"))
	c := checker{t}
	fl := newFlooder(t, lab)
	var d *daemon
	for _, f := range floods {
		// A daemon of its own per flood: the first flood's region would
		// cover the second.
		if d != nil {
			netlab.Stop(d.cmd, unix.SIGTERM, 5*time.Second)
			lab.Exec(netlab.GW, nfgateBin, "cleanup")
		}
		d = startDaemon(t, lab, tutorialConfig, "")
		before, rb := d.Stats(), d.regions()
		var stop atomic.Bool
		var wg sync.WaitGroup
		fl.sent.Store(0)
		wg.Add(1)
		t0 := time.Now()
		go func() { defer wg.Done(); fl.run(netlab.MaintIP, 9999, 4*time.Second, 2_000_000, &stop, f.src) }()
		time.Sleep(300 * time.Millisecond)
		failsafeOK, allowedOK, attempts := 0, 0, 6
		var worst time.Duration
		for range attempts {
			if ok, took := connectFirstTry(lab, netlab.GWApp+":22"); ok {
				failsafeOK++
				worst = max(worst, took)
			}
			if ok, took := connectFirstTry(lab, netlab.MaintIP+":22"); ok {
				allowedOK++
				worst = max(worst, took)
			}
			time.Sleep(150 * time.Millisecond)
		}
		stop.Store(true)
		wg.Wait()
		dur := time.Since(t0)
		after := d.Stats()
		time.Sleep(1200 * time.Millisecond) // the installer reads the element counters every second
		ra := d.regions()
		sent := fl.sent.Load()
		queued := after.Queued["forward"] - before.Queued["forward"]
		t.Logf("%s: sent %d in %v (%.0f/s); queued at forward %d; elements installed %d, packets dropped by them %d; SSH first try: failsafe %d/%d, allowed %d/%d, slowest %v",
			f.name, sent, dur.Round(time.Millisecond), float64(sent)/dur.Seconds(), queued, ra.Installed-rb.Installed,
			ra.Packets-rb.Packets, failsafeOK, attempts, allowedOK, attempts, worst.Round(time.Millisecond))
		if out, err := lab.Exec(netlab.GW, "cat", "/proc/net/netfilter/nfnetlink_queue"); err == nil {
			t.Logf("kernel queues (queue peer waiting copy range queue_dropped user_dropped id 1):\n%s", out)
		}
		c.is(f.name+": failsafe SSH succeeds at the first SYN every time", failsafeOK == attempts, true)
		c.is(f.name+": allowed SSH succeeds at the first SYN every time", allowedOK == attempts, true)
		c.is(f.name+": a region was installed", ra.Installed > rb.Installed && ra.Live > 0, true)
		c.is(f.name+": the flood died in the kernel (under 5% of it queued)", sent > 1000 && float64(queued) < 0.05*float64(sent), true)
		// (What the gateway's softirq could not take was lost before the
		// forward hook: the elements count what reached it.)
		c.is(f.name+": the kernel counted the drops", ra.Packets > rb.Packets, true)
		if ra.Mismatch != 0 || ra.Errors != 0 {
			t.Errorf("installer: %d mismatches, %d kernel errors", ra.Mismatch, ra.Errors)
		}
	}
}

const allowUDP9999 = `
[[globalNetworkPolicy]]
name = "allow-udp-9999"
selector = "network == 'maintenance'"
applyOnForward = true
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "UDP"
[globalNetworkPolicy.egress.destination]
ports = [9999]
`

// A reload that allows a previously denied region takes effect on the
// next packet after the reload: the elements are removed before the new
// policy goes live.
func TestRegionReloadAllowsNextPacket(t *testing.T) {
	lab := netlab.NewGateway(t)
	netlab.UDPEcho(lab.ListenPacket(netlab.Maint, "udp", ":9999"))
	d := startDaemon(t, lab, tutorialConfig, "denyRegionTTL = \"30s\"")
	c := checker{t}
	fl := newFlooder(t, lab)
	var stop atomic.Bool
	fl.run(netlab.MaintIP, 9999, 300*time.Millisecond, 20000, &stop, floods[0].src)
	v := d.waitRegions(3*time.Second, func(v regionView) bool { return v.Live > 0 })
	c.is("the denied flood installed a region", v.Live > 0, true)
	c.is("UDP to the denied port is dropped", lab.UDPWorks(netlab.Client, netlab.MaintIP+":9999", 300*time.Millisecond), false)

	d.write(tutorialConfig + allowUDP9999 + engineTOML(d.dir, "denyRegionTTL = \"30s\""))
	r := d.Reload()
	c.is("the reload went live", r.ReloadErrs == 0 && r.Gen == 2, true)
	ok := lab.UDPWorks(netlab.Client, netlab.MaintIP+":9999", 500*time.Millisecond)
	c.is("the first packet after the reload is allowed (answered)", ok, true)
	found := false
	for _, l := range d.Trace() {
		if l["type"] == "region" && l["end"] == "flushed" && num(l["gen"]) == 1 {
			found = true
			t.Logf("region line: %v", l)
		}
	}
	c.is("the trace has the flushed region's line", found, true)
}

// Under the REJECT deny action a region rejects in the kernel as nfgate's
// chain does (ICMP port unreachable: connection refused at once).
func TestRegionRejectStillRejects(t *testing.T) {
	lab := netlab.NewGateway(t)
	cfg := strings.Replace(tutorialConfig, "[gateway]\n", "[gateway]\niptablesFilterDenyAction = \"REJECT\"\n", 1)
	d := startDaemon(t, lab, cfg, "")
	c := checker{t}
	refused := func(port int) (bool, time.Duration) {
		t0 := time.Now()
		_, err := lab.Dial(netlab.Client, "tcp", fmt.Sprintf("%s:%d", netlab.MaintIP, port), 2*time.Second)
		return errors.Is(err, syscall.ECONNREFUSED), time.Since(t0)
	}
	ok, took := refused(9000)
	c.is(fmt.Sprintf("the first denied connect is refused (queued; %v)", took.Round(time.Millisecond)), ok, true)
	v := d.waitRegions(3*time.Second, func(v regionView) bool { return v.Live > 0 })
	c.is("a region is installed", v.Live > 0, true)
	for _, port := range []int{9000, 9001, 12345} {
		ok, took := refused(port)
		c.is(fmt.Sprintf("connect to %d refused in the kernel within 500ms (%v)", port, took.Round(time.Millisecond)), ok && took < 500*time.Millisecond, true)
	}
	v = d.waitRegions(3*time.Second, func(v regionView) bool { return v.Packets >= 3 })
	c.is("the region's counter shows the rejected SYNs", v.Packets >= 3, true)
}

const gatewayInputConfig = `
[gateway]
nodeName = "gw"
failsafeInboundHostPorts = "tcp:22, udp:68"

[[globalNetworkPolicy]]
name = "gw-http-only"
selector = "network == 'application'"
types = ["Ingress"]
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "TCP"
[globalNetworkPolicy.ingress.destination]
ports = [80]

[[hostEndpoint]]
name = "gw.app0"
labels = { network = "application" }
interfaceName = "app0"
node = "gw"
`

// Regions never cover a failsafe port: a scan of the gateway's ports
// (denied at the input stage) makes elements on both sides of port 22,
// none holding it, and SSH works during the scan.
func TestRegionsNeverCoverFailsafe(t *testing.T) {
	lab := netlab.NewGateway(t)
	netlab.RequireTools(t, "nft")
	netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":22"))
	netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":80"))
	d := startDaemon(t, lab, gatewayInputConfig, "")
	c := checker{t}
	var wg sync.WaitGroup
	for port := 1; port <= 200; port++ {
		if port == 22 || port == 80 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c, err := lab.Dial(netlab.Client, "tcp", fmt.Sprintf("%s:%d", netlab.GWApp, port), 300*time.Millisecond); err == nil {
				c.Close()
			}
		}()
		if port%20 == 0 {
			wg.Wait()
		}
	}
	wg.Wait()
	ok, _ := connectFirstTry(lab, netlab.GWApp+":22")
	c.is("SSH to the gateway (failsafe) succeeds at the first SYN", ok, true)
	ok, _ = connectFirstTry(lab, netlab.GWApp+":80")
	c.is("HTTP to the gateway (allowed) succeeds", ok, true)
	d.waitRegions(3*time.Second, func(v regionView) bool { return v.Live > 0 })
	sets := kset.Open(int(lab.NetNSFd(netlab.GW).Fd()))
	n := 0
	err := sets.Counters(func(el engine.RegionElem, p, b uint64) {
		n++
		box := engine.ElemBox(el)
		t.Logf("element %s: %s (%d packets)", el.Stage, box, p)
		if el.Stage == policy.StageForward || el.Kind != engine.RegionPorts {
			return
		}
		if el.Proto[0] <= 6 && 6 <= el.Proto[1] && el.B[0] <= 22 && 22 <= el.B[1] {
			t.Errorf("element holds the failsafe port tcp/22: %s", box)
		}
		if el.Proto[0] <= 17 && 17 <= el.Proto[1] && el.B[0] <= 68 && 68 <= el.B[1] {
			t.Errorf("element holds the failsafe port udp/68: %s", box)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	c.is("the scan made elements", n > 0, true)
}

// The region table is covered by the self-healing check and removed by
// nfgate cleanup.
func TestRegionTableHealAndCleanup(t *testing.T) {
	lab := netlab.NewGateway(t)
	netlab.RequireTools(t, "nft")
	d := startDaemon(t, lab, tutorialConfig, "")
	c := checker{t}
	has := func() bool {
		out, _ := lab.Exec(netlab.GW, "nft", "list", "tables")
		return strings.Contains(out, "inet "+kset.TableName)
	}
	c.is("the daemon made its region table", has(), true)
	for _, tamper := range []string{"delete table inet " + kset.TableName, "delete chain inet " + kset.TableName + " forward",
		"flush chain inet " + kset.TableName + " forward-regions"} {
		before := d.regions().Repairs
		lab.MustNS(netlab.GW, "nft", tamper)
		v := d.waitRegions(5*time.Second, func(v regionView) bool { return v.Repairs > before })
		c.is("`nft "+tamper+"` is repaired and counted", v.Repairs > before && has(), true)
	}
	// Regions work after the repair.
	fl := newFlooder(t, lab)
	var stop atomic.Bool
	fl.run(netlab.MaintIP, 9999, 200*time.Millisecond, 5000, &stop, floods[0].src)
	v := d.waitRegions(3*time.Second, func(v regionView) bool { return v.Live > 0 })
	c.is("regions are installed into the repaired table", v.Live > 0, true)

	netlab.Stop(d.cmd, unix.SIGTERM, 5*time.Second)
	c.is("the table stays when the daemon stops (its elements expire)", has(), true)
	out, err := lab.Exec(netlab.GW, nfgateBin, "cleanup")
	c.is("nfgate cleanup succeeds", err == nil, true)
	if err != nil {
		t.Log(out)
	}
	c.is("nfgate cleanup removes the region table", has(), false)
	c.is("and nfgate's chains", strings.Contains(ourRules(lab), "NFGATE"), false)
	found := 0
	for _, l := range d.Trace() {
		if l["type"] == "region" {
			found++
		}
	}
	c.is("region lines in the trace (repaired, stopped)", found > 0, true)
	_ = filepath.Join
}

// The region table sits beside either iptables backend: with
// iptables-legacy the flood dies in the kernel the same way.
func TestRegionsWithLegacyBackend(t *testing.T) {
	netlab.RequireTools(t, "iptables-legacy")
	lab := netlab.NewGateway(t)
	netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":22"))
	d := startDaemon(t, lab, tutorialConfig, `iptablesBackend = "legacy"`)
	c := checker{t}
	before := d.Stats()
	fl := newFlooder(t, lab)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); fl.run(netlab.MaintIP, 9999, 2*time.Second, 1_000_000, &stop, floods[1].src) }()
	time.Sleep(300 * time.Millisecond)
	ok, took := connectFirstTry(lab, netlab.MaintIP+":22")
	stop.Store(true)
	wg.Wait()
	after := d.Stats()
	sent, queued := fl.sent.Load(), after.Queued["forward"]-before.Queued["forward"]
	t.Logf("legacy backend: flood sent %d, queued %d; SSH %v in %v", sent, queued, ok, took.Round(time.Millisecond))
	out, _ := lab.Exec(netlab.GW, "iptables-legacy-save", "-t", "filter")
	c.is("nfgate's hooks are in iptables-legacy", strings.Contains(out, "NFGATE-FORWARD"), true)
	c.is("allowed SSH succeeds at the first SYN during the flood", ok, true)
	c.is("the flood died in the kernel (under 5% of it queued)", sent > 1000 && float64(queued) < 0.05*float64(sent), true)
}

// A region is a denial the live policy proved; it keeps dropping its
// traffic in the kernel when the daemon dies, also in failure mode open,
// until its timeout (denyRegionTTL, plus the kernel's 2 s margin), and
// only then does the queue bypass let that traffic through undecided.
// (The queue's own failure modes are tested without regions:
// TestFailureMatrix.)
func TestRegionsOutliveTheDaemon(t *testing.T) {
	lab := netlab.NewGateway(t)
	for _, p := range []string{"22", "80"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	d := startDaemon(t, lab, fmt.Sprintf(maintTwoPorts, "22"), "failureMode = \"open\"\ndenyRegionTTL = \"3s\"")
	c := checker{t}
	c.is("daemon up: TCP/80 denied", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)
	v := d.waitRegions(3*time.Second, func(v regionView) bool { return v.Live > 0 })
	c.is("the denial installed a region", v.Live > 0, true)
	d.Kill()
	killed := time.Now()
	c.is("daemon dead (open): TCP/80 still dropped by the region", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)
	c.is("daemon dead (open): failsafe SSH works", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", 2*time.Second), true)
	passed := false
	for time.Since(killed) < 15*time.Second && !passed {
		passed = lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait)
		if !passed {
			time.Sleep(500 * time.Millisecond)
		}
	}
	c.is("after the region's timeout the queue bypass lets TCP/80 through", passed, true)
	t.Logf("TCP/80 passed %v after the kill (denyRegionTTL 3s)", time.Since(killed).Round(100*time.Millisecond))
}
