package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/analysis"
	"github.com/nfgate/nfgate/policy/config"
)

func init() {
	commands["lint"] = subcommand{"find rules that can never match, unused and risky policy (exit status for CI)",
		func(args []string) int { return runLint(args, os.Stdout, os.Stderr) }}
}

type lintReport struct {
	Config    string             `json:"config"`
	Hash      string             `json:"hash"`
	Findings  []analysis.Finding `json:"findings"`
	Errors    int                `json:"errors"`
	Warnings  int                `json:"warnings"`
	Infos     int                `json:"infos"`
	Trace     *lintTrace         `json:"trace,omitempty"`
	ElapsedMS float64            `json:"elapsedMs"`
}

type lintTrace struct {
	File     string   `json:"file"`
	Verdicts int      `json:"verdicts"`
	First    string   `json:"first,omitempty"`
	Last     string   `json:"last,omitempty"`
	Hashes   []string `json:"hashes"`
	// Note says when the trace was recorded under other configurations
	// (rule indexes may then not be this configuration's).
	Note string `json:"note,omitempty"`
}

func runLint(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (TOML)")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	tracePath := fs.String("trace", "", "a verdict trace: also report rules no traced packet was decided by")
	failOn := fs.String("fail-on", "error", "exit 1 when a finding is at least this severe: error, warning or info")
	budget := fs.Int("budget", 20000, "regions examined per rule before giving up on proving it unreachable")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: nfgate lint --config FILE [--json] [--trace TRACE.jsonl] [--fail-on warning|error]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	threshold := map[string]analysis.Severity{"error": analysis.Error, "warning": analysis.Warning, "info": analysis.Info}
	limit, ok := threshold[*failOn]
	if *cfgPath == "" || fs.NArg() != 0 || !ok {
		fs.Usage()
		return 2
	}
	t0 := time.Now()
	rep := lintReport{Config: *cfgPath, Findings: []analysis.Finding{}}
	ld, err := config.Load(*cfgPath)
	if ld != nil {
		rep.Hash = hex.EncodeToString(ld.Hash[:4])
		for _, d := range ld.Warnings {
			rep.Findings = append(rep.Findings, diagFinding(analysis.Warning, d))
		}
	}
	var prog *policy.Program
	if err == nil {
		prog, err = policy.Compile(ld.Policy)
	}
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, d := range errs {
				rep.Findings = append(rep.Findings, diagFinding(analysis.Error, d))
			}
		} else {
			rep.Findings = append(rep.Findings, analysis.Finding{Severity: analysis.Error, Kind: "invalid", File: *cfgPath, Message: err.Error()})
		}
		return printLint(&rep, limit, *asJSON, stdout)
	}
	opt := analysis.LintOptions{Budget: *budget}
	if *tracePath != "" {
		f, err := os.Open(*tracePath)
		if err != nil {
			fmt.Fprintf(stderr, "nfgate lint: %v\n", err)
			return 2
		}
		h, err := analysis.HitsFromTrace(f, ld.Policy)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "nfgate lint: %s: %v\n", *tracePath, err)
			return 2
		}
		opt.Hits = h
		rep.Trace = &lintTrace{File: *tracePath, Verdicts: h.Verdicts, First: h.First, Last: h.Last, Hashes: h.Hashes}
		if rep.Trace.Hashes == nil {
			rep.Trace.Hashes = []string{}
		}
		for _, x := range h.Hashes {
			if x != rep.Hash && x != "-" {
				rep.Trace.Note = fmt.Sprintf("the trace holds decisions of other configurations (hash %s, this one is %s): rules are matched by policy name and index", strings.Join(h.Hashes, ", "), rep.Hash)
				break
			}
		}
	}
	rep.Findings = append(rep.Findings, analysis.Lint(prog, opt)...)
	rep.ElapsedMS = ms(time.Since(t0))
	return printLint(&rep, limit, *asJSON, stdout)
}

func diagFinding(sev analysis.Severity, d config.Diag) analysis.Finding {
	kind := "config"
	if sev == analysis.Error {
		kind = "invalid"
	}
	return analysis.Finding{Severity: sev, Kind: kind, File: d.File, Line: d.Line, Col: d.Col, Resource: d.Resource, Field: d.Field, Message: d.Msg}
}

// printLint prints the report and returns the exit status: 1 when a
// finding reaches limit.
func printLint(rep *lintReport, limit analysis.Severity, asJSON bool, w io.Writer) int {
	code := 0
	for _, f := range rep.Findings {
		switch f.Severity {
		case analysis.Error:
			rep.Errors++
		case analysis.Warning:
			rep.Warnings++
		default:
			rep.Infos++
		}
		if f.Severity >= limit {
			code = 1
		}
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		return code
	}
	for _, f := range rep.Findings {
		d := config.Diag{File: f.File, Line: f.Line, Col: f.Col, Resource: f.Resource, Field: f.Field, Msg: fmt.Sprintf("%s (%s)", f.Message, f.Kind)}
		fmt.Fprintf(w, "%s: %s\n", f.Severity, d)
		for _, r := range f.Related {
			at := ""
			if r.File != "" {
				at = fmt.Sprintf(" (%s:%d)", r.File, r.Line)
			}
			fmt.Fprintf(w, "    shadowed by %s%s\n", r.Text, at)
		}
	}
	if t := rep.Trace; t != nil {
		fmt.Fprintf(w, "trace %s: %d verdicts, %s to %s\n", t.File, t.Verdicts, t.First, t.Last)
		if t.Note != "" {
			fmt.Fprintln(w, "  note: "+t.Note)
		}
	}
	fmt.Fprintf(w, "%s: %d error(s), %d warning(s), %d note(s) (%.0f ms)\n", rep.Config, rep.Errors, rep.Warnings, rep.Infos, rep.ElapsedMS)
	return code
}
