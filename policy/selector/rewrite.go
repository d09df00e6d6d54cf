package selector

import "strings"

// PrefixLabels returns src with prefix put in front of every label name, as
// Calico's PrefixVisitor does before it ANDs a namespaceSelector
// (prefix "pcns.") or a service account selector ("pcsa.") into an endpoint
// selector (libcalico-go updateprocessors). The result is the selector's
// tokens written out one by one, so that every all() and global() call, and
// every string value, appears in it exactly as in Calico's rendering: Calico
// then rewrites the text with plain string replacement, and that replacement
// must meet the same substrings here. An empty selector is written all(), as
// Calico renders it.
func PrefixLabels(src, prefix string) (string, error) {
	toks, err := tokenize(src)
	if err != nil {
		return "", err
	}
	if _, err := (&parser{src: src, toks: toks}).parseSelector(); err != nil {
		return "", err
	}
	if len(toks) == 1 {
		return "all()", nil
	}
	var b strings.Builder
	for i, t := range toks {
		if t.kind == tokEOF {
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		switch t.kind {
		case tokLabel:
			b.WriteString(prefix)
			b.WriteString(t.val)
		case tokHas:
			b.WriteString("has(")
			b.WriteString(prefix)
			b.WriteString(t.val)
			b.WriteByte(')')
		case tokString:
			writeString(&b, t.val)
		default:
			b.WriteString(fixedText[t.kind])
		}
	}
	return b.String(), nil
}

// IsGlobalToken reports whether src is the single token global() and
// nothing else (spaces aside). Calico's validator checks a namespaceSelector
// that mentions global( this way: no parentheses or negations around it.
func IsGlobalToken(src string) bool {
	toks, err := tokenize(src)
	return err == nil && len(toks) == 2 && toks[0].kind == tokGlobal
}
