package netbench_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/nfgate/nfgate/bench/netbench"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// benchLoad loads the netbench 10,000-rule policy (ten GlobalNetworkPolicies
// of 1000 rules), as Calico YAML manifests included from a TOML main file or
// as native TOML: the load half of a reload.
func benchLoad(b *testing.B, yaml bool) {
	topo := netbench.Topology{Node: "gw", ServerIf: "srv0", ServerIP: netbench.GWServerIP}
	path, err := netbench.WriteConfig(b.TempDir(), netbench.Policy(10000, 1), topo, yaml)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		ld, err := config.Load(path)
		if err != nil {
			b.Fatal(err)
		}
		if len(ld.Policy.Policies) != 10 {
			b.Fatalf("%d policies", len(ld.Policy.Policies))
		}
	}
	reportCPU(b, cpu)
}

func BenchmarkLoad10kYAML(b *testing.B) { benchLoad(b, true) }
func BenchmarkLoad10kTOML(b *testing.B) { benchLoad(b, false) }

// cpuTime is the process's user+system CPU time. On a shared machine it
// varies far less than wall time; it includes the GC's background work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU time per operation since start as cpu-ns/op.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkCompile10k compiles the netbench 10,000-rule policy (ten
// applyOnForward GlobalNetworkPolicies of 1000 rules): the compile half of a
// reload.
func BenchmarkCompile10k(b *testing.B) {
	topo := netbench.Topology{Node: "gw", ServerIf: "srv0", ServerIP: netbench.GWServerIP}
	path, err := netbench.WriteConfig(b.TempDir(), netbench.Policy(10000, 1), topo, false)
	if err != nil {
		b.Fatal(err)
	}
	ld, err := config.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if _, err := policy.Compile(ld.Policy); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user+system CPU time. On a shared machine it
// varies far less than wall time; it includes the GC's background work.

// live keeps the previous generation reachable, as the daemon does while
// it loads and compiles the next one (the garbage collector marks it).
var live *policy.Program

// benchReload is the daemon's CPU work for a reload of the 10,000-rule
// policy before the hooks: load (parse, validate) and compile, with the
// previous program still live.
func benchReload(b *testing.B, yaml bool) {
	topo := netbench.Topology{Node: "gw", ServerIf: "srv0", ServerIP: netbench.GWServerIP}
	path, err := netbench.WriteConfig(b.TempDir(), netbench.Policy(10000, 1), topo, yaml)
	if err != nil {
		b.Fatal(err)
	}
	ld, err := config.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	if live, err = policy.Compile(ld.Policy); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		ld, err := config.Load(path)
		if err != nil {
			b.Fatal(err)
		}
		p, err := policy.Compile(ld.Policy)
		if err != nil {
			b.Fatal(err)
		}
		live = p
	}
	reportCPU(b, cpu)
}

func BenchmarkReload10kYAML(b *testing.B) { benchReload(b, true) }
func BenchmarkReload10kTOML(b *testing.B) { benchReload(b, false) }
