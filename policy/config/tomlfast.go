package config

import (
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// fastTOML decodes a TOML document into the value BurntSushi/toml's Decode
// into a map[string]any gives (map[string]any, []map[string]any for arrays
// of tables, []any, string, int64, float64, bool), from go-toml's
// allocation-free parser: about a fifth of BurntSushi's time for a 10,000
// rule policy. It takes only documents it is sure of: anything else
// (a syntax or semantic error, datetimes, integers other than plain
// decimal, floats such as inf or 1_0.0, and table constructs TOML allows
// but that are rare in a configuration, such as a header extending a table
// made by dotted keys) makes it report false, and parseTOML decodes the
// document with BurntSushi/toml, whose messages are nfgate's diagnostics.
// So for any input, when fastTOML succeeds, Decode succeeds with the same
// value (FuzzFastTOML, TestFastTOMLAgrees).
func fastTOML(data []byte) (map[string]any, bool) {
	d := fastDoc{root: &ftab{m: map[string]any{}, kind: tabExplicit}}
	d.cur = d.root
	d.p.Reset(data)
	for d.p.NextExpression() {
		if !d.expr(d.p.Expression()) {
			return nil, false
		}
	}
	if d.p.Error() != nil {
		return nil, false
	}
	return d.root.finish(), true
}

// ftab is a table being decoded. Its map holds final values, except that
// tables are *ftab and arrays of tables *farr until finish.
type ftab struct {
	m    map[string]any
	kind uint8
}

// How a table came to be, which decides what may extend it later.
const (
	tabImplicit uint8 = iota // by a header's prefix ([a] of [a.b]): a header may define it once
	tabExplicit              // by its own header, or the root
	tabDotted                // by a dotted key (a.b = 1): more dotted keys of its table may extend it
	tabInline                // an inline table: complete, never extended
	tabElem                  // an element of an array of tables ([[a]])
)

// farr is an array of tables ([[a]]).
type farr struct{ elems []*ftab }

type fastDoc struct {
	p    unstable.Parser
	root *ftab
	cur  *ftab // the table key/value pairs go into
	keys []string
}

func (d *fastDoc) keyOf(n *unstable.Node) []string {
	d.keys = d.keys[:0]
	it := n.Key()
	for it.Next() {
		d.keys = append(d.keys, string(it.Node().Data))
	}
	return d.keys
}

func (d *fastDoc) expr(n *unstable.Node) bool {
	switch n.Kind {
	case unstable.KeyValue:
		return d.keyValue(d.cur, n, 0)
	case unstable.Table, unstable.ArrayTable:
		keys := d.keyOf(n)
		if len(keys) == 0 {
			return false
		}
		t := d.root
		for _, k := range keys[:len(keys)-1] {
			switch v := t.m[k].(type) {
			case nil:
				nt := &ftab{m: map[string]any{}, kind: tabImplicit}
				t.m[k] = nt
				t = nt
			case *ftab:
				if v.kind == tabInline || v.kind == tabDotted {
					return false // invalid, or valid but rare: BurntSushi decides
				}
				t = v
			case *farr:
				t = v.elems[len(v.elems)-1]
			default:
				return false
			}
		}
		last := keys[len(keys)-1]
		v := t.m[last]
		if n.Kind == unstable.Table {
			switch v := v.(type) {
			case nil:
				nt := &ftab{m: map[string]any{}, kind: tabExplicit}
				t.m[last] = nt
				d.cur = nt
			case *ftab:
				if v.kind != tabImplicit {
					return false
				}
				v.kind = tabExplicit
				d.cur = v
			default:
				return false
			}
			return true
		}
		elem := &ftab{m: map[string]any{}, kind: tabElem}
		switch v := v.(type) {
		case nil:
			t.m[last] = &farr{elems: []*ftab{elem}}
		case *farr:
			v.elems = append(v.elems, elem)
		default:
			return false
		}
		d.cur = elem
		return true
	}
	return false
}

// keyValue sets a key/value pair in t, creating the tables of a dotted key.
func (d *fastDoc) keyValue(t *ftab, n *unstable.Node, depth int) bool {
	it := n.Key()
	if !it.Next() {
		return false
	}
	k := string(it.Node().Data)
	for it.Next() {
		switch v := t.m[k].(type) {
		case nil:
			nt := &ftab{m: map[string]any{}, kind: tabDotted}
			t.m[k] = nt
			t = nt
		case *ftab:
			if v.kind != tabDotted {
				return false
			}
			t = v
		default:
			return false
		}
		k = string(it.Node().Data)
	}
	if _, dup := t.m[k]; dup {
		return false
	}
	v, ok := d.value(n.Value(), depth)
	if !ok {
		return false
	}
	t.m[k] = v
	return true
}

func (d *fastDoc) value(n *unstable.Node, depth int) (any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	switch n.Kind {
	case unstable.String:
		return string(n.Data), true
	case unstable.Bool:
		return n.Data[0] == 't', true
	case unstable.Integer:
		if !plainInt(n.Data) {
			return nil, false
		}
		i, err := strconv.ParseInt(string(n.Data), 10, 64)
		return i, err == nil
	case unstable.Float:
		if !plainFloat(n.Data) {
			return nil, false
		}
		f, err := strconv.ParseFloat(string(n.Data), 64)
		return f, err == nil
	case unstable.Array:
		a := []any{}
		it := n.Children()
		for it.Next() {
			v, ok := d.value(it.Node(), depth+1)
			if !ok {
				return nil, false
			}
			if t, ok := v.(*ftab); ok {
				v = t.finish()
			}
			a = append(a, v)
		}
		return a, true
	case unstable.InlineTable:
		t := &ftab{m: map[string]any{}, kind: tabDotted}
		it := n.Children()
		for it.Next() {
			if !d.keyValue(t, it.Node(), depth+1) {
				return nil, false
			}
		}
		t.kind = tabInline
		return t, true
	}
	return nil, false // datetimes: BurntSushi's values
}

// finish turns t into the map Decode gives, in place.
func (t *ftab) finish() map[string]any {
	for k, v := range t.m {
		switch v := v.(type) {
		case *ftab:
			t.m[k] = v.finish()
		case *farr:
			a := make([]map[string]any, len(v.elems))
			for i, e := range v.elems {
				a[i] = e.finish()
			}
			t.m[k] = a
		}
	}
	return t.m
}

// plainInt reports whether b is a decimal integer without underscores:
// [+-]?(0|[1-9][0-9]*).
func plainInt(b []byte) bool {
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		b = b[1:]
	}
	if len(b) == 0 || b[0] == '0' && len(b) > 1 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// plainFloat reports whether b is a float without underscores, inf or nan:
// [+-]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? with a fraction or an
// exponent.
func plainFloat(b []byte) bool {
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		b = b[1:]
	}
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || b[0] == '0' && i > 1 {
		return false
	}
	frac, exp := false, false
	if i < len(b) && b[i] == '.' {
		j := i + 1
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == i+1 {
			return false
		}
		i, frac = j, true
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		j := i + 1
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := j
		for k < len(b) && b[k] >= '0' && b[k] <= '9' {
			k++
		}
		if k == j {
			return false
		}
		i, exp = k, true
	}
	return i == len(b) && (frac || exp)
}
