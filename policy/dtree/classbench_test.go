package dtree_test

import (
	"os"
	"testing"

	"github.com/nfgate/nfgate/bench/classbench"
	"github.com/nfgate/nfgate/policy/dtree"
)

func TestClassBenchShape(t *testing.T) {
	if os.Getenv("DTREE_STATS") == "" {
		t.Skip("set DTREE_STATS=acl1_10k,... to print tree shapes")
	}
	for _, s := range []string{"acl1", "fw1", "ipc1"} {
		for _, z := range []string{"1k", "10k", "100k"} {
			set, err := classbench.Open(s, z)
			if err != nil {
				t.Fatal(err)
			}
			tr := dtree.Build(classbench.ToDTree(set.Rules))
			t.Logf("%s_%s: %s", s, z, tr.Stats())
		}
	}
}

func TestClassBenchCounts(t *testing.T) {
	if os.Getenv("DTREE_STATS") == "" {
		t.Skip("set DTREE_STATS=1 to print work per lookup")
	}
	for _, z := range []string{"10k", "100k"} {
		for _, s := range []string{"acl1", "fw1", "ipc1"} {
			set, err := classbench.Open(s, z)
			if err != nil {
				t.Fatal(err)
			}
			tr := dtree.Build(classbench.ToDTree(set.Rules))
			var p, n, e int
			for i := range set.Trace {
				k := classbench.Key(&set.Trace[i])
				a, b, c := tr.Counts(&k)
				p, n, e = p+a, n+b, e+c
			}
			f := float64(len(set.Trace))
			t.Logf("%s_%s: per lookup %.2f partitions, %.2f snodes, %.2f entries", s, z, float64(p)/f, float64(n)/f, float64(e)/f)
		}
	}
}
