package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"

	"github.com/nfgate/nfgate/policy"
)

// The TOML and YAML decoders both produce a tree of nodes that carry their
// source position and field path; one converter (convert.go) validates that
// tree into the policy model, so both formats get the same checks and the
// same messages.

type kind uint8

const (
	kNull kind = iota
	kString
	kInt
	kFloat
	kBool
	kMap
	kList
	kOther // TOML datetimes, YAML timestamps and binaries
)

var kindNames = [...]string{"null", "string", "integer", "number", "boolean", "table", "list", "datetime"}

func (k kind) String() string { return kindNames[k] }

type node struct {
	kind kind
	b    bool
	idx  int32  // this node's index in up, a list (see fpath)
	s    string // kString; the source text for kOther
	i    int64
	f    float64
	kids []*node          // kMap: the fields, in source order (key names each)
	m    map[string]*node // kMap: kids by key, only for large tables (smallMap)
	list []*node
	pos  policy.Pos // the value (YAML) or the key/header (TOML)
	kpos policy.Pos // the key naming this node, when it has one
	// The field path, relative to the resource or document, is built only
	// when a diagnostic needs it (fpath): from the parent up and this
	// node's key or index in it, or, at a root (up == nil), path.
	up   *node
	key  string // the key naming this node in up, a table
	path string // a root's path
}

// fpath returns n's field path.
func (n *node) fpath() string {
	if n.up == nil {
		return n.path
	}
	if n.up.kind == kList {
		return n.up.fpath() + "[" + strconv.Itoa(int(n.idx)) + "]"
	}
	return joinPath(n.up.fpath(), n.key)
}

func (n *node) get(k string) *node {
	if n == nil {
		return nil
	}
	if n.m != nil {
		return n.m[k]
	}
	for _, c := range n.kids {
		if c.key == k {
			return c
		}
	}
	return nil
}

// smallMap is the most fields a table holds without an index: most tables
// are small, and a scan of a few keys beats a map (and its allocation).
const smallMap = 8

// addKid appends field c, called k, to table n, which has no field k yet.
func (n *node) addKid(k string, c *node) {
	c.up, c.key = n, k
	n.kids = append(n.kids, c)
	n.index()
}

// index keeps n.m in step with n.kids once the table is too large to scan.
func (n *node) index() {
	switch {
	case n.m != nil:
		c := n.kids[len(n.kids)-1]
		n.m[c.key] = c
	case len(n.kids) > smallMap:
		n.m = make(map[string]*node, 2*len(n.kids))
		for _, x := range n.kids {
			n.m[x.key] = x
		}
	}
}

// setPaths makes n's field path base, and its subtree's paths relative to it.
func setPaths(n *node, base string) {
	n.up, n.path = nil, base
}

func joinPath(base, k string) string {
	if base == "" {
		return k
	}
	return base + "." + k
}

// Limits that keep hostile input from exhausting the stack or memory.
const (
	maxDepth = 64
	maxNodes = 1 << 20
)

var errTooDeep = fmt.Errorf("nesting deeper than %d levels (nfgate's limit)", maxDepth)
var errTooBig = errors.New("document too large (after alias expansion)")

// posError is an error found while building the tree, at a position.
type posError struct {
	line, col int
	err       error
}

func (e *posError) Error() string { return e.err.Error() }

// at attaches the position of y to err unless it has one.
func at(err error, line, col int) error {
	var pe *posError
	if errors.As(err, &pe) {
		return err
	}
	return &posError{line, col, err}
}

// ---- YAML ----

type yamlBuilder struct {
	file  string
	count int
}

var yamlLineRe = regexp.MustCompile(`line (\d+)`)

// parseYAML splits a YAML stream into document trees. A syntax error stops
// the stream (yaml.v3 cannot resume) and is returned as a Diag.
func parseYAML(file string, data []byte) ([]*node, *Diag) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*node
	b := &yamlBuilder{file: file}
	for {
		var y yaml.Node
		err := dec.Decode(&y)
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			d := &Diag{File: file, Msg: err.Error()}
			if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
				d.Line, _ = strconv.Atoi(m[1])
			}
			return docs, d
		}
		if y.Kind == yaml.DocumentNode && len(y.Content) == 0 {
			continue
		}
		root := &y
		if y.Kind == yaml.DocumentNode {
			root = y.Content[0]
		}
		n, err := b.build(root, 0)
		if err != nil {
			d := &Diag{File: file, Line: y.Line, Col: y.Column, Msg: err.Error()}
			var pe *posError
			if errors.As(err, &pe) {
				d.Line, d.Col = pe.line, pe.col
			}
			return docs, d
		}
		if n.kind == kNull {
			continue // an empty document
		}
		setPaths(n, "")
		docs = append(docs, n)
	}
}

func (b *yamlBuilder) build(y *yaml.Node, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, at(errTooDeep, y.Line, y.Column)
	}
	if b.count++; b.count > maxNodes {
		return nil, at(errTooBig, y.Line, y.Column)
	}
	n := &node{pos: policy.Pos{File: b.file, Line: y.Line, Col: y.Column}}
	switch y.Kind {
	case yaml.AliasNode:
		if y.Alias == nil {
			return nil, errors.New("unknown alias")
		}
		a, err := b.build(y.Alias, depth+1)
		if err != nil {
			return nil, err
		}
		a.pos = n.pos
		return a, nil
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			n.kind = kNull
			return n, nil
		}
		return b.build(y.Content[0], depth+1)
	case yaml.MappingNode:
		n.kind = kMap
		n.kids = make([]*node, 0, len(y.Content)/2)
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := y.Content[i], y.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: mapping keys must be strings", k.Line)
			}
			if n.get(k.Value) != nil {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			c, err := b.build(v, depth+1)
			if err != nil {
				return nil, err
			}
			c.kpos = policy.Pos{File: b.file, Line: k.Line, Col: k.Column}
			n.addKid(k.Value, c)
		}
	case yaml.SequenceNode:
		n.kind = kList
		for i, e := range y.Content {
			c, err := b.build(e, depth+1)
			if err != nil {
				return nil, err
			}
			c.kpos = c.pos
			c.up, c.idx = n, int32(i)
			n.list = append(n.list, c)
		}
	case yaml.ScalarNode:
		n.s = y.Value
		switch y.ShortTag() {
		case "!!null":
			n.kind = kNull
		case "!!bool":
			n.kind = kBool
			switch y.Value {
			case "true":
				n.b = true
			case "false":
			default:
				if err := y.Decode(&n.b); err != nil {
					n.kind = kString
				}
			}
		case "!!int":
			n.kind = kInt
			if v, ok := plainDecimal(y.Value); ok {
				n.i = v
			} else if err := y.Decode(&n.i); err != nil {
				n.kind = kFloat // out of int64 range; reported as "not an integer"
				n.f = math.Inf(1)
			}
		case "!!float":
			n.kind = kFloat
			if err := y.Decode(&n.f); err != nil {
				n.kind = kString
			}
		case "!!str":
			n.kind = kString
		default:
			n.kind = kOther
		}
	default:
		return nil, fmt.Errorf("line %d: unsupported YAML node", y.Line)
	}
	return n, nil
}

// plainDecimal parses an integer written plainly in decimal (optional minus,
// no leading zero, at most 18 digits): what yaml.v3 would decode to the same
// value, without the cost of a Decode per number. Anything else (hex, octal,
// underscores, signs, large values) is left to yaml.v3.
func plainDecimal(s string) (int64, bool) {
	d := strings.TrimPrefix(s, "-")
	if d == "" || len(d) > 18 || d[0] == '0' && len(d) > 1 {
		return 0, false
	}
	var v int64
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if len(d) < len(s) {
		v = -v
	}
	return v, true
}

// ---- TOML ----

// parseTOML decodes a TOML file into a tree whose paths are the full key
// paths from the file's root. Positions come from scanTOMLPositions, since
// toml.MetaData keeps no position per array element.
func parseTOML(file string, data []byte) (*node, *Diag) {
	text := string(data)
	// The fast decoder takes the documents it is sure of; BurntSushi/toml
	// decodes the rest and words every syntax error (tomlfast.go).
	m, ok := fastTOML(data)
	if !ok {
		m = nil
		if _, err := toml.Decode(text, &m); err != nil {
			d := &Diag{File: file, Msg: err.Error()}
			var pe toml.ParseError
			if errors.As(err, &pe) {
				d.Line, d.Col, d.Msg = pe.Position.Line, pe.Position.Col, pe.Message
			}
			return nil, d
		}
	}
	tb := &tomlBuilder{idx: scanTOMLPositions(text), file: file}
	text = ""
	// build consumes m as it goes (see build), so the decoded map and the
	// tree are not both held in full.
	root, err := tb.build(m, 0, policy.Pos{File: file, Line: 1, Col: 1}, 0)
	if err != nil {
		d := &Diag{File: file, Line: 1, Col: 1, Msg: err.Error()}
		var pe *posError
		if errors.As(err, &pe) {
			d.Line, d.Col = pe.line, pe.col
		}
		return nil, d
	}
	setPaths(root, "")
	return root, nil
}

// tomlBuilder builds the tree of a decoded TOML document, following each
// value's key path in the position index as it descends.
type tomlBuilder struct {
	idx  *posIndex
	file string
}

// build builds the node for v, whose key path is index node at. It
// removes what it has built from v's maps and lists, so that the decoded
// document becomes garbage while the tree grows (a 10^5-rule file's map is
// about 190 MB, its tree as much again).
func (tb *tomlBuilder) build(v any, at int32, parent policy.Pos, depth int) (*node, error) {
	pos := parent
	if line, col, ok := tb.idx.at(at); ok {
		pos = policy.Pos{File: tb.file, Line: line, Col: col}
	}
	if depth > maxDepth {
		return nil, &posError{pos.Line, pos.Col, errTooDeep}
	}
	n := &node{pos: pos, kpos: pos}
	switch v := v.(type) {
	case string:
		n.kind, n.s = kString, v
	case int64:
		n.kind, n.i = kInt, v
	case float64:
		n.kind, n.f = kFloat, v
	case bool:
		n.kind, n.b = kBool, v
	case map[string]any:
		n.kind = kMap
		n.kids = make([]*node, 0, len(v))
		for k, x := range v {
			c, err := tb.build(x, tb.idx.key(at, k, false), pos, depth+1)
			if err != nil {
				return nil, err
			}
			c.up, c.key = n, k
			n.kids = append(n.kids, c)
			delete(v, k)
		}
		// Source order: by position, then by name.
		slices.SortFunc(n.kids, func(a, b *node) int {
			if a.pos.Line != b.pos.Line {
				return cmp.Compare(a.pos.Line, b.pos.Line)
			}
			if a.pos.Col != b.pos.Col {
				return cmp.Compare(a.pos.Col, b.pos.Col)
			}
			return strings.Compare(a.key, b.key)
		})
		if len(n.kids) > smallMap {
			n.m = make(map[string]*node, len(n.kids))
			for _, c := range n.kids {
				n.m[c.key] = c
			}
		}
	case []map[string]any:
		n.kind = kList
		n.list = make([]*node, 0, len(v))
		for i, x := range v {
			if err := tb.elem(n, x, at, i, pos, depth); err != nil {
				return nil, err
			}
			v[i] = nil
		}
	case []any:
		n.kind = kList
		n.list = make([]*node, 0, len(v))
		for i, x := range v {
			if err := tb.elem(n, x, at, i, pos, depth); err != nil {
				return nil, err
			}
			v[i] = nil
		}
	case time.Time, toml.Primitive:
		n.kind, n.s = kOther, fmt.Sprint(v)
	default:
		n.kind, n.s = kOther, fmt.Sprint(v)
	}
	return n, nil
}

// elem builds element i of list n, whose key path is index node at.
func (tb *tomlBuilder) elem(n *node, x any, at int32, i int, pos policy.Pos, depth int) error {
	c, err := tb.build(x, tb.idx.index(at, i, false), pos, depth+1)
	if err != nil {
		return err
	}
	c.up, c.idx = n, int32(i)
	n.list = append(n.list, c)
	return nil
}
