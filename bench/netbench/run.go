//go:build linux

package netbench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Options bound the harness.
type Options struct {
	Quick     bool
	Runs      int   // rounds; every figure is measured once per round
	Sizes     []int // policy sizes
	NfgateBin string
	Baseline  string    // another nfgate binary, measured as "base-N" contenders in the same rounds
	Log       io.Writer // progress (nil: discard)

	FlowDur    time.Duration // one new-flow rate measurement
	FlowMax    int           // packets/connections per measurement
	LatN       int           // latency samples per measurement
	LatDur     time.Duration
	IperfSecs  int
	Reloads    int            // reloads per round
	PacedRate  float64        // the allowed generator's rate for the loss measurement under the floods (figure 5)
	ReloadSize int            // policy size for the reload figure
	Only       *regexp.Regexp // run only the contenders whose name matches (nil: all)
	NoReload   bool
	DumpRules  bool   // log the gateway's ruleset for each contender
	PerfDir    string // record `perf` profiles of the readers' CPU runs here
}

// Defaults fills unset fields: full mode or quick mode.
func (o *Options) Defaults() {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Quick {
		def(&o.Runs, 1)
		if o.PacedRate == 0 {
			o.PacedRate = 20000
		}
		if len(o.Sizes) == 0 {
			o.Sizes = []int{10, 1000}
		}
		defD(&o.FlowDur, 300*time.Millisecond)
		def(&o.FlowMax, 50000)
		def(&o.LatN, 200)
		defD(&o.LatDur, time.Second)
		def(&o.IperfSecs, 1)
		def(&o.Reloads, 1)
		def(&o.ReloadSize, o.Sizes[len(o.Sizes)-1])
		return
	}
	def(&o.Runs, 3)
	if o.PacedRate == 0 {
		o.PacedRate = 20000
	}
	if len(o.Sizes) == 0 {
		o.Sizes = []int{10, 1000, 10000}
	}
	defD(&o.FlowDur, time.Second)
	def(&o.FlowMax, 200000)
	def(&o.LatN, 2000)
	defD(&o.LatDur, 3*time.Second)
	def(&o.IperfSecs, 3)
	def(&o.Reloads, 2)
	def(&o.ReloadSize, o.Sizes[len(o.Sizes)-1])
}

func def(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}
func defD(p *time.Duration, v time.Duration) {
	if *p == 0 {
		*p = v
	}
}

// Contenders returns the gateway configurations for the given sizes (and
// the baseline binary's, when there is one).
func Contenders(sizes []int, baseline string) []Contender {
	big := sizes[len(sizes)-1]
	cs := []Contender{{Name: "kernel", Kind: Kernel, Full: true, Throughput: true}}
	for _, n := range sizes {
		cs = append(cs, Contender{Name: fmt.Sprintf("iptables-%d", n), Kind: Iptables, Rules: n, Full: true,
			Throughput: n == big, Flood: n == big})
	}
	cs = append(cs, Contender{Name: "nfqueue-bare", Kind: Bare, Queues: 1, Full: true, Throughput: true})
	if bestBareBin != "" {
		cs = append(cs, Contender{Name: "bestbare", Kind: BestBare, Queues: 1, Full: true},
			Contender{Name: "bestbare-hooks", Kind: BestBare, Rules: sizes[0], Queues: 1, Full: true, Hooks: true})
	}
	for _, n := range sizes {
		cs = append(cs, Contender{Name: fmt.Sprintf("nfgate-%d", n), Kind: Nfgate, Rules: n, Queues: 1, Full: true,
			Throughput: n == big, Flood: n == big})
	}
	cs = append(cs, Contender{Name: fmt.Sprintf("rawdrop-%d", big), Kind: Nfgate, Rules: big, Queues: 1, Flood: true, RawDrop: true})
	if baseline != "" {
		for _, n := range sizes {
			cs = append(cs, Contender{Name: fmt.Sprintf("base-%d", n), Kind: Nfgate, Rules: n, Queues: 1, Full: true, Bin: baseline,
				Flood: n == big})
		}
	}
	cs = append(cs, Contender{Name: "nfqueue-bare-2q", Kind: Bare, Queues: 2})
	if bestBareBin != "" {
		cs = append(cs, Contender{Name: "bestbare-2q", Kind: BestBare, Queues: 2})
	}
	cs = append(cs, Contender{Name: fmt.Sprintf("nfgate-%d-2q", big), Kind: Nfgate, Rules: big, Queues: 2})
	return cs
}

// Metric names.
const (
	mUDPEarly    = "udp_early"     // new flows/s, early rule
	mUDPDeep     = "udp_deep"      // new flows/s, deep rule
	mUDPDeepSent = "udp_deep_sent" // packets/s the generator offered
	mTCP         = "tcp_deep"      // connections/s, deep rule
	mTCPp50      = "tcp_connect_p50_us"
	mLatP50      = "lat_p50_us"
	mLatP99      = "lat_p99_us"
	mLatLost     = "lat_lost"
	mTput        = "tput_gbps"
	mCPU         = "cpu_ms_per_1k"
	mRSS         = "rss_mib"
	// Figure 5, per flood (a: one source, new source port per packet;
	// b: spoofed sources in 198.19.0.0/16), both as fast as they go:
	// allowed new flows/s (the allowed generator as fast as it goes), the
	// flood's rate, the NFQUEUE drops during it, and the allowed packets
	// lost with the allowed generator paced at Options.PacedRate.
	mFloodA      = "flood_a_allowed"
	mFloodASent  = "flood_a_sent_per_s"
	mFloodAQDrop = "flood_a_queue_drops"
	mFloodALost  = "flood_a_allowed_lost"
	mFloodB      = "flood_b_allowed"
	mFloodBSent  = "flood_b_sent_per_s"
	mFloodBQDrop = "flood_b_queue_drops"
	mFloodBLost  = "flood_b_allowed_lost"
	mPacedLost   = "paced_allowed_lost" // the same paced run without a flood
	// Fairness: an allowed flood from one source (new source port per
	// packet, as fast as it goes) and the allowed generator from other
	// sources paced at Options.PacedRate: their packets lost.
	mFairLost = "fair_victim_lost"
	mFairSent = "fair_flood_sent_per_s"
	mFairQD   = "fair_queue_drops"
	mQDrop    = "queue_drops"
	mReloadMS = "reload_ms"
	mGapMS    = "max_gap_ms"
	mLost     = "flows_lost"
	mStartMS  = "start_ms"
)

// Results holds every measurement: Results[contender][metric][round].
type Results struct {
	Opt    Options
	Order  []Contender
	M      map[string]map[string][]float64
	Start  time.Time
	End    time.Time
	LoadAv [2]string // load average before and after
}

func (r *Results) put(c, m string, round int, v float64) {
	if r.M[c] == nil {
		r.M[c] = map[string][]float64{}
	}
	s := r.M[c][m]
	if s == nil {
		s = make([]float64, r.Opt.Runs)
		for i := range s {
			s[i] = math.NaN()
		}
		r.M[c][m] = s
	}
	s[round] = v
}

// Run measures every figure for every contender, Opt.Runs times,
// interleaving contenders within each round (the order rotates). The lab is
// removed by t's cleanup.
func Run(t TB, o Options) (*Results, error) {
	o.Defaults()
	res := &Results{Opt: o, M: map[string]map[string][]float64{}, Start: time.Now()}
	for _, c := range Contenders(o.Sizes, o.Baseline) {
		if o.Only == nil || o.Only.MatchString(c.Name) {
			res.Order = append(res.Order, c)
		}
	}
	res.LoadAv[0] = loadAvg()
	lab := NewLab(t)
	lab.tcpServer(PortTCPEarly)
	lab.tcpServer(PortTCPDeep)
	lab.UDPEcho(PortEchoEarly)
	lab.UDPEcho(PortEchoDeep)
	lab.EchoServer(PortTCPStall)
	iperf := lab.Start(nsServer, nil, "iperf3", "-s", "-p", fmt.Sprint(PortIperf))
	defer func() { stopCmd(iperf) }()
	gen, err := lab.newUDPFlows()
	if err != nil {
		return nil, err
	}
	defer gen.Close()
	flood, err := lab.newUDPFlows()
	if err != nil {
		return nil, err
	}
	defer flood.Close()
	flood.next = 1 << 31

	for round := 0; round < o.Runs; round++ {
		n := len(res.Order)
		for i := 0; i < n; i++ {
			c := res.Order[(i+round)%n]
			fmt.Fprintf(o.Log, "round %d/%d: %s\n", round+1, o.Runs, c.Name)
			if err := lab.measure(res, c, round, gen, flood); err != nil {
				return res, fmt.Errorf("%s: %w", c.Name, err)
			}
		}
		if o.NoReload {
			continue
		}
		fmt.Fprintf(o.Log, "round %d/%d: reload of %d rules\n", round+1, o.Runs, o.ReloadSize)
		if err := lab.measureReload(res, round, t.TempDir); err != nil {
			return res, fmt.Errorf("reload: %w", err)
		}
	}
	res.End = time.Now()
	res.LoadAv[1] = loadAvg()
	return res, nil
}

func stopCmd(c *exec.Cmd) {
	if c != nil && c.Process != nil && c.ProcessState == nil {
		unix.Kill(-c.Process.Pid, unix.SIGKILL)
		c.Wait()
	}
}

// flowRate runs the UDP generator to dport and returns delivered new flows
// per second (server-side count over the sending window) and the offered
// rate (packets sent per second).
func (l *Lab) flowRate(gen *udpFlows, dport uint16, o *Options) (delivered, offered float64) {
	l.FlushConntrack()
	rx0 := l.ServerRx()
	n, d := gen.run(dport, o.FlowMax, o.FlowDur, 0, nil)
	rx1 := l.ServerRx()
	l.Settle() // drain the queue before the next run
	return float64(rx1-rx0) / d.Seconds(), float64(n) / d.Seconds()
}

func (l *Lab) measure(res *Results, c Contender, round int, gen, flood *udpFlows) error {
	o := &res.Opt
	t0 := time.Now()
	r, err := l.start(c, o.NfgateBin, l.t.TempDir())
	if err != nil {
		return err
	}
	defer r.stop()
	if c.Kind == Nfgate {
		res.put(c.Name, mStartMS, round, ms(time.Since(t0)))
	}
	if o.DumpRules {
		out, _ := l.Exec(nsGW, "iptables-save")
		fmt.Fprintf(o.Log, "%s ruleset:\n%s\n", c.Name, out)
	}
	qd0, ud0 := l.QueueStats()
	// Warm up: the first flows fault in the reader's pages.
	gen.run(PortUDPEarly, 2000, 100*time.Millisecond, 0, nil)
	l.Settle()

	dv, of := l.flowRate(gen, PortUDPDeep, o)
	res.put(c.Name, mUDPDeep, round, dv)
	res.put(c.Name, mUDPDeepSent, round, of)
	if !c.Full {
		if c.Flood {
			return l.floods(res, r, round, gen, flood)
		}
		return nil
	}
	dv, _ = l.flowRate(gen, PortUDPEarly, o)
	res.put(c.Name, mUDPEarly, round, dv)

	// CPU and memory per 1,000 new flows (deep rule, delivered flows).
	l.FlushConntrack()
	var perf *exec.Cmd
	if o.PerfDir != "" && r.pid != 0 {
		perf = exec.Command("perf", "record", "-q", "-e", "cpu-clock", "-g", "-F", "4999", "-a",
			"-o", fmt.Sprintf("%s/%s-r%d-pid%d.data", o.PerfDir, c.Name, round, r.pid))
		perf.Stdout, perf.Stderr = o.Log, o.Log
		if perf.Start() != nil {
			perf = nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	cpu0, rx0 := r.cpu(), l.ServerRx()
	gen.run(PortUDPDeep, o.FlowMax, o.FlowDur, 0, nil)
	if perf != nil {
		perf.Process.Signal(unix.SIGINT)
		perf.Wait()
	}
	l.Settle()
	cpu1, rx1 := r.cpu(), l.ServerRx()
	if r.pid != 0 && rx1 > rx0 {
		res.put(c.Name, mCPU, round, ms(cpu1-cpu0)/(float64(rx1-rx0)/1000))
		res.put(c.Name, mRSS, round, r.rss()/(1<<20))
	}

	l.FlushConntrack()
	nc, d, times := l.tcpConnects(PortTCPDeep, 4, o.FlowMax, o.FlowDur)
	res.put(c.Name, mTCP, round, float64(nc)/d.Seconds())
	res.put(c.Name, mTCPp50, round, us(percentile(times, 50)))

	l.FlushConntrack()
	rtts, lost := l.udpLatency(PortEchoDeep, o.LatN, o.LatDur)
	res.put(c.Name, mLatP50, round, us(percentile(rtts, 50)))
	res.put(c.Name, mLatP99, round, us(percentile(rtts, 99)))
	res.put(c.Name, mLatLost, round, float64(lost))

	if c.Throughput {
		g, err := l.iperf(o.IperfSecs)
		if err != nil {
			return err
		}
		res.put(c.Name, mTput, round, g)
	}
	if c.Flood {
		if err := l.floods(res, r, round, gen, flood); err != nil {
			return err
		}
	}
	if c.Kind == Bare || c.Kind == BestBare || c.Kind == Nfgate {
		qd1, ud1 := l.QueueStats()
		res.put(c.Name, mQDrop, round, float64(qd1-qd0+ud1-ud0))
	}
	return nil
}

// floodKinds are figure 5's floods.
var floodKinds = []struct {
	name                    string
	mode                    srcMode
	allowed, sent, qd, lost string
}{
	{"a: one source, new source port per packet", srcOnePort, mFloodA, mFloodASent, mFloodAQDrop, mFloodALost},
	{"b: spoofed sources in 198.19.0.0/16", srcSpoof, mFloodB, mFloodBSent, mFloodBQDrop, mFloodBLost},
}

// floods measures figure 5 for contender r: for each flood, the allowed
// generator's delivered new flows/s as fast as it goes, then the allowed
// packets lost at Options.PacedRate. nfgate is reloaded (SIGHUP) before
// each flood, which removes the kernel regions the previous one made.
func (l *Lab) floods(res *Results, r *running, round int, gen, flood *udpFlows) error {
	o := &res.Opt
	fr := l.floodRun(r, gen, flood, 0, 0, o)
	res.put(r.c.Name, mPacedLost, round, fr.lost)
	for _, f := range floodKinds {
		if err := r.reload(); err != nil {
			return err
		}
		var perf *exec.Cmd
		if o.PerfDir != "" {
			perf = startPerf(fmt.Sprintf("%s/%s-flood%d-r%d.data", o.PerfDir, r.c.Name, f.mode, round), o.Log)
		}
		fr := l.floodRun(r, gen, flood, f.mode, 0, o)
		if perf != nil {
			perf.Process.Signal(unix.SIGINT)
			perf.Wait()
		}
		res.put(r.c.Name, f.allowed, round, fr.allowed)
		res.put(r.c.Name, f.sent, round, fr.flooded)
		res.put(r.c.Name, f.qd, round, fr.qdrops)
		if err := r.reload(); err != nil {
			return err
		}
		fr = l.floodRun(r, gen, flood, f.mode, o.PacedRate, o)
		res.put(r.c.Name, f.lost, round, fr.lost)
	}
	lost, sent, qd := l.fairRun(r, gen, flood, o)
	res.put(r.c.Name, mFairLost, round, lost)
	res.put(r.c.Name, mFairSent, round, sent)
	res.put(r.c.Name, mFairQD, round, qd)
	return nil
}

// fairRun: one source floods an allowed port (the deep rule) with new
// flows as fast as it goes, while the allowed generator sends new flows
// from its other sources to the early rule at Options.PacedRate. It
// returns the paced generator's packets lost, the flood's rate and the
// NFQUEUE drops: whether one flooding source starves the others when the
// queue is full anyway.
func (l *Lab) fairRun(r *running, gen, flood *udpFlows, o *Options) (lost, floodRate, qdrops float64) {
	l.FlushConntrack()
	var stop atomic.Bool
	done := make(chan [2]float64, 1)
	flood.src = srcOnePort
	go func() {
		n, d := flood.run(PortUDPDeep, math.MaxInt32, o.FlowDur+2*time.Second, 0, &stop)
		done <- [2]float64{float64(n), d.Seconds()}
	}()
	time.Sleep(200 * time.Millisecond)
	qd0, ud0 := l.QueueStats()
	rx0 := l.ServerPortRx(PortUDPEarly)
	sent, d := gen.run(PortUDPEarly, o.FlowMax, o.FlowDur, o.PacedRate, nil)
	stop.Store(true)
	f := <-done
	l.Settle()
	rx1 := l.ServerPortRx(PortUDPEarly)
	qd1, ud1 := l.QueueStats()
	lost = float64(int64(sent) - int64(rx1-rx0))
	if o.Log != io.Discard {
		fmt.Fprintf(o.Log, "%s allowed one-source flood: paced sent %d delivered %d in %v; flood sent %.0f in %.2fs; queue drops %d, socket drops %d\n",
			r.c.Name, sent, rx1-rx0, d.Round(time.Millisecond), f[0], f[1], qd1-qd0, ud1-ud0)
	}
	return lost, f[0] / f[1], float64(qd1 - qd0 + ud1 - ud0)
}

// startPerf records every CPU (call graphs) into file until SIGINT.
func startPerf(file string, log io.Writer) *exec.Cmd {
	perf := exec.Command("perf", "record", "-q", "-e", "cpu-clock", "-g", "-F", "999", "-a", "-o", file)
	perf.Stdout, perf.Stderr = log, log
	if perf.Start() != nil {
		return nil
	}
	time.Sleep(300 * time.Millisecond)
	return perf
}

// floodResult is one flood run.
type floodResult struct {
	allowed float64 // allowed packets delivered per second of the sending window
	lost    float64 // allowed packets sent and not delivered (paced runs: counted once the queue drained)
	flooded float64 // flood packets sent per second
	qdrops  float64 // NFQUEUE drops (queue full, socket buffer full) during the run
}

// floodRun runs the allowed generator to the deep rule (at rate, 0: as
// fast as it goes) while the flood generator sends denied packets of
// kind mode (0: no flood) as fast as it goes.
func (l *Lab) floodRun(r *running, gen, flood *udpFlows, mode srcMode, rate float64, o *Options) floodResult {
	l.FlushConntrack()
	var stop atomic.Bool
	done := make(chan [2]float64, 1)
	if mode != 0 {
		flood.src = mode
		go func() {
			n, d := flood.run(PortDenied, math.MaxInt32, o.FlowDur+2*time.Second, 0, &stop)
			done <- [2]float64{float64(n), d.Seconds()}
		}()
		time.Sleep(200 * time.Millisecond) // the flood is on (and its first regions in)
	} else {
		done <- [2]float64{0, 1}
	}
	st0, _ := r.nfgateStats()
	qd0, ud0 := l.QueueStats()
	rx0 := l.ServerRx()
	sent, d := gen.run(PortUDPDeep, o.FlowMax, o.FlowDur, rate, nil)
	rx1 := l.ServerRx()
	stop.Store(true)
	f := <-done
	l.Settle()
	rx2 := l.ServerRx()
	qd1, ud1 := l.QueueStats()
	fr := floodResult{allowed: float64(rx1-rx0) / d.Seconds(), flooded: f[0] / f[1], qdrops: float64(qd1 - qd0 + ud1 - ud0)}
	if rate > 0 {
		fr.lost = float64(int64(sent) - int64(rx2-rx0))
	}
	if r.c.Kind == Nfgate && o.Log != io.Discard {
		time.Sleep(1100 * time.Millisecond) // a fresh stats file
		st1, _ := r.nfgateStats()
		fmt.Fprintf(o.Log, "%s flood %d, allowed at %.0f/s: allowed sent %d delivered %d (%d after the queue drained) in %v; flood sent %.0f in %.2fs; queue drops %d, socket drops %d; nfgate queued %d accepted %d dropped %d deny-cache hits %d; regions installed %d, packets they dropped %d\n",
			r.c.Name, mode, rate, sent, rx1-rx0, rx2-rx0, d.Round(time.Millisecond), f[0], f[1], qd1-qd0, ud1-ud0, st1.Queued["forward"]-st0.Queued["forward"],
			st1.Accepted["forward"]-st0.Accepted["forward"], st1.Dropped["forward"]-st0.Dropped["forward"], st1.DenyHits-st0.DenyHits,
			st1.Regions.Installed-st0.Regions.Installed, st1.Regions.Packets-st0.Regions.Packets)
	}
	return fr
}

// iperf runs one iperf3 TCP test client → server and returns Gbit/s.
func (l *Lab) iperf(secs int) (float64, error) {
	out, err := l.Exec(nsClient, "iperf3", "-c", ServerIP, "-p", fmt.Sprint(PortIperf), "-t", fmt.Sprint(secs), "-J")
	if err != nil {
		return 0, fmt.Errorf("iperf3: %v: %s", err, out)
	}
	var v struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return 0, fmt.Errorf("iperf3 output: %v", err)
	}
	return v.End.SumReceived.BitsPerSecond / 1e9, nil
}

// measureReload runs nfgate with the reload-size policy (Calico YAML, then
// native TOML), keeps an established flow exchanging a message every 10 ms,
// and reloads to a different policy of the same size (another seed)
// Opt.Reloads times: the time from SIGHUP to the new generation in the
// stats file, the flow's longest gap around the reload, and whether it was
// lost.
func (l *Lab) measureReload(res *Results, round int, tmp func() string) error {
	o := &res.Opt
	for _, toml := range []bool{false, true} {
		c := Contender{Name: fmt.Sprintf("nfgate-%d", o.ReloadSize), Kind: Nfgate, Rules: o.ReloadSize, Queues: 1, TOML: toml}
		name := "reload-yaml"
		if toml {
			name = "reload-toml"
		}
		dir := tmp()
		r, err := l.start(c, o.NfgateBin, dir)
		if err != nil {
			return err
		}
		err = l.reloads(res, r, name, round, dir, toml)
		r.stop()
		if o.DumpRules {
			fmt.Fprintf(o.Log, "nfgate log:\n%s\n", r.log.String())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) reloads(res *Results, r *running, name string, round int, dir string, toml bool) error {
	o := &res.Opt
	for i := 0; i < o.Reloads; i++ {
		probe, err := l.startStallProbe(PortTCPStall)
		if err != nil {
			return fmt.Errorf("stall probe: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
		before, _ := r.nfgateStats()
		seed := uint64(2 + (round*o.Reloads+i)%2) // alternate between two policies
		if _, err := WriteConfig(dir, policies.get(o.ReloadSize, seed), topology(1), !toml); err != nil {
			return err
		}
		from := time.Now()
		r.cmd.Process.Signal(unix.SIGHUP)
		var after nfgateStats
		err = waitFor(30*time.Second, func() bool {
			s, ok := r.nfgateStats()
			after = s
			return ok && s.Reloads+s.ReloadErrs > before.Reloads+before.ReloadErrs
		}, r.cmd)
		took := time.Since(from)
		if err != nil || after.ReloadErrs > before.ReloadErrs {
			probe.stop(from, time.Now())
			return fmt.Errorf("reload not reported (%v):\n%s", err, r.log.String())
		}
		fmt.Fprintf(o.Log, "%s: SIGHUP to stats %v\n", name, took.Round(time.Millisecond))
		time.Sleep(500 * time.Millisecond)
		gap, perr := probe.stop(from.Add(-100*time.Millisecond), time.Now())
		idx, n := round*o.Reloads+i, o.Runs*o.Reloads
		res.putN(name, mReloadMS, idx, n, ms(took))
		res.putN(name, mGapMS, idx, n, ms(gap))
		lost := 0.0
		if perr != nil {
			lost = 1
		}
		res.putN(name, mLost, idx, n, lost)
	}
	return nil
}

// putN is put for metrics with n samples instead of one per round.
func (r *Results) putN(c, m string, i, n int, v float64) {
	if r.M[c] == nil {
		r.M[c] = map[string][]float64{}
	}
	s := r.M[c][m]
	if s == nil {
		s = make([]float64, n)
		for j := range s {
			s[j] = math.NaN()
		}
		r.M[c][m] = s
	}
	s[i] = v
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
func us(d time.Duration) float64 { return float64(d) / 1e3 }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
