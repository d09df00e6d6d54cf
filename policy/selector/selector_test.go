package selector

import (
	"errors"
	"strings"
	"testing"
)

// lbl builds a label map from alternating keys and values.
func lbl(kv ...string) Labels {
	m := Labels{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

var (
	label512 = strings.Repeat("k", 512)
	label513 = strings.Repeat("k", 513)
)

// TestParseCanonical: every accepted form, and the canonical form it renders as.
func TestParseCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		// Empty and trivial selectors.
		{``, `all()`},
		{" \t ", `all()`},
		{`all()`, `all()`},
		{` all( ) `, `all()`},
		{"all(\t)", `all()`},
		{`(all())`, `all()`},
		{`!!all()`, `all()`},
		{`!all()`, `!all()`},
		{`global()`, `global()`},
		{`global( )`, `global()`},
		{`has(a)`, `has(a)`},
		{`has( a )`, `has(a)`},
		{"has(\ta\t)", `has(a)`},
		{`has(projectcalico.org/namespace)`, `has(projectcalico.org/namespace)`},
		{`has(A-b_c.d/E9)`, `has(A-b_c.d/E9)`},
		// Comparisons and quoting.
		{`a == "b"`, `a == "b"`},
		{`a == 'b'`, `a == "b"`},
		{`a=="b"`, `a == "b"`},
		{`a != 'b'`, `a != "b"`},
		{`a!='"'`, `a != '"'`},
		{`a == "'"`, `a == "'"`},
		{`a == '"'`, `a == '"'`},
		{`a == ""`, `a == ""`},
		{`a == "x y\tz"`, `a == "x y\tz"`},
		{"a == \"line\nbreak\"", "a == \"line\nbreak\""},
		{`a == "&& || ! ( ) { } , has( all() =="`, `a == "&& || ! ( ) { } , has( all() =="`},
		{`a == "é"`, `a == "é"`},
		{`a contains "b"`, `a contains "b"`},
		{`a contains"b"`, `a contains "b"`},
		{`a contains'"'`, `a contains '"'`},
		{`a starts with "b"`, `a starts with "b"`},
		{`a startswith "b"`, `a starts with "b"`},
		{"a starts \t with \"b\"", `a starts with "b"`},
		{`a ends with "b"`, `a ends with "b"`},
		{`a endswith "'"`, `a ends with "'"`},
		{`a ends with"b"`, `a ends with "b"`},
		// Sets: sorted, de-duplicated, trailing comma allowed, may be empty.
		{`a in {"b"}`, `a in {"b"}`},
		{`a in {"d", "a", "b"}`, `a in {"a", "b", "d"}`},
		{`a in {"z", "z", "x", 'y', "x", "a"}`, `a in {"a", "x", "y", "z"}`},
		{`a in {"b",}`, `a in {"b"}`},
		{`a in {}`, `a in {}`},
		{`a in{"b"}`, `a in {"b"}`},
		{`a in {"'", '"'}`, `a in {'"', "'"}`},
		{`a not in {"b", "c"}`, `a not in {"b", "c"}`},
		{`a notin {"b"}`, `a not in {"b"}`},
		{"a not \t in {}", `a not in {}`},
		{`a not in{"b",}`, `a not in {"b"}`},
		// Labels: any of [a-zA-Z0-9_./-], up to 512 characters; keywords are labels elsewhere.
		{`contains == "x"`, `contains == "x"`},
		{`in in {"x"}`, `in in {"x"}`},
		{`not not in {"x"}`, `not not in {"x"}`},
		{`has == "x"`, `has == "x"`},
		{`all == "x"`, `all == "x"`},
		{`global == "x"`, `global == "x"`},
		{`-./_ == "x"`, `-./_ == "x"`},
		{`0 == "x"`, `0 == "x"`},
		{label512 + ` == "x"`, label512 + ` == "x"`},
		{`has(` + label512 + `)`, `has(` + label512 + `)`},
		// Negation: any number of "!", by parity; binds to the next operation.
		{`!has(a)`, `!has(a)`},
		{`! has(a)`, `!has(a)`},
		{`!!has(a)`, `has(a)`},
		{`!!!has(a)`, `!has(a)`},
		{`!! ! has(a)`, `!has(a)`},
		{`!(!has(a))`, `has(a)`},
		{`!a == "b"`, `!a == "b"`},
		{`!a in {"b"}`, `!a in {"b"}`},
		{`!a == "x" && b == "y"`, `!a == "x" && b == "y"`},
		{`!(a == "x" && b == "y")`, `!(a == "x" && b == "y")`},
		// && binds tighter than ||; groups nest in parentheses.
		{`has(a) && b == "x"`, `has(a) && b == "x"`},
		{`has(a)&&has(b)&&has(c)`, `has(a) && has(b) && has(c)`},
		{`has(a)||has(b)`, `has(a) || has(b)`},
		{`has(a) || has(b) && has(c)`, `has(a) || (has(b) && has(c))`},
		{`has(a) && has(b) || has(c)`, `(has(a) && has(b)) || has(c)`},
		{`(has(a) || has(b)) && has(c)`, `(has(a) || has(b)) && has(c)`},
		{`((has(a)))`, `has(a)`},
		{`has(a) && (has(b) && has(c))`, `has(a) && (has(b) && has(c))`},
		{`! (has( b)||! has(a ))`, `!(has(b) || !has(a))`},
		{`! (a == "b"&&! c != "d")`, `!(a == "b" && !c != "d")`},
		{`has(a) && global()`, `has(a) && global()`},
	}
	for _, tt := range tests {
		sel, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := sel.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestParseErrors: every rejected form, with the byte offset the error points at.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		pos  int
		want string // substring of the message
	}{
		// Tokenizer: characters and operators.
		{`a = "x"`, 2, `expected "==", found a single "="`},
		{`a =`, 2, `expected "=="`},
		{`has(a) & has(b)`, 7, `expected "&&", found a single "&"`},
		{`has(a) | has(b)`, 7, `expected "||", found a single "|"`},
		{`foo == "bar" &`, 13, `expected "&&"`},
		{`foo == "bar" |`, 13, `expected "||"`},
		{`%`, 0, `unexpected character '%'`},
		{`a == "b" && %`, 12, `unexpected character '%'`},
		{`a == "b" || %`, 12, `unexpected character '%'`},
		{`has(a) && é == "x"`, 10, `non-ASCII byte 0xc3`},
		{"has(a)\n", 6, `newline`},
		{"has(a)\r\n", 6, `carriage return`},
		{"\nhas(a)", 0, `newline`},
		{"has(a)\v", 6, `control character`},
		{"has(a) &&\nhas(b)", 9, `newline`},
		// Tokenizer: strings.
		{`"FOO`, 0, `unterminated string: no closing '"'`},
		{`"FOO'`, 0, `unterminated string`},
		{`'FOO`, 0, `unterminated string: no closing '\''`},
		{`a == "b`, 5, `unterminated string`},
		{`a == 'b"`, 5, `unterminated string`},
		{`a in {"b", "c}`, 11, `unterminated string`},
		// Tokenizer: word operators after a label.
		{`a b`, 2, `expected an operator after label "a"`},
		{`a IN {"x"}`, 2, `found "IN"`},
		{`a Contains "x"`, 2, `found "Contains"`},
		{`a containsx "x"`, 2, `found "containsx"`},
		{`a contains_ "x"`, 2, `expected an operator after label "a"`},
		{`a starts "x"`, 2, `expected an operator after label "a"`},
		{`a starts`, 2, `expected an operator after label "a"`},
		{`a starts withx "x"`, 2, `expected an operator after label "a"`},
		{`a ends "x"`, 2, `expected an operator after label "a"`},
		{`a not {"x"}`, 2, `expected an operator after label "a"`},
		{`a not inx {"x"}`, 2, `expected an operator after label "a"`},
		{`a inx {"x"}`, 2, `found "inx"`},
		{`a in_ {"x"}`, 2, `expected an operator after label "a"`},
		{`a %`, 2, `found "%"`},
		{`a == "x" && b has(c)`, 14, `expected an operator after label "b"`},
		// Tokenizer: has(), all(), global().
		{`has()`, 4, `expected a label name inside has(), found ')'`},
		{`has( )`, 5, `expected a label name inside has()`},
		{`has(`, 4, `expected a label name inside has(), found end of selector`},
		{`has(%)`, 4, `expected a label name inside has(), found '%'`},
		{`has(a`, 5, `expected ")" to close has(, found end of selector`},
		{`has(a b)`, 6, `expected ")" to close has(, found "b"`},
		{`has(a,b)`, 5, `expected ")" to close has(, found ','`},
		{`has("a")`, 4, `expected a label name inside has()`},
		{`all(`, 4, `expected ")" to close all(`},
		{`all(x)`, 4, `expected ")" to close all(, found "x"`},
		{`global(x)`, 7, `expected ")" to close global(, found "x"`},
		{`global(`, 7, `expected ")" to close global(`},
		// Label length.
		{label513 + ` == "x"`, 0, `label is 513 characters long; the limit is 512`},
		{`has(a) && ` + label513 + ` == "x"`, 10, `label is 513 characters long`},
		{`has(` + label513 + `)`, 4, `label is 513 characters long`},
		// Parser: calls need "(" right after the name.
		{`has (a)`, 4, `no space allowed between has and "("`},
		{`all ()`, 4, `no space allowed between all and "("`},
		{`global ()`, 7, `no space allowed between global and "("`},
		{`HAS(a)`, 3, `in, not in), found "("`},
		// Parser: operands.
		{`b == b`, 5, `expected a quoted string after "==", found label "b"`},
		{`b != b`, 5, `expected a quoted string after "!="`},
		{`b contains b`, 11, `expected a quoted string after "contains"`},
		{`b starts with b`, 14, `expected a quoted string after "starts with"`},
		{`b ends with b`, 12, `expected a quoted string after "ends with"`},
		{`a ==`, 4, `expected a quoted string after "==", found end of selector`},
		{`a == ("x")`, 5, `expected a quoted string after "==", found "("`},
		{`'b1' == b`, 0, `expected a label, has(), all(), global(), "!" or "(", found string "b1"`},
		{`b`, 1, `expected an operator after label "b" (==, !=, contains, starts with, ends with, in, not in), found end of selector`},
		{`a `, 2, `expected an operator after label "a"`},
		{`a "x"`, 2, `expected an operator after label "a"`},
		{`a !has(b)`, 2, `in, not in), found "!"`},
		// Parser: sets.
		{`foo in ""`, 7, `expected a set such as {"a", "b"} after "in", found string ""`},
		{`foo not in "x"`, 11, `after "not in"`},
		{`foo in`, 6, `expected a set`},
		{`foo in {`, 8, `expected a quoted string or "}" in set, found end of selector`},
		{`foo in {"", ||`, 12, `expected a quoted string or "}" in set, found "||"`},
		{`a in {,}`, 6, `expected a quoted string or "}" in set, found ","`},
		{`a in {"x",,}`, 10, `expected a quoted string or "}" in set, found ","`},
		{`a in {"x" "y"}`, 10, `expected "," or "}" after set member, found string "y"`},
		{`a in {"x"`, 9, `expected "," or "}" after set member, found end of selector`},
		{`a in {x}`, 6, `expected a quoted string or "}" in set, found label "x"`},
		// Parser: negation, && and ||, parentheses.
		{`!`, 1, `unexpected end of selector`},
		{`!!`, 2, `unexpected end of selector`},
		{`foo != ||`, 7, `expected a quoted string after "!=", found "||"`},
		{`has(foo) &&`, 11, `unexpected end of selector`},
		{`has(foo) ||`, 11, `unexpected end of selector`},
		{`&& has(a)`, 0, `found "&&"`},
		{`has(a) && && has(b)`, 10, `found "&&"`},
		{`has(a) || || has(b)`, 10, `found "||"`},
		{`has(a) has(b)`, 7, `expected "&&", "||" or end of selector, found has(b)`},
		{`a == "x" b == "y"`, 9, `expected "&&", "||" or end of selector, found label "b"`},
		{`has(a) !has(b)`, 7, `found "!"`},
		{`(`, 1, `unexpected end of selector`},
		{`(a == "foo"`, 11, `expected ")" to close the "(" at position 0, found end of selector`},
		{`((has(a)) && has(b)`, 19, `expected ")" to close the "(" at position 0`},
		{`(has(a) has(b))`, 8, `expected ")" to close the "(" at position 0, found has(b)`},
		{`)`, 0, `expected a label, has(), all(), global(), "!" or "(", found ")"`},
		{`()`, 1, `found ")"`},
		{`has(a))`, 6, `unbalanced ")"`},
		{`has(a) && ()`, 11, `found ")"`},
		{`{"a"}`, 0, `found "{"`},
		{`, has(a)`, 0, `found ","`},
		{`all() all()`, 6, `expected "&&", "||" or end of selector, found "all()"`},
		// Depth limit.
		{strings.Repeat("(", MaxDepth+1) + "all()" + strings.Repeat(")", MaxDepth+1), MaxDepth, `nested more than 1000 deep`},
	}
	for _, tt := range tests {
		sel, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %q, want error at %d containing %q", tt.in, sel, tt.pos, tt.want)
			continue
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error %T is not a *ParseError: %v", tt.in, err, err)
			continue
		}
		if pe.Pos != tt.pos || !strings.Contains(pe.Msg, tt.want) || pe.Source != tt.in {
			t.Errorf("Parse(%q) error = (pos %d) %q\nwant (pos %d) containing %q", tt.in, pe.Pos, pe.Msg, tt.pos, tt.want)
		}
	}
}

func TestParseErrorString(t *testing.T) {
	_, err := Parse(`has(a) & b`)
	want := `selector "has(a) & b": at position 7: expected "&&", found a single "&"`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
	_, err = Parse("a == \"x\"\n")
	want = `selector "a == \"x\"\n": at position 8: unexpected character newline (only spaces and tabs are whitespace)`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
}

// TestEvaluate: what each operator matches (§7 evaluation rules).
func TestEvaluate(t *testing.T) {
	tests := []struct {
		sel    string
		labels Labels
		want   bool
	}{
		// all(), global(), empty.
		{``, nil, true},
		{``, lbl("a", "b"), true},
		{`all()`, lbl(), true},
		{`!all()`, lbl(), false},
		{`!all()`, lbl("a", "b"), false},
		{`global()`, lbl("a", "b"), true},
		{`!global()`, lbl(), false},
		// has().
		{`has(a)`, lbl("a", "b"), true},
		{`has(a)`, lbl("a", ""), true},
		{`has(a)`, lbl("b", "a"), false},
		{`has(a)`, nil, false},
		{`has(A)`, lbl("a", "x"), false},
		{`!has(a)`, lbl("b", "b"), true},
		{`!has(a)`, lbl("a", "b"), false},
		// ==: present and equal; case-sensitive.
		{`a == "b"`, lbl("a", "b"), true},
		{`a == "b"`, lbl("a", "b", "c", "d"), true},
		{`a == "b"`, lbl("a", "c"), false},
		{`a == "b"`, lbl("a", "B"), false},
		{`a == "b"`, lbl("A", "b"), false},
		{`a == "b"`, lbl("c", "b"), false},
		{`a == "b"`, nil, false},
		{`a == ""`, lbl("a", ""), true},
		{`a == ""`, lbl(), false},
		{`a == '"'`, lbl("a", `"`), true},
		// !=: absent or different.
		{`a != "b"`, lbl("a", "a"), true},
		{`a != "b"`, lbl(), true},
		{`a != "b"`, nil, true},
		{`a != "b"`, lbl("a", "b"), false},
		{`a != "b"`, lbl("a", "B"), true},
		{`a != ""`, lbl("a", ""), false},
		{`a != ""`, lbl(), true},
		{`!a == "b"`, lbl(), true},
		// contains / starts with / ends with: present and byte-wise match.
		{`a contains "a"`, lbl("a", "bab"), true},
		{`a contains "a"`, lbl("a", "a"), true},
		{`a contains "a"`, lbl("a", "b"), false},
		{`a contains "a"`, lbl("a", "A"), false},
		{`a contains "a"`, lbl("b", "aaa"), false},
		{`a contains "a"`, lbl(), false},
		{`a contains ""`, lbl("a", ""), true},
		{`a contains ""`, lbl("a", "x"), true},
		{`a contains ""`, lbl(), false},
		{`a starts with "a"`, lbl("a", "abb"), true},
		{`a starts with "a"`, lbl("a", "baa"), false},
		{`a starts with "a"`, lbl("b", "aaa"), false},
		{`a starts with "ab"`, lbl("a", "a"), false},
		{`a starts with ""`, lbl("a", ""), true},
		{`a starts with ""`, lbl(), false},
		{`a ends with "a"`, lbl("a", "bba"), true},
		{`a ends with "a"`, lbl("a", "aab"), false},
		{`a ends with "a"`, lbl("b", "aaa"), false},
		{`a ends with "é"`, lbl("a", "café"), true},
		{`a ends with ""`, lbl("a", "x"), true},
		{`a ends with ""`, lbl(), false},
		{`!a contains "x"`, lbl(), true},
		// in: present and a member; empty set matches nothing.
		{`a in {"a"}`, lbl("a", "a"), true},
		{`a in {"a", "b"}`, lbl("a", "b"), true},
		{`a in {"a", "b"}`, lbl("a", "c"), false},
		{`a in {"a", "b"}`, lbl(), false},
		{`a in {"'", '"', "c"}`, lbl("a", `"`), true},
		{`a in {"'", '"', "c"}`, lbl("a", `'`), true},
		{`a in {"'", '"', "c"}`, lbl("a", "e"), false},
		{`a in {""}`, lbl("a", ""), true},
		{`a in {""}`, lbl(), false},
		{`a in {}`, lbl("a", ""), false},
		{`a in {}`, lbl("a", "x"), false},
		{`a in {}`, lbl(), false},
		{`a in {"A"}`, lbl("a", "a"), false},
		{`!a in {"a"}`, lbl("a", "b"), true},
		// not in: absent or not a member.
		{`a not in {"d", "e"}`, lbl("a", "a"), true},
		{`a not in {"d", "e"}`, lbl("a", "d"), false},
		{`a not in {"d", "e"}`, lbl(), true},
		{`a not in {}`, lbl("a", "x"), true},
		{`a not in {}`, lbl(), true},
		{`a not in {"'", '"', "c"}`, lbl("a", `'`), false},
		// Negation by parity.
		{`!!has(b)`, lbl("a", "b"), false},
		{`!!!has(a)`, lbl("a", "b"), false},
		{`! !!has(a)`, lbl("a", "b"), false},
		{`!(!has(a))`, lbl("a", "b"), true},
		// && and ||, precedence and parentheses.
		{`a == "b" && c == "d"`, lbl("a", "b", "c", "d"), true},
		{`a == "b" && c == "d"`, lbl("a", "b", "c", "e"), false},
		{`a == "b" && c == "d"`, lbl("a", "b"), false},
		{`a == "b" || c == "d"`, lbl("c", "d"), true},
		{`a == "b" || c == "d"`, lbl("a", "e", "c", "e"), false},
		{`a != 'a1' || b != 'b1'`, lbl("a", "a1", "b", "b1"), false},
		{`! a == 'a1' || ! b == 'b1'`, lbl("a", "a1", "b", "b1"), false},
		{`has(a) && !has(b)`, lbl("a", "a"), true},
		{`!(!has(a) || has(b))`, lbl("a", "a"), true},
		{`has(a) || has(b) && has(c)`, lbl("a", ""), true},    // a || (b && c)
		{`(has(a) || has(b)) && has(c)`, lbl("a", ""), false}, // parentheses override
		{`has(a) && has(b) || has(c)`, lbl("c", ""), true},    // (a && b) || c
		{`has(a) && (has(b) || has(c))`, lbl("c", ""), false}, // parentheses override
		{`!has(a) && has(b)`, lbl("b", ""), true},             // ! binds to one operation
		{`!(has(a) && has(b))`, lbl("b", ""), true},           // ... or one group
		{`!has(a) || has(b)`, lbl("a", ""), false},            //
		{`has(a) && global()`, lbl("a", "x"), true},           // global() is true as a match
		{`role == "gw" && zone in {"a", "b"}`, lbl("role", "gw", "zone", "b"), true},
	}
	for _, tt := range tests {
		sel, err := Parse(tt.sel)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.sel, err)
			continue
		}
		if got := sel.Evaluate(tt.labels); got != tt.want {
			t.Errorf("%q.Evaluate(%v) = %v, want %v", tt.sel, tt.labels, got, tt.want)
		}
		// The canonical form must evaluate the same.
		again, err := Parse(sel.String())
		if err != nil {
			t.Errorf("Parse(%q) (canonical form of %q): %v", sel.String(), tt.sel, err)
			continue
		}
		if got := again.Evaluate(tt.labels); got != tt.want {
			t.Errorf("%q (canonical %q).Evaluate(%v) = %v, want %v", tt.sel, sel, tt.labels, got, tt.want)
		}
	}
}

func TestPredicates(t *testing.T) {
	tests := []struct {
		sel                        string
		isAll, usesGlobal, onlyGlb bool
	}{
		{``, true, false, false},
		{`  `, true, false, false},
		{`all()`, true, false, false},
		{`(all())`, true, false, false},
		{`!!all()`, true, false, false},
		{`!all()`, false, false, false},
		{`all() && all()`, false, false, false},
		{`has(a)`, false, false, false},
		{`global()`, false, true, true},
		{` ( global( ) ) `, false, true, true},
		{`!!global()`, false, true, true},
		{`!global()`, false, true, false},
		{`global() && has(a)`, false, true, false},
		{`has(a) || global()`, false, true, false},
		{`global() && global()`, false, true, false},
		{`(has(a) || (global()))`, false, true, false},
		{`global == "x"`, false, false, false},
		{`a == "global()"`, false, false, false},
	}
	for _, tt := range tests {
		sel, err := Parse(tt.sel)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.sel, err)
			continue
		}
		if got := sel.IsAll(); got != tt.isAll {
			t.Errorf("%q.IsAll() = %v, want %v", tt.sel, got, tt.isAll)
		}
		if got := sel.UsesGlobal(); got != tt.usesGlobal {
			t.Errorf("%q.UsesGlobal() = %v, want %v", tt.sel, got, tt.usesGlobal)
		}
		if got := sel.IsGlobalOnly(); got != tt.onlyGlb {
			t.Errorf("%q.IsGlobalOnly() = %v, want %v", tt.sel, got, tt.onlyGlb)
		}
	}
	if a := All(); !a.IsAll() || a.String() != "all()" || !a.Evaluate(nil) || a.UsesGlobal() {
		t.Errorf("All() = %q, IsAll %v, UsesGlobal %v", a, a.IsAll(), a.UsesGlobal())
	}
}

func TestMustParse(t *testing.T) {
	if got := MustParse(`has(a)`).String(); got != "has(a)" {
		t.Errorf("MustParse = %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("MustParse(bad) did not panic")
		}
	}()
	MustParse(`has(`)
}

// roundTripSelectors are parsed, rendered and re-parsed in TestRoundTrip.
var roundTripSelectors = []string{
	``,
	`!all()`,
	`global()`,
	`has(a) && b == "x"`,
	`a == '"' || b != "'" || c contains '"q"' || d starts with "" || e ends with "z"`,
	`a in {"z", "'", '"', ""} && b not in {} && c in {}`,
	`!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))`,
	`!!(a == "1" || (b == "2" && (c == "3" || !(d == "4"))))`,
	`((a == "1") && (b == "2")) && c == "3" || d == "4" && !(e == "5" || f == "6")`,
	"a == \"tab\there\" && b == 'new\nline'",
	`a notin {"x",} && b startswith "y" && c endswith "z" && d contains"w"`,
}

// TestRoundTrip: Parse(s.String()) renders identically and evaluates the same.
func TestRoundTrip(t *testing.T) {
	for _, in := range roundTripSelectors {
		checkRoundTrip(t, in)
	}
}

// checkRoundTrip checks that in, if it parses, has a canonical form that is
// a fixed point and that evaluates like in on label sets built from the
// labels and values in the selector.
func checkRoundTrip(t *testing.T, in string) {
	t.Helper()
	sel, err := Parse(in)
	if err != nil {
		if _, ok := err.(*ParseError); !ok {
			t.Fatalf("Parse(%q) error %T is not a *ParseError", in, err)
		}
		return
	}
	canon := sel.String()
	again, err := Parse(canon)
	if err != nil {
		t.Fatalf("Parse(%q) (canonical form of %q): %v", canon, in, err)
	}
	if again.String() != canon {
		t.Fatalf("canonical form of %q is %q, which renders as %q", in, canon, again.String())
	}
	if again.IsAll() != sel.IsAll() || again.UsesGlobal() != sel.UsesGlobal() || again.IsGlobalOnly() != sel.IsGlobalOnly() {
		t.Fatalf("predicates of %q and its canonical form %q differ", in, canon)
	}
	for _, labels := range labelSets(sel.root) {
		if a, b := sel.Evaluate(labels), again.Evaluate(labels); a != b {
			t.Fatalf("%q.Evaluate(%v) = %v but canonical %q gives %v", in, labels, a, canon, b)
		}
	}
}

// labelSets returns label maps that exercise the selector: every label
// absent, then each label in turn set to each interesting value, then a few
// mixed assignments.
func labelSets(root node) []Labels {
	vals := map[string][]string{}
	var walk func(node)
	walk = func(n node) {
		switch n := n.(type) {
		case hasNode:
			vals[n.label] = append(vals[n.label], "", "v")
		case compareNode:
			vals[n.label] = append(vals[n.label], n.value, n.value+"x", "x"+n.value, "")
		case setNode:
			vals[n.label] = append(vals[n.label], n.values...)
			vals[n.label] = append(vals[n.label], "other")
		case notNode:
			walk(n.x)
		case andNode:
			for _, x := range n {
				walk(x)
			}
		case orNode:
			for _, x := range n {
				walk(x)
			}
		}
	}
	walk(root)
	sets := []Labels{nil, {}}
	all := Labels{}
	for k, vs := range vals {
		for _, v := range vs {
			sets = append(sets, Labels{k: v})
		}
		all[k] = vs[0]
	}
	sets = append(sets, all)
	// Mixed: label i takes its (round+i)th value, for a few rounds.
	for round := range 8 {
		m, i := Labels{}, 0
		for k, vs := range vals {
			if (round+i)%3 != 0 {
				m[k] = vs[(round+i)%len(vs)]
			}
			i++
		}
		sets = append(sets, m)
	}
	return sets
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	sel := MustParse(`role == "gateway" && zone in {"a", "b", "c"} && !has(quarantine) && ` +
		`(site starts with "eu-" || site ends with "-lab" || name contains "edge") && tier != "x" && env not in {"dev"}`)
	labels := lbl("role", "gateway", "zone", "b", "site", "eu-west", "name", "edge1", "env", "prod")
	if !sel.Evaluate(labels) {
		t.Fatal("selector does not match the test labels")
	}
	if n := testing.AllocsPerRun(100, func() { sel.Evaluate(labels) }); n != 0 {
		t.Errorf("Evaluate allocates %v times per run, want 0", n)
	}
}

func BenchmarkEvaluate(b *testing.B) {
	sel := MustParse(`role == "gateway" && zone in {"a", "b", "c"} && !has(quarantine) && ` +
		`(site starts with "eu-" || name contains "edge")`)
	labels := lbl("role", "gateway", "zone", "b", "site", "eu-west", "name", "edge1", "env", "prod")
	b.ReportAllocs()
	for b.Loop() {
		sel.Evaluate(labels)
	}
}

func BenchmarkParse(b *testing.B) {
	const s = `role == "gateway" && zone in {"a", "b", "c"} && !has(quarantine) && (site starts with "eu-" || name contains "edge")`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}
