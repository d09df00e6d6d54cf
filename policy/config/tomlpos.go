package config

import (
	"fmt"
	"strconv"
)

// scanTOMLPositions maps every key path of an (already syntax-checked) TOML
// document to the line and column where it is written. Paths have the form
// `a.b[2].c`: a key, a table, an element of an array or of an array of
// tables. Values inside arrays get their element's position; keys of inline
// tables get their key's. The scanner is lenient and never fails: on input
// it does not understand it stops, and the tree falls back to the nearest
// known ancestor's position.
func scanTOMLPositions(src []byte) map[string][2]int {
	s := &tomlScanner{src: src, line: 1, col: 1, idx: map[string][2]int{}, arr: map[string]int{}}
	s.run()
	return s.idx
}

type tomlScanner struct {
	src       []byte
	i         int
	line, col int
	idx       map[string][2]int
	arr       map[string]int // array-of-tables path -> elements seen
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

func (s *tomlScanner) mark(path string, p [2]int) {
	if _, ok := s.idx[path]; !ok {
		s.idx[path] = p
	}
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
	table := ""
	for !s.eof() {
		start := s.i
		s.skipWS()
		switch c := s.peek(0); c {
		case '\n', '\r':
			s.adv()
		case '#':
			s.skipComment()
		case '[':
			table = s.header()
		default:
			s.keyval(table, 0)
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

// header parses [a.b] or [[a.b]] and returns the resolved table path.
func (s *tomlScanner) header() string {
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
	if len(segs) == 0 {
		return ""
	}
	path := s.resolve(segs[:len(segs)-1])
	path = joinPath(path, segs[len(segs)-1])
	if isArr {
		n := s.arr[path]
		s.arr[path] = n + 1
		s.mark(path, p)
		path = fmt.Sprintf("%s[%d]", path, n)
	} else if n, ok := s.arr[path]; ok { // [a] after [[a]] is invalid TOML, but stay sane
		path = fmt.Sprintf("%s[%d]", path, n-1)
	}
	s.mark(path, p)
	return path
}

// resolve maps header segments to a path, entering the last element of any
// array of tables on the way (TOML's rule for [a.b] after [[a]]).
func (s *tomlScanner) resolve(segs []string) string {
	path := ""
	for _, seg := range segs {
		path = joinPath(path, seg)
		if n, ok := s.arr[path]; ok && n > 0 {
			path = fmt.Sprintf("%s[%d]", path, n-1)
		}
	}
	return path
}

// key parses a possibly dotted, possibly quoted key.
func (s *tomlScanner) key() []string {
	var segs []string
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
			seg = string(s.src[st:s.i])
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
	return string(s.src[st:s.i])
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

func (s *tomlScanner) keyval(base string, depth int) {
	p := s.here()
	segs := s.key()
	if len(segs) == 0 {
		return
	}
	path := base
	for _, seg := range segs {
		path = joinPath(path, seg)
	}
	s.mark(path, p)
	s.skipWS()
	if s.peek(0) != '=' {
		return
	}
	s.adv()
	s.skipWS()
	s.value(path, depth)
}

func (s *tomlScanner) value(path string, depth int) {
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
			el := fmt.Sprintf("%s[%d]", path, i)
			s.mark(el, s.here())
			st := s.i
			s.value(el, depth+1)
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
			s.keyval(path, depth+1)
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
