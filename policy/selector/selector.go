// Package selector implements Calico's label selector language
// (libcalico-go/lib/selector): parsing with positioned errors and evaluation
// against a label map.
//
// This file holds the package's public contract; the parser lives beside it.
package selector

// Selector is a parsed selector. It is immutable and safe for concurrent use.
type Selector struct {
	root   node
	source string
}

// Labels is what a selector is evaluated against.
type Labels = map[string]string

// String returns the selector in canonical form.
func (s *Selector) String() string { return s.source }

// Evaluate reports whether labels match the selector.
func (s *Selector) Evaluate(labels Labels) bool { return s.root.eval(labels) }

// node is one AST node.
type node interface {
	eval(Labels) bool
}

type allNode struct{}

func (allNode) eval(Labels) bool { return true }

// All returns the selector all().
func All() *Selector { return &Selector{root: allNode{}, source: "all()"} }

// Parse parses a selector. STUB: replaced by the full parser.
func Parse(s string) (*Selector, error) { return All(), nil }
