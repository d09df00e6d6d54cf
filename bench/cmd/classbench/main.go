// Command classbench measures the dtree classifier on ClassBench rule sets
// and prints a markdown table: lookup time and allocations, build time,
// memory, and the speedup over a linear scan. It checks every tree answer
// against the trace's expected first match and against the linear scan.
//
//	go run ./bench/cmd/classbench [-sets acl1,fw1,ipc1] [-sizes 1k,10k,100k]
//
// The data comes from $NFGATE_CLASSBENCH or ../shared/classbench; without
// it, synthetic sets of the same kind are generated (marked in the table).
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/bench/classbench"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/dtree"
	"github.com/nfgate/nfgate/policy/oracle"
)

func main() {
	sets := flag.String("sets", strings.Join(classbench.Names, ","), "comma-separated rule sets")
	sizes := flag.String("sizes", strings.Join(classbench.Sizes, ","), "comma-separated sizes")
	dur := flag.Duration("time", time.Second, "length of one timing window of tree lookups")
	repeat := flag.Int("repeat", 3, "timing windows per set; the fastest is reported, as other load on the machine only slows a window down")
	linDur := flag.Duration("lintime", 2*time.Second, "time bound on the linear scan per set (it samples the trace when slower)")
	level := flag.String("level", "both", "what to measure: tree (the dtree classifier on the raw rules), policy (the set as Calico policy through policy.Program against the in-order oracle), or both")
	flag.Parse()

	if d, ok := classbench.Dir(); ok {
		fmt.Printf("data: %s\n\n", d)
	} else {
		fmt.Printf("data: none found (set %s); using synthetic sets\n\n", classbench.EnvDir)
	}
	bad := false
	start := time.Now()
	each := func(f func(*classbench.Set) (string, bool)) {
		for _, size := range strings.Split(*sizes, ",") {
			for _, name := range strings.Split(*sets, ",") {
				set, err := classbench.Open(name, size)
				if err != nil {
					fmt.Fprintln(os.Stderr, "classbench:", err)
					os.Exit(2)
				}
				row, ok := f(set)
				fmt.Println(row)
				bad = bad || !ok
			}
		}
	}
	if *level == "tree" || *level == "both" {
		fmt.Println("### The classifier (policy/dtree) on the raw rule sets")
		fmt.Println()
		fmt.Println("| set | size | rules | ns/lookup | allocs/lookup | build wall / CPU | memory (bytes) | B/rule | linear ns/lookup | speedup | checked | mismatches |")
		fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
		each(func(set *classbench.Set) (string, bool) { return measure(set, *dur, *repeat, *linDur) })
		fmt.Println()
	}
	if *level == "policy" || *level == "both" {
		fmt.Println("### Each set as Calico policy: policy.Program.Forward against the in-order oracle")
		fmt.Println()
		fmt.Println("| set | size | Calico rules | ns/lookup | allocs/lookup | compile wall / CPU | memory (bytes) | oracle ns/lookup | speedup | checked | mismatches |")
		fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
		each(func(set *classbench.Set) (string, bool) { return measurePolicy(set, *dur, *repeat, *linDur) })
		fmt.Println()
	}
	fmt.Printf("\ntotal %.1fs, GOMAXPROCS %d, %s; lookups timed in %s, one thread, best of %d windows\n", time.Since(start).Seconds(), runtime.GOMAXPROCS(0), runtime.Version(), clockName, *repeat)
	if bad {
		fmt.Fprintln(os.Stderr, "classbench: MISMATCHES found")
		os.Exit(1)
	}
}

var sink int32

func measure(set *classbench.Set, dur time.Duration, repeat int, linDur time.Duration) (string, bool) {
	rules := classbench.ToDTree(set.Rules)
	keys := classbench.Keys(set.Trace)

	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0, cpu0 := time.Now(), processCPU()
	tree := dtree.Build(rules)
	build, buildCPU := time.Since(t0), processCPU()-cpu0
	runtime.GC()
	runtime.ReadMemStats(&m1)
	mem := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	runtime.KeepAlive(rules) // its memory is not the tree's

	// Correctness: every packet against the trace's expected answer.
	mismatches := 0
	for i := range keys {
		if got := tree.Lookup(&keys[i], 0) + 1; int(got) != set.Trace[i].Expected {
			if mismatches < 5 {
				fmt.Fprintf(os.Stderr, "%s_%s packet %d: tree rule %d, trace expects %d\n", set.Name, set.Size, i+1, got, set.Trace[i].Expected)
			}
			mismatches++
		}
	}

	// Tree lookups: in each window, whole-trace passes until dur has
	// elapsed; the fastest window counts.
	clk := newCPUClock()
	defer clk.stop()
	treeNs := math.Inf(1)
	for range max(repeat, 1) {
		passes := 0
		c0 := clk.now()
		for clk.now()-c0 < dur || passes == 0 {
			for i := range keys {
				sink += tree.Lookup(&keys[i], 0)
			}
			passes++
		}
		treeNs = min(treeNs, float64(clk.now()-c0)/float64(passes*len(keys)))
	}
	allocs := testing.AllocsPerRun(1, func() {
		for i := range keys {
			sink += tree.Lookup(&keys[i], 0)
		}
	}) / float64(len(keys))

	// Linear scan: one pass, in chunks, stopping after linDur (a sample of
	// the trace for big sets); its answers are checked against the tree's.
	lin := classbench.NewLinear(set.Rules)
	done, linMis := 0, 0
	var linTime time.Duration
	for done < len(keys) && (linTime < linDur || done == 0) {
		end := min(done+256, len(keys))
		c0 := clk.now()
		for i := done; i < end; i++ {
			sink += lin.Lookup(&keys[i])
		}
		linTime += clk.now() - c0
		for i := done; i < end; i++ {
			if lin.Lookup(&keys[i]) != tree.Lookup(&keys[i], 0) {
				linMis++
			}
		}
		done = end
	}
	linNs := float64(linTime.Nanoseconds()) / float64(done)
	runtime.KeepAlive(tree)

	size := set.Size
	if set.Source == "synthetic" {
		size += " (synthetic)"
	}
	checked := fmt.Sprintf("%d trace, %d linear", len(keys), done)
	row := fmt.Sprintf("| %s | %s | %d | %.0f | %.2f | %s / %s | %d | %.0f | %.0f | %.0fx | %s | %d |",
		set.Name, size, len(rules), treeNs, allocs, build.Round(time.Millisecond), buildCPU.Round(time.Millisecond), mem,
		float64(mem)/float64(max(len(rules), 1)), linNs, linNs/treeNs, checked, mismatches+linMis)
	return row, mismatches+linMis == 0
}

// measurePolicy times the set as Calico policy: one forward-stage decision per
// trace packet through the compiled Program (what the engine calls), against
// policy/oracle, the plain in-order evaluator. Every compiled answer that the
// oracle time bound allows is checked against the oracle's.
func measurePolicy(set *classbench.Set, dur time.Duration, repeat int, oracleDur time.Duration) (string, bool) {
	ps := classbench.ToPolicy(set.Name, set.Rules)
	pkts := classbench.PolicyPackets(set.Trace)
	calicoRules := len(ps.Origin)

	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0, cpu0 := time.Now(), processCPU()
	prog, err := policy.Compile(ps.Config)
	build, buildCPU := time.Since(t0), processCPU()-cpu0
	if err != nil {
		fmt.Fprintln(os.Stderr, "classbench:", err)
		os.Exit(2)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	mem := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)

	out := classbench.EndpointID
	clk := newCPUClock()
	defer clk.stop()
	ns := math.Inf(1)
	for range max(repeat, 1) {
		passes := 0
		c0 := clk.now()
		for clk.now()-c0 < dur || passes == 0 {
			for i := range pkts {
				psink += int(prog.Forward(policy.NoEndpoint, out, false, &pkts[i]).Verdict)
			}
			passes++
		}
		ns = min(ns, float64(clk.now()-c0)/float64(passes*len(pkts)))
	}
	allocs := testing.AllocsPerRun(1, func() {
		for i := range pkts {
			psink += int(prog.Forward(policy.NoEndpoint, out, false, &pkts[i]).Verdict)
		}
	}) / float64(len(pkts))

	orc := oracle.New(prog)
	done, mis := 0, 0
	var oTime time.Duration
	for done < len(pkts) && (oTime < oracleDur || done == 0) {
		end := min(done+64, len(pkts))
		c0 := clk.now()
		for i := done; i < end; i++ {
			psink += int(orc.Forward(policy.NoEndpoint, out, false, &pkts[i]).Verdict)
		}
		oTime += clk.now() - c0
		for i := done; i < end; i++ {
			a, b := prog.Forward(policy.NoEndpoint, out, false, &pkts[i]), orc.Forward(policy.NoEndpoint, out, false, &pkts[i])
			if a.Verdict != b.Verdict || a.Reason != b.Reason || a.Policy != b.Policy || a.Rule != b.Rule {
				if mis < 5 {
					fmt.Fprintf(os.Stderr, "%s_%s packet %d: compiled %+v, oracle %+v\n", set.Name, set.Size, i+1, a, b)
				}
				mis++
			}
		}
		done = end
	}
	oNs := float64(oTime.Nanoseconds()) / float64(done)
	runtime.KeepAlive(prog)

	size := set.Size
	if set.Source == "synthetic" {
		size += " (synthetic)"
	}
	if ps.Skipped > 0 {
		size += fmt.Sprintf(" (%d rules not expressible)", ps.Skipped)
	}
	row := fmt.Sprintf("| %s | %s | %d | %.0f | %.2f | %s / %s | %d | %.0f | %.0fx | %d trace, %d oracle | %d |",
		set.Name, size, calicoRules, ns, allocs, build.Round(time.Millisecond), buildCPU.Round(time.Millisecond), mem,
		oNs, oNs/ns, len(pkts), done, mis)
	return row, mis == 0
}

var psink int
