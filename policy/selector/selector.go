// Package selector implements Calico's label selector language
// (libcalico-go/lib/selector): parsing with positioned errors and evaluation
// against a label map.
//
// The grammar, tokenizer quirks and evaluation rules are those of the
// reference semantics, section 7:
//
//	selector  := [ or_expr ]                 ; "" or all whitespace is all()
//	or_expr   := and_expr { "||" and_expr }  ; && binds tighter than ||
//	and_expr  := operation { "&&" operation }
//	operation := { "!" } primary             ; "!"s collapse by parity
//	primary   := has(LABEL) | all() | global() | "(" or_expr ")"
//	           | LABEL ("==" | "!=" | "contains" | "starts with" | "ends with") STRING
//	           | LABEL ("in" | "not in") "{" [ STRING { "," STRING } [ "," ] ] "}"
//
// Evaluation never allocates, so a Selector may be evaluated on a hot path.
//
// One deliberate difference from Calico: parentheses may nest at most
// MaxDepth deep, so that hostile input cannot exhaust the stack. Calico has
// no limit; no real selector comes near it.
package selector

import "fmt"

// MaxLabelLength is the longest label name a selector may use (Calico's
// tokenizer.MaxLabelLength).
const MaxLabelLength = 512

// MaxDepth is how deep parentheses may nest (an nfgate limit; see the
// package documentation).
const MaxDepth = 1000

// Selector is a parsed selector. It is immutable and safe for concurrent use.
type Selector struct {
	root      node
	canonical string
	global    bool // global() appears somewhere in the selector
}

// Labels is what a selector is evaluated against.
type Labels = map[string]string

// String returns the selector in canonical form: single spaces around
// operators, values in double quotes (single quotes if the value holds a
// double quote), set members sorted and de-duplicated, redundant parentheses
// and double negations removed, and nested && / || groups parenthesised.
// Parsing the canonical form yields an equivalent selector with the same
// canonical form. It differs from Calico's rendering in two ways: the
// outermost && / || group has no parentheses, and !(!x) is written x.
func (s *Selector) String() string { return s.canonical }

// Evaluate reports whether labels match the selector. It does not allocate.
func (s *Selector) Evaluate(labels Labels) bool { return s.root.eval(labels) }

// IsAll reports whether the selector is exactly all(): the empty or
// all-whitespace selector, all(), or all() inside parentheses or an even
// number of negations.
func (s *Selector) IsAll() bool {
	_, ok := s.root.(allNode)
	return ok
}

// UsesGlobal reports whether global() appears anywhere in the selector.
// Calico allows global() only in an EntityRule namespaceSelector.
func (s *Selector) UsesGlobal() bool { return s.global }

// IsGlobalOnly reports whether the selector is exactly global() (possibly in
// parentheses or under an even number of negations). A namespaceSelector that
// uses global() must be global-only: global() cannot be combined with other
// selectors.
func (s *Selector) IsGlobalOnly() bool {
	_, ok := s.root.(globalNode)
	return ok
}

// All returns the selector all(), which matches every label set.
func All() *Selector { return &Selector{root: allNode{}, canonical: "all()"} }

// Parse parses a selector. A syntax error is returned as a *ParseError.
func Parse(s string) (*Selector, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	p := parser{src: s, toks: toks}
	root, err := p.parseSelector()
	if err != nil {
		return nil, err
	}
	return &Selector{root: root, canonical: render(root), global: p.global}, nil
}

// MustParse is like Parse but panics on error. It is meant for selectors
// written into the program and tests, never for user input.
func MustParse(s string) *Selector {
	sel, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sel
}

// ParseError is a selector syntax error.
type ParseError struct {
	Source string // the selector as given
	Pos    int    // 0-based byte offset of the error in Source
	Msg    string // what is wrong, without the position
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("selector %q: at position %d: %s", e.Source, e.Pos, e.Msg)
}
