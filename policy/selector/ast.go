package selector

import (
	"slices"
	"strings"
)

// node is one AST node. eval must not allocate.
type node interface {
	eval(Labels) bool
	// write appends the canonical form; nested && / || groups are
	// parenthesised unless top is set.
	write(b *strings.Builder, top bool)
}

// allNode is all(): it matches everything.
type allNode struct{}

func (allNode) eval(Labels) bool                 { return true }
func (allNode) write(b *strings.Builder, _ bool) { b.WriteString("all()") }

// globalNode is global(). As a label match it matches everything; it only
// changes scope when used as an EntityRule namespaceSelector.
type globalNode struct{}

func (globalNode) eval(Labels) bool                 { return true }
func (globalNode) write(b *strings.Builder, _ bool) { b.WriteString("global()") }

// hasNode is has(label): the label is present, whatever its value.
type hasNode struct{ label string }

func (n hasNode) eval(l Labels) bool {
	_, ok := l[n.label]
	return ok
}

func (n hasNode) write(b *strings.Builder, _ bool) {
	b.WriteString("has(")
	b.WriteString(n.label)
	b.WriteString(")")
}

type compareOp uint8

const (
	opEq compareOp = iota
	opNe
	opContains
	opStartsWith
	opEndsWith
)

var compareText = [...]string{
	opEq:         " == ",
	opNe:         " != ",
	opContains:   " contains ",
	opStartsWith: " starts with ",
	opEndsWith:   " ends with ",
}

// compareNode compares a label's value with a string. Only != matches an
// absent label; the others need the label present. Comparisons are byte-wise
// and case-sensitive; an empty operand of contains / starts with / ends with
// matches any present label.
type compareNode struct {
	op    compareOp
	label string
	value string
}

func (n compareNode) eval(l Labels) bool {
	v, ok := l[n.label]
	if !ok {
		return n.op == opNe
	}
	switch n.op {
	case opEq:
		return v == n.value
	case opNe:
		return v != n.value
	case opContains:
		return strings.Contains(v, n.value)
	case opStartsWith:
		return strings.HasPrefix(v, n.value)
	default: // opEndsWith
		return strings.HasSuffix(v, n.value)
	}
}

func (n compareNode) write(b *strings.Builder, _ bool) {
	b.WriteString(n.label)
	b.WriteString(compareText[n.op])
	writeString(b, n.value)
}

// setNode is label in {…} or, with negate, label not in {…}. values is
// sorted and free of duplicates. "in" needs the label present with a value in
// the set (an empty set matches nothing); "not in" is its exact negation, so
// it matches an absent label.
type setNode struct {
	label  string
	values []string
	negate bool
}

func (n setNode) eval(l Labels) bool {
	v, ok := l[n.label]
	if !ok {
		return n.negate
	}
	_, found := slices.BinarySearch(n.values, v)
	return found != n.negate
}

func (n setNode) write(b *strings.Builder, _ bool) {
	b.WriteString(n.label)
	if n.negate {
		b.WriteString(" not in {")
	} else {
		b.WriteString(" in {")
	}
	for i, v := range n.values {
		if i > 0 {
			b.WriteString(", ")
		}
		writeString(b, v)
	}
	b.WriteString("}")
}

// notNode negates its operand, which is never itself a notNode.
type notNode struct{ x node }

// not negates n, cancelling a double negation.
func not(n node) node {
	if inner, ok := n.(notNode); ok {
		return inner.x
	}
	return notNode{x: n}
}

func (n notNode) eval(l Labels) bool { return !n.x.eval(l) }

func (n notNode) write(b *strings.Builder, _ bool) {
	b.WriteString("!")
	n.x.write(b, false)
}

// andNode matches when every operand matches; it has at least two.
type andNode []node

func (n andNode) eval(l Labels) bool {
	for _, x := range n {
		if !x.eval(l) {
			return false
		}
	}
	return true
}

func (n andNode) write(b *strings.Builder, top bool) { writeGroup(b, n, " && ", top) }

// orNode matches when any operand matches; it has at least two.
type orNode []node

func (n orNode) eval(l Labels) bool {
	for _, x := range n {
		if x.eval(l) {
			return true
		}
	}
	return false
}

func (n orNode) write(b *strings.Builder, top bool) { writeGroup(b, n, " || ", top) }

func writeGroup(b *strings.Builder, ops []node, sep string, top bool) {
	if !top {
		b.WriteString("(")
	}
	for i, x := range ops {
		if i > 0 {
			b.WriteString(sep)
		}
		x.write(b, false)
	}
	if !top {
		b.WriteString(")")
	}
}

// writeString writes s quoted: in double quotes unless s holds one, then in
// single quotes. The language has no escapes, and a parsed string never holds
// both kinds of quote.
func writeString(b *strings.Builder, s string) {
	q := `"`
	if strings.Contains(s, `"`) {
		q = `'`
	}
	b.WriteString(q)
	b.WriteString(s)
	b.WriteString(q)
}

// quote returns s quoted as writeString would.
func quote(s string) string {
	var b strings.Builder
	writeString(&b, s)
	return b.String()
}

// render returns the canonical form of the tree rooted at n.
func render(n node) string {
	var b strings.Builder
	n.write(&b, true)
	return b.String()
}
