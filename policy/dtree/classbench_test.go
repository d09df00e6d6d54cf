package dtree_test

import (
	"testing"

	"github.com/nfgate/nfgate/bench/classbench"
	"github.com/nfgate/nfgate/policy/dtree"
)

// BenchmarkClassBenchWork reports, for each ClassBench set, the tree's
// shape (logged) and the work per lookup over the set's trace: partitions
// visited, super-nodes read and leaf entries checked. A diagnostic for
// tuning the builder: `go test -run XXX -bench ClassBenchWork -v
// ./policy/dtree` (docs/performance.md has the lookup times).
func BenchmarkClassBenchWork(b *testing.B) {
	for _, z := range []string{"1k", "10k", "100k"} {
		for _, s := range []string{"acl1", "fw1", "ipc1"} {
			b.Run(s+"_"+z, func(b *testing.B) {
				set, err := classbench.Open(s, z)
				if err != nil {
					b.Fatal(err)
				}
				tr := dtree.Build(classbench.ToDTree(set.Rules))
				b.Logf("%s_%s: %s", s, z, tr.Stats())
				var p, n, e int
				for b.Loop() {
					p, n, e = 0, 0, 0
					for i := range set.Trace {
						k := classbench.Key(&set.Trace[i])
						x, y, w := tr.Counts(&k)
						p, n, e = p+x, n+y, e+w
					}
				}
				f := float64(len(set.Trace))
				b.ReportMetric(float64(p)/f, "partitions/lookup")
				b.ReportMetric(float64(n)/f, "snodes/lookup")
				b.ReportMetric(float64(e)/f, "entries/lookup")
			})
		}
	}
}
