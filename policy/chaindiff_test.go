package policy

import (
	"math/rand/v2"
	"testing"
)

// lcsLen is the reference: the length of a longest common subsequence.
func lcsLen(a, b []int) int {
	dp := make([][]int, len(a)+1)
	for i := range dp {
		dp[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	return dp[0][0]
}

func TestAlignIsLCS(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for range 3000 {
		a := make([]int, r.IntN(14))
		b := make([]int, r.IntN(14))
		for i := range a {
			a[i] = r.IntN(4)
		}
		for i := range b {
			b[i] = r.IntN(4)
		}
		pairs, ok := align(len(a), len(b), func(i, j int) bool { return a[i] == b[j] }, 100)
		if !ok {
			t.Fatal("not aligned")
		}
		if len(pairs) != lcsLen(a, b) {
			t.Fatalf("%v %v: %d pairs, LCS %d", a, b, len(pairs), lcsLen(a, b))
		}
		for i, p := range pairs {
			if a[p[0]] != b[p[1]] || i > 0 && (p[0] <= pairs[i-1][0] || p[1] <= pairs[i-1][1]) {
				t.Fatalf("%v %v: bad pairs %v", a, b, pairs)
			}
		}
	}
	if _, ok := align(50, 50, func(i, j int) bool { return false }, 10); ok {
		t.Fatal("aligned past the edit bound")
	}
}
