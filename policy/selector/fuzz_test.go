package selector

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that errors are *ParseErrors
// pointing inside the input, and that an accepted selector's canonical form
// re-parses to the same canonical form and evaluates the same.
func FuzzParse(f *testing.F) {
	for _, s := range roundTripSelectors {
		f.Add(s)
	}
	for _, s := range []string{
		`has (a)`, `a = "x"`, `a & b`, `a | b`, "a\n", `"x`, `a containsx "v"`,
		`a in {"x",,}`, `(((a == "x")`, `!!!!!global()`, `has(` + strings.Repeat("k", 513) + `)`,
		`a starts  with'x'`, `a not	in{}`, `all( )||global( )`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if _, err := Parse(in); err != nil {
			pe, ok := err.(*ParseError)
			if !ok {
				t.Fatalf("Parse(%q) error %T is not a *ParseError", in, err)
			}
			if pe.Pos < 0 || pe.Pos > len(in) || pe.Source != in {
				t.Fatalf("Parse(%q) error position %d outside the input", in, pe.Pos)
			}
			return
		}
		checkRoundTrip(t, in)
	})
}
