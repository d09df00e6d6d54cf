package selector

import (
	"fmt"
	"strings"
)

type tokKind uint8

const (
	tokEOF tokKind = iota
	tokLabel
	tokString
	tokLBrace
	tokRBrace
	tokComma
	tokEq
	tokNe
	tokIn
	tokNotIn
	tokContains
	tokStartsWith
	tokEndsWith
	tokNot
	tokAnd
	tokOr
	tokLParen
	tokRParen
	tokHas // val is the label
	tokAll
	tokGlobal
)

// token is one lexical token. val is the label name or the string's contents
// (a substring of the source); pos is the byte offset of the token's start.
type token struct {
	kind tokKind
	val  string
	pos  int
}

// describe names a token for an error message.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of selector"
	case tokLabel:
		return fmt.Sprintf("label %q", t.val)
	case tokString:
		return fmt.Sprintf("string %s", quote(t.val))
	case tokHas:
		return fmt.Sprintf("has(%s)", t.val)
	}
	return fmt.Sprintf("%q", fixedText[t.kind])
}

// fixedText is how a token without a value is written in canonical form.
var fixedText = [...]string{
	tokLBrace:     "{",
	tokRBrace:     "}",
	tokComma:      ",",
	tokEq:         "==",
	tokNe:         "!=",
	tokIn:         "in",
	tokNotIn:      "not in",
	tokContains:   "contains",
	tokStartsWith: "starts with",
	tokEndsWith:   "ends with",
	tokNot:        "!",
	tokAnd:        "&&",
	tokOr:         "||",
	tokLParen:     "(",
	tokRParen:     ")",
	tokAll:        "all()",
	tokGlobal:     "global()",
}

// tokenize splits src into tokens, ending with tokEOF. Like Calico, the whole
// input is tokenized before parsing, so a lexical error anywhere is reported
// in preference to a grammar error.
func tokenize(src string) ([]token, error) {
	lx := lexer{src: src}
	return lx.run()
}

type lexer struct {
	src  string
	i    int
	toks []token
}

func (lx *lexer) errorf(pos int, format string, args ...any) error {
	return &ParseError{Source: lx.src, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func (lx *lexer) emit(k tokKind, val string, pos int) {
	lx.toks = append(lx.toks, token{kind: k, val: val, pos: pos})
}

// skipSpace skips spaces and tabs, the only whitespace the language knows.
func (lx *lexer) skipSpace() {
	for lx.i < len(lx.src) && (lx.src[lx.i] == ' ' || lx.src[lx.i] == '\t') {
		lx.i++
	}
}

func (lx *lexer) rest() string { return lx.src[lx.i:] }

func (lx *lexer) run() ([]token, error) {
	for {
		lx.skipSpace()
		start := lx.i
		if start == len(lx.src) {
			lx.emit(tokEOF, "", start)
			return lx.toks, nil
		}
		afterLabel := len(lx.toks) > 0 && lx.toks[len(lx.toks)-1].kind == tokLabel
		c := lx.src[start]
		switch c {
		case '(', ')', '{', '}', ',':
			lx.emit(punctuation(c), "", start)
			lx.i++
		case '"', '\'':
			end := strings.IndexByte(lx.src[start+1:], c)
			if end < 0 {
				return nil, lx.errorf(start, "unterminated string: no closing %q", rune(c))
			}
			lx.emit(tokString, lx.src[start+1:start+1+end], start)
			lx.i = start + 1 + end + 1
		case '=':
			if !strings.HasPrefix(lx.rest(), "==") {
				return nil, lx.errorf(start, `expected "==", found a single "="`)
			}
			lx.emit(tokEq, "", start)
			lx.i += 2
		case '!':
			if strings.HasPrefix(lx.rest(), "!=") {
				lx.emit(tokNe, "", start)
				lx.i += 2
			} else {
				lx.emit(tokNot, "", start)
				lx.i++
			}
		case '&':
			if !strings.HasPrefix(lx.rest(), "&&") {
				return nil, lx.errorf(start, `expected "&&", found a single "&"`)
			}
			lx.emit(tokAnd, "", start)
			lx.i += 2
		case '|':
			if !strings.HasPrefix(lx.rest(), "||") {
				return nil, lx.errorf(start, `expected "||", found a single "|"`)
			}
			lx.emit(tokOr, "", start)
			lx.i += 2
		default:
			var err error
			switch {
			case afterLabel:
				err = lx.operator()
			case strings.HasPrefix(lx.rest(), "has("):
				err = lx.has()
			case strings.HasPrefix(lx.rest(), "all("):
				err = lx.emptyCall("all(", tokAll)
			case strings.HasPrefix(lx.rest(), "global("):
				err = lx.emptyCall("global(", tokGlobal)
			default:
				var label string
				if label, err = lx.label(); err == nil {
					lx.emit(tokLabel, label, start)
				}
			}
			if err != nil {
				return nil, err
			}
		}
	}
}

func punctuation(c byte) tokKind {
	switch c {
	case '(':
		return tokLParen
	case ')':
		return tokRParen
	case '{':
		return tokLBrace
	case '}':
		return tokRBrace
	}
	return tokComma
}

// operator lexes the word operator that must follow a label. Words are
// lowercase only and need a word boundary after them; "starts with",
// "ends with" and "not in" may be written with any spaces or tabs between
// the words, or none.
func (lx *lexer) operator() error {
	start := lx.i
	for _, op := range [...]struct {
		words []string
		kind  tokKind
	}{
		{[]string{"contains"}, tokContains},
		{[]string{"starts", "with"}, tokStartsWith},
		{[]string{"ends", "with"}, tokEndsWith},
		{[]string{"not", "in"}, tokNotIn},
		{[]string{"in"}, tokIn},
	} {
		if end, ok := matchWords(lx.src, start, op.words); ok {
			lx.emit(op.kind, "", start)
			lx.i = end
			return nil
		}
	}
	prev := lx.toks[len(lx.toks)-1].val
	return lx.errorf(start, "expected an operator after label %q (==, !=, contains, starts with, ends with, in, not in), found %q",
		prev, excerpt(lx.src[start:]))
}

// matchWords reports whether src[i:] starts with words separated by optional
// spaces and tabs, followed by a word boundary, and where the match ends.
func matchWords(src string, i int, words []string) (int, bool) {
	for n, w := range words {
		if !strings.HasPrefix(src[i:], w) {
			return 0, false
		}
		i += len(w)
		if n < len(words)-1 {
			for i < len(src) && (src[i] == ' ' || src[i] == '\t') {
				i++
			}
		}
	}
	if i < len(src) && isLabelChar(src[i]) {
		return 0, false
	}
	return i, true
}

// has lexes has( label ).
func (lx *lexer) has() error {
	start := lx.i
	lx.i += len("has(")
	lx.skipSpace()
	if lx.i == len(lx.src) || !isLabelChar(lx.src[lx.i]) {
		return lx.errorf(lx.i, "expected a label name inside has(), found %s", lx.describeHere())
	}
	label, err := lx.label()
	if err != nil {
		return err
	}
	lx.skipSpace()
	if lx.i == len(lx.src) || lx.src[lx.i] != ')' {
		return lx.errorf(lx.i, `expected ")" to close has(, found %s`, lx.describeHere())
	}
	lx.i++
	lx.emit(tokHas, label, start)
	return nil
}

// emptyCall lexes all( ) and global( ).
func (lx *lexer) emptyCall(open string, kind tokKind) error {
	start := lx.i
	lx.i += len(open)
	lx.skipSpace()
	if lx.i == len(lx.src) || lx.src[lx.i] != ')' {
		return lx.errorf(lx.i, `expected ")" to close %s, found %s`, open, lx.describeHere())
	}
	lx.i++
	lx.emit(kind, "", start)
	return nil
}

// label lexes a label name of 1 to MaxLabelLength characters.
func (lx *lexer) label() (string, error) {
	start := lx.i
	end := start
	for end < len(lx.src) && isLabelChar(lx.src[end]) {
		end++
	}
	switch {
	case end == start:
		return "", lx.errorf(start, "unexpected character %s", describeByte(lx.src[start]))
	case end-start > MaxLabelLength:
		return "", lx.errorf(start, "label is %d characters long; the limit is %d", end-start, MaxLabelLength)
	}
	lx.i = end
	return lx.src[start:end], nil
}

// describeHere names what is at the lexer's position, for an error message.
func (lx *lexer) describeHere() string {
	if lx.i == len(lx.src) {
		return "end of selector"
	}
	if isLabelChar(lx.src[lx.i]) || lx.src[lx.i] >= 0x80 {
		return fmt.Sprintf("%q", excerpt(lx.src[lx.i:]))
	}
	return describeByte(lx.src[lx.i])
}

func describeByte(c byte) string {
	switch {
	case c == '\n':
		return `newline (only spaces and tabs are whitespace)`
	case c == '\r':
		return `carriage return (only spaces and tabs are whitespace)`
	case c < 0x20 || c == 0x7f:
		return fmt.Sprintf("control character %q", c)
	case c >= 0x80:
		return fmt.Sprintf("non-ASCII byte 0x%02x", c)
	}
	return fmt.Sprintf("%q", c)
}

// excerpt returns the start of s for an error message: its leading label
// characters (at most 20), or else its first byte.
func excerpt(s string) string {
	end := 0
	for end < len(s) && end < 20 && isLabelChar(s[end]) {
		end++
	}
	if end == 0 && len(s) > 0 {
		end = 1
	}
	return s[:end]
}

// isLabelChar reports whether c may appear in a label name: [a-zA-Z0-9_./-].
func isLabelChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '.' || c == '/' || c == '-'
}
