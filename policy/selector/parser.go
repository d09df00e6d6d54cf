package selector

import (
	"fmt"
	"slices"
)

// parser is a recursive-descent parser over the token slice.
type parser struct {
	src    string
	toks   []token
	next   int  // index of the current token
	depth  int  // open parentheses
	global bool // saw global()
}

func (p *parser) peek() token { return p.toks[p.next] }

// advance consumes the current token and returns it. It never moves past EOF.
func (p *parser) advance() token {
	t := p.toks[p.next]
	if t.kind != tokEOF {
		p.next++
	}
	return t
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return &ParseError{Source: p.src, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// parseSelector parses a whole selector; an empty one is all().
func (p *parser) parseSelector() (node, error) {
	if p.peek().kind == tokEOF {
		return allNode{}, nil
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		if t.kind == tokRParen {
			return nil, p.errorf(t.pos, `unbalanced ")": no "(" to close`)
		}
		return nil, p.errorf(t.pos, `expected "&&", "||" or end of selector, found %s`, t.describe())
	}
	return n, nil
}

func (p *parser) parseOr() (node, error) {
	n, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tokOr {
		return n, nil
	}
	ops := []node{n}
	for p.peek().kind == tokOr {
		p.advance()
		n, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		ops = append(ops, n)
	}
	return orNode(ops), nil
}

func (p *parser) parseAnd() (node, error) {
	n, err := p.parseOperation()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tokAnd {
		return n, nil
	}
	ops := []node{n}
	for p.peek().kind == tokAnd {
		p.advance()
		n, err := p.parseOperation()
		if err != nil {
			return nil, err
		}
		ops = append(ops, n)
	}
	return andNode(ops), nil
}

// parseOperation parses { "!" } primary.
func (p *parser) parseOperation() (node, error) {
	negate := false
	for p.peek().kind == tokNot {
		p.advance()
		negate = !negate
	}
	n, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	if negate {
		return not(n), nil
	}
	return n, nil
}

func (p *parser) parsePrimary() (node, error) {
	t := p.advance()
	switch t.kind {
	case tokHas:
		return hasNode{label: t.val}, nil
	case tokAll:
		return allNode{}, nil
	case tokGlobal:
		p.global = true
		return globalNode{}, nil
	case tokLabel:
		return p.parseComparison(t)
	case tokLParen:
		if p.depth == MaxDepth {
			return nil, p.errorf(t.pos, "parentheses nested more than %d deep", MaxDepth)
		}
		p.depth++
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		p.depth--
		if c := p.advance(); c.kind != tokRParen {
			return nil, p.errorf(c.pos, `expected ")" to close the "(" at position %d, found %s`, t.pos, c.describe())
		}
		return n, nil
	case tokEOF:
		return nil, p.errorf(t.pos, "unexpected end of selector: expected a label, has(), all(), global(), \"!\" or \"(\"")
	}
	return nil, p.errorf(t.pos, "expected a label, has(), all(), global(), \"!\" or \"(\", found %s", t.describe())
}

// parseComparison parses what follows a label: an operator and a string or
// a set.
func (p *parser) parseComparison(label token) (node, error) {
	op := p.advance()
	switch op.kind {
	case tokEq, tokNe, tokContains, tokStartsWith, tokEndsWith:
		v := p.advance()
		if v.kind != tokString {
			return nil, p.errorf(v.pos, "expected a quoted string after %q, found %s", fixedText[op.kind], v.describe())
		}
		return compareNode{op: compareOps[op.kind], label: label.val, value: v.val}, nil
	case tokIn, tokNotIn:
		return p.parseSet(label, op)
	case tokLParen:
		switch label.val {
		case "has", "all", "global":
			return nil, p.errorf(op.pos, "no space allowed between %s and \"(\"", label.val)
		}
	}
	return nil, p.errorf(op.pos, "expected an operator after label %q (==, !=, contains, starts with, ends with, in, not in), found %s",
		label.val, op.describe())
}

var compareOps = [...]compareOp{
	tokEq:         opEq,
	tokNe:         opNe,
	tokContains:   opContains,
	tokStartsWith: opStartsWith,
	tokEndsWith:   opEndsWith,
}

// parseSet parses "{" [ STRING { "," STRING } [ "," ] ] "}" after in / not in.
func (p *parser) parseSet(label, op token) (node, error) {
	if t := p.advance(); t.kind != tokLBrace {
		return nil, p.errorf(t.pos, "expected a set such as {\"a\", \"b\"} after %q, found %s", fixedText[op.kind], t.describe())
	}
	var values []string
	for {
		t := p.advance()
		if t.kind == tokRBrace {
			break
		}
		if t.kind != tokString {
			return nil, p.errorf(t.pos, `expected a quoted string or "}" in set, found %s`, t.describe())
		}
		values = append(values, t.val)
		t = p.advance()
		if t.kind == tokRBrace {
			break
		}
		if t.kind != tokComma {
			return nil, p.errorf(t.pos, `expected "," or "}" after set member, found %s`, t.describe())
		}
	}
	slices.Sort(values)
	values = slices.Compact(values)
	return setNode{label: label.val, values: values, negate: op.kind == tokNotIn}, nil
}
