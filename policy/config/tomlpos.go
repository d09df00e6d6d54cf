package config

import (
	"math"
	"strconv"
	"strings"
)

// scanTOMLPositions maps every key path of an (already syntax-checked) TOML
// document to the line and column where it is written. Paths have the form
// `a.b[2].c`: a key, a table, an element of an array or of an array of
// tables. Values inside arrays get their element's position; keys of inline
// tables get their key's. The scanner is lenient and never fails: on input
// it does not understand it stops, and the tree falls back to the nearest
// known ancestor's position.
func scanTOMLPositions(src string) *posIndex {
	// About one path per key, table header and array element.
	n := strings.Count(src, "=") + strings.Count(src, "[") + strings.Count(src, ",")
	s := &tomlScanner{cursor: cursor[string]{src: src, line: 1, col: 1}, idx: newPosIndex(n + 1)}
	s.run()
	return s.idx
}

// posIndex holds positions by key path. Paths are the strings described at
// scanTOMLPositions, but stored as a trie of their tokens, so that neither
// the scanner nor the tree builder has to build or hash whole paths: a path
// splits before every '.' and '[' into tokens, and two paths are the same
// string exactly when they have the same tokens. (A quoted key may contain
// '.' or '['; it then spans several tokens, and collides with a nested path
// exactly as the strings do.) Node 0 is the empty path.
type posIndex struct {
	nodes []tnode
	big   map[tokKey]int32 // children of nodes with more than smallMap of them
	arr   map[int32]int    // node -> elements seen of the array of tables there
}

// tnode is a trie node: its token, its position ({0, 0} when none), and its
// children as a list through first and next (0 ends it: the root is nobody's
// child), or in big once there are more than smallMap of them.
type tnode struct {
	pos         [2]int32
	tok         int32
	s           string
	first, next int32
	nkids       int32
}

// tokKey is a token under node up. A token "[n]", n written as strconv.Itoa
// writes it, has tok n; otherwise tok says how the token starts (tokDot,
// tokBracket, or tokBare for a path's first token when it starts with
// neither) and s is the rest of it.
type tokKey struct {
	up  int32
	tok int32
	s   string
}

const (
	tokDot     = -1
	tokBracket = -2
	tokBare    = -3
)

// noNode is the node of a path that is in no trie (nor are its extensions).
const noNode int32 = -1

func newPosIndex(capacity int) *posIndex {
	return &posIndex{nodes: make([]tnode, 1, capacity), big: map[tokKey]int32{}, arr: map[int32]int{}}
}

// step returns the child of id for token k, adding it when add.
func (x *posIndex) step(k tokKey, add bool) int32 {
	if k.up == noNode {
		return noNode
	}
	if x.nodes[k.up].nkids > smallMap {
		if c, ok := x.big[k]; ok {
			return c
		}
	} else {
		for c := x.nodes[k.up].first; c != 0; c = x.nodes[c].next {
			if n := &x.nodes[c]; n.tok == k.tok && n.s == k.s {
				return c
			}
		}
	}
	if !add {
		return noNode
	}
	c := int32(len(x.nodes))
	x.nodes = append(x.nodes, tnode{tok: k.tok, s: k.s})
	up := &x.nodes[k.up]
	x.nodes[c].next, up.first = up.first, c
	up.nkids++
	switch {
	case up.nkids == smallMap+1:
		for d := up.first; d != 0; d = x.nodes[d].next {
			x.big[tokKey{k.up, x.nodes[d].tok, x.nodes[d].s}] = d
		}
	case up.nkids > smallMap:
		x.big[k] = c
	}
	return c
}

// key returns the node of joinPath(path(id), seg).
func (x *posIndex) key(id int32, seg string, add bool) int32 {
	t := seg
	var sep byte
	if id != 0 {
		sep = '.' // the token text is "." + t
	} else if seg == "" {
		return id
	}
	if strings.IndexAny(seg, ".[") < 0 {
		tok := int32(tokDot)
		if sep == 0 {
			tok = tokBare
		}
		return x.step(tokKey{up: id, tok: tok, s: t}, add)
	}
	// Split sep+t before every '.' and '['.
	for {
		if sep == 0 && t != "" && (t[0] == '.' || t[0] == '[') {
			sep, t = t[0], t[1:]
		}
		end := strings.IndexAny(t, ".[")
		if end < 0 {
			end = len(t)
		}
		k := tokKey{up: id, tok: tokBare, s: t[:end]}
		switch sep {
		case '.':
			k.tok = tokDot
		case '[':
			k.tok = tokBracket
			if n, ok := canonIndex(t[:end]); ok {
				k.tok, k.s = n, ""
			}
		}
		id = x.step(k, add)
		if end == len(t) {
			return id
		}
		sep, t = t[end], t[end+1:]
	}
}

// maxIndex is the largest list index stored as a number; larger ones (never
// met in practice) are stored as text, consistently in index and canonIndex.
const maxIndex = 1 << 30

// canonIndex reports whether "[" + s is "[n]" as index writes it, n <= maxIndex.
func canonIndex(s string) (int32, bool) {
	d, ok := strings.CutSuffix(s, "]")
	if !ok || d == "" || len(d) > 10 || d[0] == '0' && len(d) > 1 {
		return 0, false
	}
	n := int64(0)
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(d[i]-'0')
	}
	if n > maxIndex {
		return 0, false
	}
	return int32(n), true
}

// index returns the node of path(id) + "[i]".
func (x *posIndex) index(id int32, i int, add bool) int32 {
	if i > maxIndex {
		return x.step(tokKey{up: id, tok: tokBracket, s: strconv.Itoa(i) + "]"}, add)
	}
	return x.step(tokKey{up: id, tok: int32(i)}, add)
}

// at returns the position of node id, if it has one.
func (x *posIndex) at(id int32) (line, col int, ok bool) {
	if id == noNode || x.nodes[id].pos == ([2]int32{}) {
		return 0, 0, false
	}
	p := x.nodes[id].pos
	return int(p[0]), int(p[1]), true
}

// cursor walks a file byte by byte, keeping the line and the column in
// runes (UTF-8 continuation bytes are not counted). The position scanner
// below and the limits prescan (limits.go) both read TOML with it.
type cursor[S ~string | ~[]byte] struct {
	src       S
	i         int
	line, col int
}

func (s *cursor[S]) eof() bool { return s.i >= len(s.src) }

func (s *cursor[S]) peek(off int) byte {
	if s.i+off < len(s.src) {
		return s.src[s.i+off]
	}
	return 0
}

func (s *cursor[S]) adv() {
	if s.eof() {
		return
	}
	c := s.src[s.i]
	s.i++
	if c == '\n' {
		s.line++
		s.col = 1
	} else if c&0xC0 != 0x80 {
		s.col++
	}
}

type tomlScanner struct {
	cursor[string]
	idx   *posIndex
	node  int32    // the path being scanned
	table int32    // the current table's path
	segs  []string // key's result, reused
}

func (s *tomlScanner) here() [2]int { return [2]int{s.line, s.col} }

// mark records p as the position of the path being scanned unless it has one.
func (s *tomlScanner) mark(p [2]int) {
	if n := &s.idx.nodes[s.node]; n.pos == ([2]int32{}) {
		n.pos = [2]int32{int32(min(p[0], math.MaxInt32)), int32(min(p[1], math.MaxInt32))}
	}
}

// push joins key segment seg to the path being scanned.
func (s *tomlScanner) push(seg string) { s.node = s.idx.key(s.node, seg, true) }

// pushIndex appends element i to the path being scanned.
func (s *tomlScanner) pushIndex(i int) { s.node = s.idx.index(s.node, i, true) }

func (s *tomlScanner) skipWS() {
	for !s.eof() && (s.peek(0) == ' ' || s.peek(0) == '\t') {
		s.adv()
	}
}

// skipWSNL skips whitespace, newlines and comments (inside arrays).
func (s *tomlScanner) skipWSNL() {
	for !s.eof() {
		switch s.peek(0) {
		case ' ', '\t', '\n', '\r':
			s.adv()
		case '#':
			s.skipComment()
		default:
			return
		}
	}
}

func (s *tomlScanner) skipComment() {
	for !s.eof() && s.peek(0) != '\n' {
		s.adv()
	}
}

func (s *tomlScanner) run() {
	for !s.eof() {
		start := s.i
		s.skipWS()
		switch c := s.peek(0); c {
		case '\n', '\r':
			s.adv()
		case '#':
			s.skipComment()
		case '[':
			s.header()
			s.table = s.node
		default:
			s.node = s.table
			s.keyval(0)
			s.skipWS()
			if s.peek(0) == '#' {
				s.skipComment()
			}
		}
		if s.i == start {
			s.adv() // never loop without progress
		}
	}
}

// header parses [a.b] or [[a.b]] and leaves the resolved table path in s.node.
func (s *tomlScanner) header() {
	p := s.here()
	isArr := s.peek(1) == '['
	s.adv()
	if isArr {
		s.adv()
	}
	segs := s.key()
	s.skipWS()
	for n := 0; n < 2 && s.peek(0) == ']'; n++ {
		s.adv()
	}
	s.node = 0
	if len(segs) == 0 {
		return
	}
	s.resolve(segs[:len(segs)-1])
	s.push(segs[len(segs)-1])
	if isArr {
		n := s.idx.arr[s.node]
		s.idx.arr[s.node] = n + 1
		s.mark(p)
		s.pushIndex(n)
	} else if n := s.idx.arr[s.node]; n > 0 { // [a] after [[a]] is invalid TOML, but stay sane
		s.pushIndex(n - 1)
	}
	s.mark(p)
}

// resolve joins header segments to the path being scanned, entering the
// last element of any array of tables on the way (TOML's rule for [a.b]
// after [[a]]).
func (s *tomlScanner) resolve(segs []string) {
	for _, seg := range segs {
		s.push(seg)
		if n := s.idx.arr[s.node]; n > 0 {
			s.pushIndex(n - 1)
		}
	}
}

// key parses a possibly dotted, possibly quoted key. The segments it returns
// are valid until the next call.
func (s *tomlScanner) key() []string {
	segs := s.segs[:0]
	defer func() { s.segs = segs[:0] }()
	for !s.eof() {
		s.skipWS()
		var seg string
		switch c := s.peek(0); {
		case c == '"':
			raw := s.str('"')
			if u, err := strconv.Unquote(raw); err == nil {
				seg = u
			} else if len(raw) >= 2 {
				seg = raw[1 : len(raw)-1]
			}
		case c == '\'':
			raw := s.str('\'')
			if len(raw) >= 2 {
				seg = raw[1 : len(raw)-1]
			}
		case isBare(c):
			st := s.i
			for !s.eof() && isBare(s.peek(0)) {
				s.adv()
			}
			seg = s.src[st:s.i]
		default:
			return segs
		}
		segs = append(segs, seg)
		s.skipWS()
		if s.peek(0) != '.' {
			return segs
		}
		s.adv()
	}
	return segs
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// str consumes a single-line string starting at quote q and returns its raw text.
func (s *tomlScanner) str(q byte) string {
	st := s.i
	s.adv()
	for !s.eof() {
		c := s.peek(0)
		if c == '\n' {
			break
		}
		if c == '\\' && q == '"' {
			s.adv()
			s.adv()
			continue
		}
		s.adv()
		if c == q {
			break
		}
	}
	return s.src[st:s.i]
}

// mlstr consumes a multi-line string, basic or literal.
func (s *tomlScanner) mlstr(q byte) {
	for n := 0; n < 3; n++ {
		s.adv()
	}
	for !s.eof() {
		if s.peek(0) == '\\' && q == '"' {
			s.adv()
			s.adv()
			continue
		}
		if s.peek(0) == q && s.peek(1) == q && s.peek(2) == q {
			for n := 0; n < 3; n++ {
				s.adv()
			}
			for s.peek(0) == q { // up to two quotes may end the content
				s.adv()
			}
			return
		}
		s.adv()
	}
}

// keyval scans key = value in the table whose path is s.node, and leaves
// s.node as it found it.
func (s *tomlScanner) keyval(depth int) {
	p := s.here()
	segs := s.key()
	if len(segs) == 0 {
		return
	}
	base := s.node
	defer func() { s.node = base }()
	for _, seg := range segs {
		s.push(seg)
	}
	s.mark(p)
	s.skipWS()
	if s.peek(0) != '=' {
		return
	}
	s.adv()
	s.skipWS()
	s.value(depth)
}

// value scans the value whose path is s.node.
func (s *tomlScanner) value(depth int) {
	if depth > maxDepth {
		return
	}
	switch c := s.peek(0); c {
	case '"', '\'':
		if s.peek(1) == c && s.peek(2) == c {
			s.mlstr(c)
		} else {
			s.str(c)
		}
	case '[':
		s.adv()
		for i := 0; !s.eof(); i++ {
			s.skipWSNL()
			if s.peek(0) == ']' {
				s.adv()
				return
			}
			base := s.node
			s.pushIndex(i)
			s.mark(s.here())
			st := s.i
			s.value(depth + 1)
			s.node = base
			s.skipWSNL()
			switch s.peek(0) {
			case ',':
				s.adv()
			case ']':
				s.adv()
				return
			default:
				if s.i == st {
					return
				}
			}
		}
	case '{':
		s.adv()
		for !s.eof() {
			s.skipWS()
			if s.peek(0) == '}' {
				s.adv()
				return
			}
			st := s.i
			s.keyval(depth + 1)
			s.skipWS()
			switch s.peek(0) {
			case ',':
				s.adv()
			case '}':
				s.adv()
				return
			default:
				if s.i == st {
					return
				}
			}
		}
	default:
		for !s.eof() {
			switch s.peek(0) {
			case ',', ']', '}', '\n', '\r', '#':
				return
			}
			s.adv()
		}
	}
}
