package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Limits on what one load may read and build. A configuration is read by a
// running firewall: a file that makes the parser exhaust memory kills the
// daemon (Go's "fatal error: out of memory" cannot be recovered), so every
// input is measured before a parser sees it, and anything beyond these
// limits is an error naming the file, line and column. The values leave an
// order of magnitude of room over large real configurations (10^5 rules in
// one file are about 15 MB and 1 million values) and bound a load's peak
// memory (docs/reliability.md has the figures).
var (
	// MaxFileBytes is the largest file read.
	MaxFileBytes int64 = 32 << 20
	// MaxTotalBytes is the most read by one load, all files together.
	MaxTotalBytes int64 = 64 << 20
	// MaxFiles is the most files one load reads (a glob matching a huge
	// directory).
	MaxFiles = 4096
	// MaxValues is the most values (keys, table headers, list elements)
	// in all files together, counted by a scan before any parser runs;
	// a table counts two (prescanTOML).
	MaxValues = 2_000_000
	// MaxRules is the most rules (policies' ingress and egress rules and
	// profiles' rules) a configuration may hold.
	MaxRules = 100_000
	// MaxKeyBytes is the longest TOML key segment, MaxKeyParts the most
	// segments of one dotted key or table header.
	MaxKeyBytes = 1024
	MaxKeyParts = 32
)

// maxDepth is the deepest nesting of tables and lists (see tree.go).

// errNotRegular is returned for a FIFO, device, socket or directory:
// opening a FIFO blocks, reading /dev/zero never ends.
var errNotRegular = errors.New("not a regular file")

// readRegular reads a regular file of at most max bytes. Symbolic links
// are followed; what they point to must be a regular file too. It never
// blocks on a FIFO: the type is checked before opening, and the file is
// opened non-blocking and checked again (it may have been swapped).
func readRegular(name string, max int64) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w (%s)", errNotRegular, typeName(fi.Mode()))
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("file is %d bytes, more than the limit of %d", fi.Size(), max)
	}
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi2, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi2.Mode().IsRegular() || !os.SameFile(fi, fi2) {
		return nil, fmt.Errorf("%w: replaced while being opened", errNotRegular)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("file grew beyond the limit of %d bytes while being read", max)
	}
	return data, nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return "not a regular file"
}

// scanPos is a line and column (runes) in a scanned file.
type scanPos struct{ line, col int }

type lexScan struct{ cursor[[]byte] }

func (s *lexScan) here() scanPos { return scanPos{s.line, s.col} }

// prescanTOML measures a TOML file before the parser sees it: nesting depth
// (table header segments, dotted key segments, arrays and inline tables
// together), the length and segment count of every key, and the number of
// values, which it takes from *budget. It is lexical and lenient: what it
// does not understand is left to the parser, which reports syntax errors.
// It allocates nothing.
func prescanTOML(file string, src []byte, budget *int) *Diag {
	s := &lexScan{cursor[[]byte]{src: src, line: 1, col: 1}}
	fail := func(p scanPos, format string, a ...any) *Diag {
		return &Diag{File: file, Line: p.line, Col: p.col, Msg: fmt.Sprintf(format, a...)}
	}
	var stack [256]byte // 'a' array, 't' inline table; bounded by maxDepth
	depth := 0
	headerParts := 0 // segments of the current table header
	// take counts n values. A table (an inline table, an element of an
	// array of tables) counts 2: the decoder makes a Go map for each,
	// about two values' worth of memory.
	take := func(p scanPos, n int) *Diag {
		if *budget -= n; *budget < 0 {
			return fail(p, "more than %d values in the configuration (nfgate's limit)", MaxValues)
		}
		return nil
	}
	// key scans a dotted key and returns its segment count.
	key := func() (int, *Diag) {
		parts := 0
		for !s.eof() {
			for s.peek(0) == ' ' || s.peek(0) == '\t' {
				s.adv()
			}
			p := s.here()
			st := s.i
			switch c := s.peek(0); {
			case c == '"' || c == '\'':
				s.str(c)
			case isBare(c):
				for !s.eof() && isBare(s.peek(0)) {
					s.adv()
				}
			default:
				return parts, nil
			}
			if s.i-st > MaxKeyBytes+2 {
				return 0, fail(p, "key longer than %d bytes (nfgate's limit)", MaxKeyBytes)
			}
			if parts++; parts > MaxKeyParts {
				return 0, fail(p, "dotted key or table name with more than %d parts (nfgate's limit)", MaxKeyParts)
			}
			for s.peek(0) == ' ' || s.peek(0) == '\t' {
				s.adv()
			}
			if s.peek(0) != '.' {
				return parts, nil
			}
			s.adv()
		}
		return parts, nil
	}
	deep := func(p scanPos, extra int) *Diag {
		if headerParts+depth+extra > maxDepth {
			return fail(p, "nesting deeper than %d levels (nfgate's limit)", maxDepth)
		}
		return nil
	}
	// expectKey: the next token starts a key (statement start, or after
	// '{' or ',' in an inline table).
	expectKey := true
	for !s.eof() {
		c := s.peek(0)
		switch {
		case c == '#':
			for !s.eof() && s.peek(0) != '\n' {
				s.adv()
			}
			continue
		case c == '\n':
			s.adv()
			if depth == 0 {
				expectKey = true
			}
			continue
		case c == ' ' || c == '\t' || c == '\r':
			s.adv()
			continue
		}
		p := s.here()
		if expectKey {
			if c == '[' && depth == 0 {
				// Table header: [a.b] or [[a.b]].
				s.adv()
				weight := 1
				if s.peek(0) == '[' {
					s.adv()
					weight = 2
				}
				headerParts = 0
				n, d := key()
				if d != nil {
					return d
				}
				headerParts = n
				if d := deep(p, 0); d != nil {
					return d
				}
				if d := take(p, weight); d != nil {
					return d
				}
				for s.peek(0) == ']' || s.peek(0) == ' ' || s.peek(0) == '\t' {
					s.adv()
				}
				continue
			}
			if depth > 0 && stack[depth-1] == 't' && c == '}' {
				s.adv() // an empty inline table, or a trailing comma
				depth--
				expectKey = false
				continue
			}
			n, d := key()
			if d != nil {
				return d
			}
			if n == 0 {
				// Not a key: let the parser say what it is.
				s.adv()
				continue
			}
			if d := deep(p, n); d != nil {
				return d
			}
			if d := take(p, 1); d != nil {
				return d
			}
			expectKey = false
			continue
		}
		switch c {
		case '"', '\'':
			s.str(c)
		case '[', '{':
			if depth+1 > len(stack) {
				return fail(p, "nesting deeper than %d levels (nfgate's limit)", maxDepth)
			}
			stack[depth] = 'a'
			if c == '{' {
				stack[depth] = 't'
			}
			depth++
			if d := deep(p, 0); d != nil {
				return d
			}
			s.adv()
			if c == '{' {
				expectKey = true
				if d := take(p, 2); d != nil {
					return d
				}
			} else if d := take(p, 1); d != nil { // the first element
				return d
			}
		case ']', '}':
			s.adv()
			if depth > 0 {
				depth--
			}
		case ',':
			s.adv()
			if depth > 0 && stack[depth-1] == 't' {
				expectKey = true
			} else if d := take(p, 1); d != nil {
				return d
			}
		case '=':
			s.adv()
		default:
			s.adv()
		}
	}
	return nil
}

// str skips a TOML string starting at quote q: basic or literal, single- or
// multi-line.
func (s *lexScan) str(q byte) {
	if s.peek(1) == q && s.peek(2) == q {
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
				for s.peek(0) == q {
					s.adv()
				}
				return
			}
			s.adv()
		}
		return
	}
	s.adv()
	for !s.eof() {
		c := s.peek(0)
		if c == '\n' {
			return
		}
		if c == '\\' && q == '"' {
			s.adv()
			s.adv()
			continue
		}
		s.adv()
		if c == q {
			return
		}
	}
}

// prescanYAML counts the values of a YAML (or JSON) stream before yaml.v3
// builds its node tree (about 150 bytes a node): mapping entries, sequence
// entries and flow-collection elements, taken from *budget. yaml.v3 limits
// nesting itself (10,000) and the tree builder to maxDepth. Lexical and
// lenient like prescanTOML; it allocates nothing.
func prescanYAML(file string, src []byte, budget *int) *Diag {
	s := &lexScan{cursor[[]byte]{src: src, line: 1, col: 1}}
	flow := 0
	lineStart := true
	for !s.eof() {
		c := s.peek(0)
		p := s.here()
		counted := false
		switch {
		case c == '\n':
			s.adv()
			lineStart = true
			continue
		case c == ' ' || c == '\t' || c == '\r':
			s.adv()
			continue
		case c == '#' && (p.col == 1 || s.i > 0 && (src[s.i-1] == ' ' || src[s.i-1] == '\t')):
			for !s.eof() && s.peek(0) != '\n' {
				s.adv()
			}
			continue
		case c == '"' || c == '\'':
			s.quoted(c)
		case c == '[' || c == '{':
			if flow++; flow > maxDepth {
				return &Diag{File: file, Line: p.line, Col: p.col, Msg: fmt.Sprintf("nesting deeper than %d levels (nfgate's limit)", maxDepth)}
			}
			counted = true
			s.adv()
		case c == ']' || c == '}':
			if flow > 0 {
				flow--
			}
			s.adv()
		case c == ',' && flow > 0:
			counted = true
			s.adv()
		case c == '-' && lineStart && (s.peek(1) == ' ' || s.peek(1) == '\n' || s.peek(1) == 0):
			counted = true
			s.adv()
			lineStart = true // "- - a" nests
			continue
		case c == ':' && (s.peek(1) == ' ' || s.peek(1) == '\n' || s.peek(1) == '\r' || s.peek(1) == 0 || flow > 0 && (s.peek(1) == ',' || s.peek(1) == '}')):
			counted = true
			s.adv()
		default:
			s.adv()
		}
		lineStart = false
		if counted {
			if *budget--; *budget < 0 {
				return &Diag{File: file, Line: p.line, Col: p.col, Msg: fmt.Sprintf("more than %d values in the configuration (nfgate's limit)", MaxValues)}
			}
		}
	}
	return nil
}

// quoted skips a YAML quoted scalar (which may span lines).
func (s *lexScan) quoted(q byte) {
	s.adv()
	for !s.eof() {
		c := s.peek(0)
		if q == '"' && c == '\\' {
			s.adv()
			s.adv()
			continue
		}
		if q == '\'' && c == '\'' && s.peek(1) == '\'' {
			s.adv()
			s.adv()
			continue
		}
		s.adv()
		if c == q {
			return
		}
	}
}
