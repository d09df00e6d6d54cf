package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nfgate/nfgate/policy"
)

// Diag is one error or warning found while loading a configuration. Its JSON
// form (file, line, column, resource, field, message) is what `nfgate check
// -json` prints.
type Diag struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"column"`
	// Resource is Kind/name, e.g. "GlobalNetworkPolicy/allow-ssh"; empty for
	// gateway and engine settings and file-level problems.
	Resource string `json:"resource,omitempty"`
	// Field is the field path inside the resource ("spec.ingress[0].destination.ports[1]"
	// in YAML, "ingress[0].destination.ports[1]" in TOML) or the TOML key path
	// of a setting ("gateway.failsafeInboundHostPorts").
	Field string `json:"field,omitempty"`
	Msg   string `json:"message"`
}

// String formats the diagnostic as `file:line:col: Kind/name: field: message`,
// leaving out the parts that are unknown.
func (d Diag) String() string {
	var b strings.Builder
	if d.File != "" {
		b.WriteString(d.File)
		if d.Line > 0 {
			fmt.Fprintf(&b, ":%d", d.Line)
			if d.Col > 0 {
				fmt.Fprintf(&b, ":%d", d.Col)
			}
		}
		b.WriteString(": ")
	}
	if d.Resource != "" {
		b.WriteString(d.Resource)
		b.WriteString(": ")
	}
	if d.Field != "" {
		b.WriteString(d.Field)
		b.WriteString(": ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// Errors is every error of one load, in file order then position order.
type Errors []Diag

// Error prints one diagnostic per line.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, d := range e {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// diags collects the errors and warnings of one load.
type diags struct {
	errs, warns []Diag
}

func (d *diags) add(warn bool, pos policy.Pos, res, field, format string, args ...any) {
	// A value echoed in a message may be a 400 KB selector or a 60 MB
	// name: shorten string and error arguments before formatting, so the
	// message keeps its shape (Sanitize then escapes what is left).
	for i, a := range args {
		switch v := a.(type) {
		case string:
			args[i] = shorten(v, maxEchoBytes)
		case error:
			args[i] = shorten(v.Error(), maxEchoBytes)
		}
	}
	x := Diag{File: pos.File, Line: pos.Line, Col: pos.Col, Resource: res, Field: field, Msg: fmt.Sprintf(format, args...)}
	if warn {
		d.warns = append(d.warns, x)
	} else {
		d.errs = append(d.errs, x)
	}
}

// sortDiags orders diagnostics by the order files were read, then position.
// The sort is stable so that diagnostics at one position keep their order.
func sortDiags(ds []Diag, files []string) {
	rank := make(map[string]int, len(files))
	for i, f := range files {
		if _, ok := rank[f]; !ok {
			rank[f] = i + 1
		}
	}
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if ra, rb := rank[a.File], rank[b.File]; ra != rb {
			return ra < rb
		}
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// Lengths beyond which text from a configuration is cut in diagnostics.
const (
	maxEchoBytes = 200  // one value quoted in a message
	maxNameBytes = 256  // file, resource and field names
	maxMsgBytes  = 1024 // a whole message
)

// shorten cuts s to about max bytes (on a rune boundary), saying how much
// was left out.
func shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…[" + strconv.Itoa(len(s)-cut) + " more bytes]"
}

// Sanitize makes text from a configuration safe to print: text longer than
// max bytes is cut in the middle with a marker, keeping its start and end
// (where positions and reasons usually are); then control characters,
// Unicode format characters (bidirectional overrides such as U+202E,
// zero-width characters) and invalid UTF-8 are escaped (\u202e, \x1b).
func Sanitize(s string, max int) string {
	if len(s) > max {
		head, t := max*2/3, len(s)-max/4
		for head > 0 && !utf8.RuneStart(s[head]) {
			head--
		}
		for t < len(s) && !utf8.RuneStart(s[t]) {
			t++
		}
		s = s[:head] + "…[" + strconv.Itoa(t-head) + " bytes left out]…" + s[t:]
	}
	unsafe := func(r rune) bool {
		return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || unicode.Is(unicode.Cf, r)
	}
	if strings.IndexFunc(s, unsafe) < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r < 0x80 && unsafe(r):
			fmt.Fprintf(&b, "\\x%02x", r)
		case unsafe(r):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// sanitize applies Sanitize to every part of d.
func (d *Diag) sanitize() {
	d.File = Sanitize(d.File, maxNameBytes)
	d.Resource = Sanitize(d.Resource, maxNameBytes)
	d.Field = Sanitize(d.Field, maxNameBytes)
	d.Msg = Sanitize(d.Msg, maxMsgBytes)
}
