package selector

import "testing"

func TestPrefixLabels(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "all()"},
		{"   ", "all()"},
		{"all()", "all()"},
		{"all( )", "all()"},
		{"team == 'a'", `pcns.team == "a"`},
		{"!has(team)", "! has(pcns.team)"},
		{"has( team )", "has(pcns.team)"},
		{"a in {'x', \"y\"} && b not in {}", `pcns.a in { "x" , "y" } && pcns.b not in { }`},
		{"a startswith 'all()'", `pcns.a starts with "all()"`},
		{`a == 'say "all()"'`, `pcns.a == 'say "all()"'`},
		{"(global())", "( global() )"},
		{"a contains 'x' || b endswith 'y'", `pcns.a contains "x" || pcns.b ends with "y"`},
	} {
		got, err := PrefixLabels(c.in, "pcns.")
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
		// The rewritten text parses, and means the original over prefixed labels.
		s, err := Parse(got)
		if err != nil {
			t.Errorf("%q -> %q does not parse: %v", c.in, got, err)
			continue
		}
		orig := MustParse(c.in)
		for _, l := range []Labels{{}, {"team": "a"}, {"a": "x"}, {"b": "y", "a": "all()"}} {
			pl := Labels{}
			for k, v := range l {
				pl["pcns."+k] = v
			}
			if orig.Evaluate(l) != s.Evaluate(pl) {
				t.Errorf("%q -> %q: differs on %v", c.in, got, l)
			}
		}
	}
	if _, err := PrefixLabels("a ==", "pcns."); err == nil {
		t.Error("a syntax error must be reported")
	}
}

func TestIsGlobalToken(t *testing.T) {
	for in, want := range map[string]bool{
		"global()": true, " global( ) ": true, "(global())": false, "!global()": false,
		"global() && has(a)": false, "all()": false, "global(": false,
	} {
		if got := IsGlobalToken(in); got != want {
			t.Errorf("%q: got %v, want %v", in, got, want)
		}
	}
}
