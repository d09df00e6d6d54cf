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
