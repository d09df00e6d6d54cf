package config

import (
	"fmt"
	"sort"
	"strings"

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
