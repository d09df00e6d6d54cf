package policy_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/nfgate/nfgate/bench/netbench"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

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
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
