package netbench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// median of the non-NaN values (NaN if none).
func median(v []float64) float64 {
	var s []float64
	for _, x := range v {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxOf(v []float64) float64 {
	m := math.NaN()
	for _, x := range v {
		if !math.IsNaN(x) && (math.IsNaN(m) || x > m) {
			m = x
		}
	}
	return m
}

func (r *Results) get(c, m string) []float64 { return r.M[c][m] }

// Med is the median of a metric over the rounds.
func (r *Results) Med(c, m string) float64 { return median(r.get(c, m)) }

// Ratio is the median over rounds of a[c1][m1] / b[c2][m2] within each round.
func (r *Results) Ratio(c1, m1, c2, m2 string) float64 {
	a, b := r.get(c1, m1), r.get(c2, m2)
	var q []float64
	for i := range min(len(a), len(b)) {
		if !math.IsNaN(a[i]) && !math.IsNaN(b[i]) && b[i] != 0 {
			q = append(q, a[i]/b[i])
		}
	}
	return median(q)
}

// Diff is the median over rounds of a[c1][m] - b[c2][m] within each round.
func (r *Results) Diff(c1, c2, m string) float64 {
	a, b := r.get(c1, m), r.get(c2, m)
	var q []float64
	for i := range min(len(a), len(b)) {
		if !math.IsNaN(a[i]) && !math.IsNaN(b[i]) {
			q = append(q, a[i]-b[i])
		}
	}
	return median(q)
}

func f0(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

func f1(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
}

func f2(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func kfmt(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	if v >= 10000 {
		return fmt.Sprintf("%.1fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func xfmt(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

// Markdown writes the tables.
func (r *Results) Markdown(w io.Writer) {
	o := r.Opt
	sizes := o.Sizes
	big := sizes[len(sizes)-1]
	fmt.Fprintf(w, "Medians of %d run(s) per figure; contenders interleaved within each run; ratios are medians of per-run ratios.\n\n", o.Runs)

	fmt.Fprintf(w, "#### New flows, latency, throughput, cost (figures 1–4)\n\n")
	fmt.Fprintln(w, "| contender | UDP new flows/s, early rule | UDP new flows/s, deep rule | TCP conn/s, deep | TCP connect p50 µs | UDP 1st-packet RTT p50 µs | p99 µs | added p50 / p99 vs kernel µs | iperf3 Gbit/s | CPU ms per 1k flows | RSS MiB |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range r.Order {
		if !c.Full {
			continue
		}
		n := c.Name
		added := "–"
		if n != "kernel" {
			added = f1(r.Diff(n, "kernel", mLatP50)) + " / " + f1(r.Diff(n, "kernel", mLatP99))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", n,
			kfmt(r.Med(n, mUDPEarly)), kfmt(r.Med(n, mUDPDeep)), kfmt(r.Med(n, mTCP)), f0(r.Med(n, mTCPp50)),
			f0(r.Med(n, mLatP50)), f0(r.Med(n, mLatP99)), added,
			f2(r.Med(n, mTput)), f2(r.Med(n, mCPU)), f1(r.Med(n, mRSS)))
	}

	fmt.Fprintf(w, "\n#### Each run (UDP new flows/s, deep rule; CPU ms per 1k flows)\n\n")
	fmt.Fprintf(w, "| contender |")
	for i := range o.Runs {
		fmt.Fprintf(w, " run %d |", i+1)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---:|", o.Runs))
	for _, c := range r.Order {
		if !c.Full {
			continue
		}
		fmt.Fprintf(w, "| %s |", c.Name)
		rate, cpu := r.get(c.Name, mUDPDeep), r.get(c.Name, mCPU)
		for i := range o.Runs {
			v := "–"
			if i < len(rate) {
				v = kfmt(rate[i])
			}
			if i < len(cpu) && !math.IsNaN(cpu[i]) {
				v += " (" + f2(cpu[i]) + ")"
			}
			fmt.Fprintf(w, " %s |", v)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintf(w, "\n#### Ratios within each run (new flows: deep rule)\n\n")
	fmt.Fprintln(w, "| nfgate policy | UDP new flows vs bestbare | vs bestbare-hooks | vs nfqueue-bare | vs iptables (same rules) | vs kernel | CPU per flow vs bestbare | vs bestbare-hooks | TCP conn/s vs bestbare | vs iptables | iperf3 vs kernel |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, n := range sizes {
		g, ipt := fmt.Sprintf("nfgate-%d", n), fmt.Sprintf("iptables-%d", n)
		fmt.Fprintf(w, "| %d rules | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", n,
			xfmt(r.Ratio(g, mUDPDeep, "bestbare", mUDPDeep)), xfmt(r.Ratio(g, mUDPDeep, "bestbare-hooks", mUDPDeep)),
			xfmt(r.Ratio(g, mUDPDeep, "nfqueue-bare", mUDPDeep)),
			xfmt(r.Ratio(g, mUDPDeep, ipt, mUDPDeep)), xfmt(r.Ratio(g, mUDPDeep, "kernel", mUDPDeep)),
			xfmt(r.Ratio(g, mCPU, "bestbare", mCPU)), xfmt(r.Ratio(g, mCPU, "bestbare-hooks", mCPU)),
			xfmt(r.Ratio(g, mTCP, "bestbare", mTCP)), xfmt(r.Ratio(g, mTCP, ipt, mTCP)),
			xfmt(r.Ratio(g, mTput, "kernel", mTput)))
	}
	for _, c := range []string{fmt.Sprintf("iptables-%d", big), "nfqueue-bare", "bestbare", "bestbare-hooks"} {
		fmt.Fprintf(w, "| %s vs kernel | – | – | – | – | %s | – | – | – | – | %s |\n", c,
			xfmt(r.Ratio(c, mUDPDeep, "kernel", mUDPDeep)), xfmt(r.Ratio(c, mTput, "kernel", mTput)))
	}

	if o.Baseline != "" {
		fmt.Fprintf(w, "\n#### Against the baseline binary (`%s`, contenders base-N), within each run\n\n", o.Baseline)
		fmt.Fprintln(w, "| policy | UDP new flows nfgate / base | CPU per flow nfgate / base | added latency p50 nfgate − base µs | p99 µs |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
		for _, n := range sizes {
			g, b := fmt.Sprintf("nfgate-%d", n), fmt.Sprintf("base-%d", n)
			fmt.Fprintf(w, "| %d rules | %s | %s | %s | %s |\n", n, xfmt(r.Ratio(g, mUDPDeep, b, mUDPDeep)),
				xfmt(r.Ratio(g, mCPU, b, mCPU)), f1(r.Diff(g, b, mLatP50)), f1(r.Diff(g, b, mLatP99)))
		}
	}

	fmt.Fprintf(w, "\n#### Reload of %d rules with an established flow (figure 4)\n\n", o.ReloadSize)
	fmt.Fprintln(w, "| policy format | reloads | SIGHUP → new generation, median ms | max ms | flow's longest gap (10 ms probe), median ms | max ms | flows lost |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	lost := 0.0
	for _, f := range []string{"yaml", "toml"} {
		n := "reload-" + f
		rl := r.get(n, mReloadMS)
		l := 0.0
		for _, v := range r.get(n, mLost) {
			if !math.IsNaN(v) {
				l += v
			}
		}
		lost += l
		label := map[string]string{"yaml": "Calico YAML (included)", "toml": "nfgate TOML"}[f]
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %.0f |\n", label, len(rl), f0(median(rl)), f0(maxOf(rl)),
			f0(r.Med(n, mGapMS)), f0(maxOf(r.get(n, mGapMS))), l)
	}

	fmt.Fprintf(w, "\n#### Allowed new flows under denied floods (figure 5)\n\n")
	fmt.Fprintf(w, "Two floods of a denied port, each as fast as its sender goes: (a) from one source with a new source port per packet, (b) from spoofed random sources in 198.19.0.0/16. The allowed generator sends to the deep rule as fast as it goes (new flows/s and the ratio to the contender's unloaded rate in the same run), then paced at %.0f/s (allowed packets lost: sent minus delivered once the queue drained; unloaded for reference). nfgate is reloaded before each flood run, which removes the kernel regions of the one before. All senders share the client namespace and the 2 vCPUs.\n\n", o.PacedRate)
	fmt.Fprintln(w, "| contender | unloaded | (a) allowed/s | ratio | (b) allowed/s | ratio | flood sent/s (a) | (b) | NFQUEUE drops (a) | (b) | allowed lost at the paced rate: unloaded | (a) | (b) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range r.Order {
		if !c.Flood {
			continue
		}
		n := c.Name
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", n, kfmt(r.Med(n, mUDPDeep)),
			kfmt(r.Med(n, mFloodA)), xfmt(r.Ratio(n, mFloodA, n, mUDPDeep)),
			kfmt(r.Med(n, mFloodB)), xfmt(r.Ratio(n, mFloodB, n, mUDPDeep)),
			kfmt(r.Med(n, mFloodASent)), kfmt(r.Med(n, mFloodBSent)), f0(r.Med(n, mFloodAQDrop)), f0(r.Med(n, mFloodBQDrop)),
			f0(r.Med(n, mPacedLost)), f0(r.Med(n, mFloodALost)), f0(r.Med(n, mFloodBLost)))
	}
	fmt.Fprintf(w, "\nEach run (ratio to unloaded (a) / (b); allowed lost (a) / (b)):\n\n")
	fmt.Fprintf(w, "| contender |")
	for i := range o.Runs {
		fmt.Fprintf(w, " run %d |", i+1)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---:|", o.Runs))
	for _, c := range r.Order {
		if !c.Flood {
			continue
		}
		n := c.Name
		fmt.Fprintf(w, "| %s |", n)
		un, a, b, la, lb := r.get(n, mUDPDeep), r.get(n, mFloodA), r.get(n, mFloodB), r.get(n, mFloodALost), r.get(n, mFloodBLost)
		for i := range o.Runs {
			at := func(v []float64) float64 {
				if i < len(v) {
					return v[i]
				}
				return math.NaN()
			}
			fmt.Fprintf(w, " %s / %s; %s / %s |", xfmt(at(a)/at(un)), xfmt(at(b)/at(un)), f0(at(la)), f0(at(lb)))
		}
		fmt.Fprintln(w)
	}
	if rd := fmt.Sprintf("rawdrop-%d", big); len(r.get(rd, mFloodA)) > 0 {
		g := fmt.Sprintf("nfgate-%d", big)
		fmt.Fprintf(w, "\nrawdrop-%d is nfgate with a static rule dropping the flood's port in raw PREROUTING, before conntrack: the cheapest in-kernel drop there is, so its ratios are the ceiling for any firewall on this machine (the flood's sender and the gateway's work for its packets take their CPU share whatever drops them). nfgate-%d against it within each run: (a) %s, (b) %s.\n",
			big, big, xfmt(r.Ratio(g, mFloodA, rd, mFloodA)), xfmt(r.Ratio(g, mFloodB, rd, mFloodB)))
	}
	fmt.Fprintf(w, "\nFairness: one source floods an allowed port with new flows as fast as it goes while other sources send new flows paced at %.0f/s; their packets lost (the queue is full anyway):\n\n", o.PacedRate)
	fmt.Fprintln(w, "| contender | allowed flood sent/s | NFQUEUE drops | other sources' packets lost |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	for _, c := range r.Order {
		if c.Flood {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", c.Name, kfmt(r.Med(c.Name, mFairSent)), f0(r.Med(c.Name, mFairQD)), f0(r.Med(c.Name, mFairLost)))
		}
	}
	if o.Baseline != "" {
		g, b := fmt.Sprintf("nfgate-%d", big), fmt.Sprintf("base-%d", big)
		fmt.Fprintf(w, "\nBefore and after (base-%d is `%s`): allowed new flows under flood, nfgate / base within each run: (a) %s, (b) %s; allowed lost at the paced rate: base (a) %s, (b) %s; nfgate (a) %s, (b) %s.\n",
			big, o.Baseline, xfmt(r.Ratio(g, mFloodA, b, mFloodA)), xfmt(r.Ratio(g, mFloodB, b, mFloodB)),
			f0(r.Med(b, mFloodALost)), f0(r.Med(b, mFloodBLost)), f0(r.Med(g, mFloodALost)), f0(r.Med(g, mFloodBLost)))
	}

	fmt.Fprintf(w, "\n#### Queues: 1 vs 2 (figure 6, UDP new flows/s, deep rule)\n\n")
	fmt.Fprintln(w, "| reader | 1 queue | 2 queues | ratio |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	for _, p := range [][2]string{{"nfqueue-bare", "nfqueue-bare-2q"}, {"bestbare", "bestbare-2q"}, {fmt.Sprintf("nfgate-%d", big), fmt.Sprintf("nfgate-%d-2q", big)}} {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", p[0], kfmt(r.Med(p[0], mUDPDeep)), kfmt(r.Med(p[1], mUDPDeep)),
			xfmt(r.Ratio(p[1], mUDPDeep, p[0], mUDPDeep)))
	}

	fmt.Fprintf(w, "\n#### Targets\n\n")
	fmt.Fprintln(w, "| target | measured | met |")
	fmt.Fprintln(w, "|---|---:|:---:|")
	g := fmt.Sprintf("nfgate-%d", big)
	target := func(name string, v float64, ok bool, unit string) {
		m := "no"
		if ok {
			m = "yes"
		}
		if math.IsNaN(v) {
			m = "–"
		}
		fmt.Fprintf(w, "| %s | %s%s | %s |\n", name, f2(v), unit, m)
	}
	small := fmt.Sprintf("nfgate-%d", sizes[0])
	for _, n := range []string{small, g} {
		v := r.Ratio(n, mUDPDeep, "bestbare", mUDPDeep)
		target(fmt.Sprintf("new flows/s, %s ≥ 0.9× bestbare", n), v, v >= 0.9, "×")
	}
	for _, n := range []string{small, g} {
		v := r.Ratio(n, mUDPDeep, "kernel", mUDPDeep)
		target(fmt.Sprintf("new flows/s, %s ≥ 0.6× kernel", n), v, v >= 0.6, "×")
	}
	v := r.Ratio(small, mUDPDeep, fmt.Sprintf("iptables-%d", sizes[0]), mUDPDeep)
	target(fmt.Sprintf("new flows/s, %s ≥ 0.7× iptables-%d", small, sizes[0]), v, v >= 0.7, "×")
	v = r.Ratio("nfgate-1000", mUDPDeep, "iptables-1000", mUDPDeep)
	target("new flows/s, nfgate-1000 ≥ 5× iptables-1000", v, v >= 5, "×")
	for _, n := range []string{small, g} {
		v := r.Med(n, mCPU)
		target(fmt.Sprintf("CPU per 1,000 new flows, %s ≤ 8 ms", n), v, v <= 8, " ms")
	}
	for _, n := range []string{small, g} {
		v := r.Diff(n, "kernel", mLatP50)
		target(fmt.Sprintf("added first-packet latency p50, %s ≤ 25 µs", n), v, v <= 25, " µs")
		v = r.Diff(n, "kernel", mLatP99)
		target(fmt.Sprintf("added first-packet latency p99, %s ≤ 100 µs", n), v, v <= 100, " µs")
	}
	v = median(r.get("reload-yaml", mReloadMS))
	target(fmt.Sprintf("reload of %d rules ≤ 300 ms (median; Calico YAML)", o.ReloadSize), v, v <= 300, " ms")
	v = median(r.get("reload-toml", mReloadMS))
	target(fmt.Sprintf("reload of %d rules ≤ 300 ms (median; nfgate TOML)", o.ReloadSize), v, v <= 300, " ms")
	target("no established flow lost during reloads", lost, lost == 0, " lost")
	v = r.Ratio(g, mTput, "kernel", mTput)
	target("established throughput ≥ 0.95× kernel", v, v >= 0.95, "×")
	v = r.Ratio(g, mFloodA, g, mUDPDeep)
	target("allowed new flows under a max-rate denied flood, one source with new source ports (a), ≥ 0.9× unloaded", v, v >= 0.9, "×")
	v = r.Ratio(g, mFloodB, g, mUDPDeep)
	target("allowed new flows under a max-rate spoofed-source denied flood (b) ≥ 0.7× unloaded", v, v >= 0.7, "×")
	v = maxOf(r.get(g, mFloodALost))
	target(fmt.Sprintf("allowed packets lost under flood (a), paced at %.0f/s, every run = 0", o.PacedRate), v, v == 0, "")
	v = maxOf(r.get(g, mFloodBLost))
	target(fmt.Sprintf("allowed packets lost under flood (b), paced at %.0f/s, every run = 0", o.PacedRate), v, v == 0, "")
	v = r.Ratio(g+"-2q", mUDPDeep, g, mUDPDeep)
	target("2 queues ≥ 1.7× 1 queue", v, v >= 1.7, "×")

	fmt.Fprintf(w, "\n#### Offered load (UDP generator, deep rule: packets/s sent vs delivered)\n\n")
	fmt.Fprintln(w, "| contender | sent/s | delivered/s | NFQUEUE drops per setup |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	for _, c := range r.Order {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", c.Name, kfmt(r.Med(c.Name, mUDPDeepSent)), kfmt(r.Med(c.Name, mUDPDeep)), f0(r.Med(c.Name, mQDrop)))
	}
	var notes []string
	for _, c := range r.Order {
		if l := r.Med(c.Name, mLatLost); l > 0 {
			notes = append(notes, fmt.Sprintf("%s lost %s latency probes", c.Name, f0(l)))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\nNotes: %s.\n", strings.Join(notes, "; "))
	}
	if s := r.Med(g, mStartMS); !math.IsNaN(s) {
		fmt.Fprintf(w, "\nnfgate start with %d rules (exec to first generation live): %s ms.\n", big, f0(s))
	}
	fmt.Fprintf(w, "\nLoad average (1, 5, 15 min) before: %s; after: %s. Duration %s.\n", r.LoadAv[0], r.LoadAv[1], r.End.Sub(r.Start).Round(1e9))
}
