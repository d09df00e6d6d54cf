//go:build linux

package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// minimise shrinks the configuration of a disagreement while the same
// stage keeps differing in the same way (Felix, explain and live verdicts
// unchanged), re-running Felix for every candidate, and returns it as a
// regression case. budget bounds the Felix runs.
func (r *runner) minimise(c *Case, d Disagreement, res *Result, budget int) (*Regression, error) {
	p := *d.Probe
	p.ID = 1
	last := res
	lastCase := c
	n := 0
	fails := func(cand *Resources) bool {
		n++
		dir := filepath.Join(r.dir, fmt.Sprintf("shrink-%d", n))
		os.MkdirAll(dir, 0o755)
		defer os.RemoveAll(dir)
		ex, refused, err := newExplainer(dir, cand.YAML(), "")
		if err != nil || refused != "" {
			return false
		}
		// nfgate's answer must stay what it was (cheap, no Felix run).
		if v, _, _ := ex.walk(&p, res.ExplainPath); !sameVerdicts(v, res.Explain) {
			return false
		}
		cc := &Case{Name: c.Name + "-min", Seed: c.Seed, Res: *cand, Probes: []*Probe{&p}}
		o, err := r.runCase(cc)
		if err != nil {
			r.t.Logf("minimise %s: %v", c.Name, err)
			return false
		}
		for _, x := range o.Disagreements {
			if !x.Consequence && x.Stage == d.Stage && x.Felix == d.Felix && x.Explain == d.Explain && x.Live == d.Live {
				last, lastCase = resultOf(o.Results, x.Probe), cc
				return true
			}
		}
		return false
	}
	small, steps, tries := shrink(&c.Res, fails, budget)
	// Classify on the minimised case.
	ds := last.disagreements(lastCase.Name)
	classifyProbe(lastCase, ds, last)
	cause := d.Cause
	for _, x := range ds {
		if x.Stage == d.Stage {
			cause = x.Cause
		}
	}
	yaml := marshalDocs(small.docs(false))
	if small.Felix != nil {
		yaml = marshalDocs(small.docs(true))
	}
	reg := &Regression{
		Description: fmt.Sprintf("%s: at stage %s Felix says %s, nfgate explain %s, the live nfgate %s",
			p.Describe(), d.Stage, d.Felix, d.Explain, d.Live),
		Cause:     cause + ": " + causeText(cause),
		Origin:    fmt.Sprintf("%s probe %d, minimised in %d Felix runs (%d steps)", c.Name, d.Probe.ID, tries, len(steps)),
		Resources: string(yaml),
		Probe:     regressionProbe(&p, last.Path),
		Felix:     map[string]string(last.Felix),
		Live:      map[string]string(last.Live),
	}
	if !sameVerdicts(last.Explain, last.Felix) {
		reg.Pending = cause + ": " + causeText(cause)
	}
	if !sameVerdicts(last.Live, last.Felix) {
		reg.LivePending = cause + ": " + causeText(cause)
	}
	return reg, nil
}

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	s = strings.Trim(slugRE.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 48 {
		s = strings.TrimRight(s[:48], "-")
	}
	return s
}

// minimiseConfig shrinks a configuration one side refuses while the
// refusal keeps its cause, and returns it as a regression case.
func (r *runner) minimiseConfig(c *Case, cause string, budget int) (*Regression, error) {
	n := 0
	var lastMsg string
	fails := func(cand *Resources) bool {
		n++
		dir := filepath.Join(r.dir, fmt.Sprintf("shrinkc-%d", n))
		os.MkdirAll(dir, 0o755)
		defer os.RemoveAll(dir)
		cc := &Case{Name: c.Name + "-min", Seed: c.Seed, Res: *cand}
		o, err := r.runCase(cc)
		if err != nil {
			r.t.Logf("minimise %s: %v", c.Name, err)
			return false
		}
		if o.Config != "" && !o.Refused && configCause(cc, o.Config) == cause {
			lastMsg = o.Config
			return true
		}
		return false
	}
	small, steps, tries := shrink(&c.Res, fails, budget)
	if lastMsg == "" {
		return nil, fmt.Errorf("%s: the refusal did not reproduce", c.Name)
	}
	yaml := marshalDocs(small.docs(false))
	if small.Felix != nil {
		yaml = marshalDocs(small.docs(true))
	}
	felix, live := "loaded", "refused"
	if strings.HasPrefix(lastMsg, "calicoctl refused") {
		felix, live = "refused", "loaded"
	}
	reg := &Regression{
		Description: firstLine(lastMsg),
		Cause:       cause + ": " + causeText(cause),
		Origin:      fmt.Sprintf("%s, minimised in %d Felix runs (%d steps)", c.Name, tries, len(steps)),
		Resources:   string(yaml),
		Felix:       map[string]string{"config": felix},
		Live:        map[string]string{"config": live},
	}
	reg.Pending, reg.LivePending = reg.Cause, reg.Cause
	return reg, nil
}
