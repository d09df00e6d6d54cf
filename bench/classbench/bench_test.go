package classbench

import (
	"testing"

	"github.com/nfgate/nfgate/policy/dtree"
)

// BenchmarkClassBench times tree lookups over each set's whole trace, with
// synthetic sets when the data is absent. ns/op is per lookup.
func BenchmarkClassBench(b *testing.B) {
	for _, size := range Sizes {
		for _, name := range Names {
			b.Run(name+"_"+size, func(b *testing.B) {
				set, err := Open(name, size)
				if err != nil {
					b.Fatal(err)
				}
				tree := dtree.Build(ToDTree(set.Rules))
				keys := Keys(set.Trace)
				b.ReportAllocs()
				b.ResetTimer()
				i := 0
				for b.Loop() {
					if got := tree.Lookup(&keys[i], 0); int(got)+1 != set.Trace[i].Expected {
						b.Fatalf("packet %d: rule %d, trace expects %d", i+1, got+1, set.Trace[i].Expected)
					}
					if i++; i == len(keys) {
						i = 0
					}
				}
			})
		}
	}
}

// BenchmarkBuild times compiling each set.
func BenchmarkBuild(b *testing.B) {
	for _, size := range Sizes {
		for _, name := range Names {
			b.Run(name+"_"+size, func(b *testing.B) {
				set, err := Open(name, size)
				if err != nil {
					b.Fatal(err)
				}
				rules := ToDTree(set.Rules)
				b.ReportAllocs()
				for b.Loop() {
					dtree.Build(rules)
				}
			})
		}
	}
}
