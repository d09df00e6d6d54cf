// Package classbench loads ClassBench packet-classification rule sets and
// traces, the standard benchmark for multi-field classifiers, and converts
// them for the classifiers under test.
//
// The data files are external (see Dir); when they are absent, Generate makes
// synthetic sets of the same shape so the benchmark still runs.
package classbench

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Rule is one ClassBench filter: a 5-tuple of prefixes, inclusive port ranges
// and a protocol. The optional flags field of the format is ignored, as the
// traces' expected answers ignore it.
type Rule struct {
	Src, Dst     netip.Prefix // masked; /0 is a wildcard
	SPort, DPort [2]uint16    // inclusive; 0-65535 is a wildcard
	Proto        uint8        // meaningful unless ProtoAny
	ProtoAny     bool
}

// Packet is one trace header with the trace's expected answer.
type Packet struct {
	Src, Dst     netip.Addr // IPv4
	SPort, DPort uint16
	Proto        uint8
	// Expected is the 1-based line number of the first rule that matches,
	// 0 when none does.
	Expected int
}

// ParseRules reads a ClassBench filter file: one rule per line, highest
// priority first,
//
//	@src/len dst/len slo : shi dlo : dhi 0xPP/0xMM [0xFFFF/0xMMMM]
//
// with fields split on any whitespace. name is used in error messages.
func ParseRules(r io.Reader, name string) ([]Rule, error) {
	var rules []Rule
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		rule, err := parseRule(text)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		rules = append(rules, rule)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rules, nil
}

func parseRule(text string) (Rule, error) {
	var r Rule
	if !strings.HasPrefix(text, "@") {
		return r, fmt.Errorf("rule does not start with '@': %q", text)
	}
	// "lo:hi", "lo : hi" and "lo :hi" all appear in the wild.
	f := strings.Fields(text[1:])
	if len(f) > 2 {
		f = append(f[:2], strings.Fields(strings.ReplaceAll(strings.Join(f[2:], " "), ":", " : "))...)
	}
	if len(f) != 9 && len(f) != 10 {
		return r, fmt.Errorf("want 9 or 10 fields (src dst sport : sport dport : dport proto [flags]), got %d", len(f))
	}
	var err error
	if r.Src, err = parsePrefix(f[0]); err != nil {
		return r, fmt.Errorf("source: %w", err)
	}
	if r.Dst, err = parsePrefix(f[1]); err != nil {
		return r, fmt.Errorf("destination: %w", err)
	}
	if r.SPort, err = parsePorts(f[2], f[3], f[4]); err != nil {
		return r, fmt.Errorf("source port: %w", err)
	}
	if r.DPort, err = parsePorts(f[5], f[6], f[7]); err != nil {
		return r, fmt.Errorf("destination port: %w", err)
	}
	v, m, ok := strings.Cut(f[8], "/")
	if !ok {
		return r, fmt.Errorf("protocol %q: want 0xVALUE/0xMASK", f[8])
	}
	pv, err1 := strconv.ParseUint(v, 0, 8)
	pm, err2 := strconv.ParseUint(m, 0, 8)
	switch {
	case err1 != nil || err2 != nil:
		return r, fmt.Errorf("protocol %q: want 0xVALUE/0xMASK of 8 bits", f[8])
	case pm == 0:
		r.ProtoAny = true
	case pm == 0xff:
		r.Proto = uint8(pv)
	default:
		return r, fmt.Errorf("protocol %q: mask must be 0x00 or 0xFF", f[8])
	}
	return r, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, err
	}
	if !p.Addr().Is4() {
		return p, fmt.Errorf("%q is not IPv4", s)
	}
	return p.Masked(), nil
}

func parsePorts(lo, colon, hi string) ([2]uint16, error) {
	if colon != ":" {
		return [2]uint16{}, fmt.Errorf("want 'lo : hi', got %q %q %q", lo, colon, hi)
	}
	l, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return [2]uint16{}, err
	}
	h, err := strconv.ParseUint(hi, 10, 16)
	if err != nil {
		return [2]uint16{}, err
	}
	if l > h {
		return [2]uint16{}, fmt.Errorf("empty range %d : %d", l, h)
	}
	return [2]uint16{uint16(l), uint16(h)}, nil
}

// ParseTrace reads a trace: one header per line,
//
//	src dst sport dport proto expected
//
// with addresses as decimal uint32 and expected the 1-based first-matching
// rule. Extra trailing columns are ignored.
func ParseTrace(r io.Reader, name string) ([]Packet, error) {
	var pkts []Packet
	sc := bufio.NewScanner(r)
	line := 0
	names := [...]string{"source address", "destination address", "source port", "destination port", "protocol", "expected rule"}
	bitsOf := [...]int{32, 32, 16, 16, 8, 31}
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 6 {
			return nil, fmt.Errorf("%s:%d: want 6 fields (src dst sport dport proto expected), got %d", name, line, len(f))
		}
		var v [6]uint64
		for i := range v {
			var err error
			if v[i], err = strconv.ParseUint(f[i], 10, bitsOf[i]); err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", name, line, names[i], err)
			}
		}
		pkts = append(pkts, Packet{
			Src: addr4(uint32(v[0])), Dst: addr4(uint32(v[1])),
			SPort: uint16(v[2]), DPort: uint16(v[3]), Proto: uint8(v[4]),
			Expected: int(v[5]),
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return pkts, nil
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// LoadRules reads a rule file.
func LoadRules(path string) ([]Rule, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseRules(f, path)
}

// LoadTrace reads a trace file.
func LoadTrace(path string) ([]Packet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseTrace(f, path)
}

// Matches reports whether r matches p on the five fields.
func (r *Rule) Matches(p *Packet) bool {
	return r.Src.Contains(p.Src) && r.Dst.Contains(p.Dst) &&
		p.SPort >= r.SPort[0] && p.SPort <= r.SPort[1] &&
		p.DPort >= r.DPort[0] && p.DPort <= r.DPort[1] &&
		(r.ProtoAny || r.Proto == p.Proto)
}

// FirstMatch is the reference answer: the 1-based index of the first rule
// matching p, 0 when none does.
func FirstMatch(rules []Rule, p *Packet) int {
	for i := range rules {
		if rules[i].Matches(p) {
			return i + 1
		}
	}
	return 0
}
