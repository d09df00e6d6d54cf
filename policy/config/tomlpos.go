package config

import "strconv"

// scanTOMLPositions maps every key path of an (already syntax-checked) TOML
// document to the line and column where it is written. Paths have the form
// `a.b[2].c`: a key, a table, an element of an array or of an array of
// tables. Values inside arrays get their element's position; keys of inline
// tables get their key's. The scanner is lenient and never fails: on input
// it does not understand it stops, and the tree falls back to the nearest
// known ancestor's position.
func scanTOMLPositions(src []byte) map[string][2]int {
	s := &tomlScanner{src: src, line: 1, col: 1, idx: map[string][2]int{}, arr: map[string]*int{}}
	s.run()
	return s.idx
}

type tomlScanner struct {
	src       []byte
	i         int
	line, col int
	idx       map[string][2]int
	arr       map[string]*int // array-of-tables path -> elements seen
	// path is the key path being scanned: the scanner appends to it and
	// truncates it again, so only paths new to idx allocate.
	path  []byte
	table []byte   // the current table's path
	segs  [][]byte // key's result, reused
}

func (s *tomlScanner) eof() bool { return s.i >= len(s.src) }

func (s *tomlScanner) peek(off int) byte {
	if s.i+off < len(s.src) {
		return s.src[s.i+off]
	}
	return 0
}

func (s *tomlScanner) adv() {
	if s.eof() {
		return
	}
	c := s.src[s.i]
	s.i++
	if c == '\n' {
		s.line++
		s.col = 1
	} else if c&0xC0 != 0x80 { // count runes, not UTF-8 continuation bytes
		s.col++
	}
}

func (s *tomlScanner) here() [2]int { return [2]int{s.line, s.col} }

// mark records p as the position of s.path unless it has one.
func (s *tomlScanner) mark(p [2]int) {
	if _, ok := s.idx[string(s.path)]; !ok {
		s.idx[string(s.path)] = p
	}
}

// push appends key segment seg to s.path (joinPath's rule: no dot at the root).
func (s *tomlScanner) push(seg []byte) {
	if len(s.path) > 0 {
		s.path = append(s.path, '.')
	}
	s.path = append(s.path, seg...)
}

// pushIndex appends element i to s.path.
func (s *tomlScanner) pushIndex(i int) {
	s.path = append(s.path, '[')
	s.path = strconv.AppendInt(s.path, int64(i), 10)
	s.path = append(s.path, ']')
}

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
			s.table = append(s.table[:0], s.path...)
		default:
			s.path = append(s.path[:0], s.table...)
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

// header parses [a.b] or [[a.b]] and leaves the resolved table path in s.path.
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
	s.path = s.path[:0]
	if len(segs) == 0 {
		return
	}
	s.resolve(segs[:len(segs)-1])
	s.push(segs[len(segs)-1])
	if isArr {
		cnt, ok := s.arr[string(s.path)]
		if !ok {
			cnt = new(int)
			s.arr[string(s.path)] = cnt
		}
		n := *cnt
		*cnt++
		s.mark(p)
		s.pushIndex(n)
	} else if cnt, ok := s.arr[string(s.path)]; ok { // [a] after [[a]] is invalid TOML, but stay sane
		s.pushIndex(*cnt - 1)
	}
	s.mark(p)
}

// resolve appends header segments to s.path, entering the last element of
// any array of tables on the way (TOML's rule for [a.b] after [[a]]).
func (s *tomlScanner) resolve(segs [][]byte) {
	for _, seg := range segs {
		s.push(seg)
		if cnt, ok := s.arr[string(s.path)]; ok && *cnt > 0 {
			s.pushIndex(*cnt - 1)
		}
	}
}

// key parses a possibly dotted, possibly quoted key. The segments it returns
// are valid until the next call.
func (s *tomlScanner) key() [][]byte {
	segs := s.segs[:0]
	defer func() { s.segs = segs[:0] }()
	for !s.eof() {
		s.skipWS()
		var seg []byte
		switch c := s.peek(0); {
		case c == '"':
			raw := s.str('"')
			if u, err := strconv.Unquote(string(raw)); err == nil {
				seg = []byte(u)
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
func (s *tomlScanner) str(q byte) []byte {
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

// keyval scans key = value in the table whose path is s.path, and leaves
// s.path as it found it.
func (s *tomlScanner) keyval(depth int) {
	p := s.here()
	segs := s.key()
	if len(segs) == 0 {
		return
	}
	base := len(s.path)
	defer func() { s.path = s.path[:base] }()
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

// value scans the value whose path is s.path.
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
			base := len(s.path)
			s.pushIndex(i)
			s.mark(s.here())
			st := s.i
			s.value(depth + 1)
			s.path = s.path[:base]
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
