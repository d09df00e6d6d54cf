package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// Stage keys of the comparison, in kernel order.
var stageKeys = []string{"untracked-out", "output", "untracked-in", "preDNAT", "input", "forward"}

// Verdicts is one probe's verdict per stage key ("-": not reached).
type Verdicts map[string]string

// explainer evaluates probes offline, the way `nfgate explain` does:
// load the configuration, compile it, walk the packet through the stages.
type explainer struct {
	dir  string // holds nfgate.toml and case.yaml
	prog *policy.Program
	bin  string // the nfgate binary ("" to skip the command-line check)
}

// explainTOML is the offline configuration: the case's YAML, the node name.
const explainTOML = "include = [\"case.yaml\"]\n\n[gateway]\nnodeName = \"gw\"\n"

// newExplainer writes the case and loads it; rejected holds nfgate's
// errors when it refuses the configuration.
func newExplainer(dir string, yaml []byte, bin string) (e *explainer, rejected string, err error) {
	if err := os.WriteFile(filepath.Join(dir, "case.yaml"), yaml, 0o644); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "nfgate.toml"), []byte(explainTOML), 0o644); err != nil {
		return nil, "", err
	}
	l, err := config.Load(filepath.Join(dir, "nfgate.toml"))
	if err != nil {
		return nil, err.Error(), nil
	}
	prog, err := policy.Compile(l.Policy)
	if err != nil {
		return nil, err.Error(), nil
	}
	return &explainer{dir: dir, prog: prog, bin: bin}, "", nil
}

func iface(name string) policy.Interface {
	if name == "" {
		return policy.Interface{}
	}
	return policy.Interface{Name: name, Addrs: gwAddrs[name]}
}

func ctState(s string) classify.CTState {
	switch s {
	case "invalid":
		return classify.CTInvalid
	case "untracked":
		return classify.CTUntracked
	case "established":
		return classify.CTEstablished
	case "related":
		return classify.CTRelated
	}
	return classify.CTNew
}

// Decided is what explain says decided a stage.
type Decided struct {
	policy.Description
	Dir policy.Dir
}

// walk is explain's evaluation of a probe: the stages it passes and why.
func (e *explainer) walk(p *Probe, path Path) (Verdicts, []string, map[string]Decided) {
	pp := policy.Path{FromLocal: path.FromLocal, ToLocal: path.Local, DNATAddr: path.DNAT, DNATPort: path.DNATPort}
	pp.In, pp.Out, pp.OutBeforeDNAT = iface(path.In), iface(path.Out), iface(path.OutBeforeDNAT)
	pkt := classify.Packet{Src: p.Src, Dst: p.Dst, Proto: p.Proto, Family: classify.IPv6, Class: classify.OK,
		CT: ctState(p.expectedCT())}
	if p.Src.Is4() {
		pkt.Family = classify.IPv4
	}
	if p.hasPorts() {
		pkt.SrcPort, pkt.DstPort = p.SPort, p.DPort
	}
	if p.isICMP() {
		pkt.ICMPType, pkt.ICMPCode = p.ICMPType, p.ICMPCode
	}
	tr := e.prog.Walk(pp, pkt)
	var stages []string
	var why []string
	dec := map[string]Decided{}
	for i, s := range tr.Stages {
		key := s.Stage.String()
		if s.Stage == policy.StageUntracked {
			key = "untracked-in"
			if path.FromLocal && i == 0 {
				key = "untracked-out"
			}
		}
		stages = append(stages, key, s.Decision.Verdict.String())
		why = append(why, key+": "+e.prog.Describe(s.Decision).String())
		dec[key] = Decided{e.prog.Describe(s.Decision), s.Decision.Dir}
	}
	return fillStages(path, stages), why, dec
}

// explainProbe walks a probe the way the runner does: on its route, or,
// when explain's own untracked stage accepted it (NOTRACK: no DNAT), on
// the route without DNAT.
func (e *explainer) explainProbe(p *Probe) (Verdicts, []string, map[string]Decided, Path) {
	v, why, dec := e.walk(p, p.Path())
	if notracked(dec) && p.pathNoNAT() != p.Path() {
		v, why, dec = e.walk(p, p.pathNoNAT())
		return v, why, dec, p.pathNoNAT()
	}
	return v, why, dec, p.Path()
}

// notracked reports whether explain's untracked stage NOTRACKed the
// packet: an Allow rule did (a failsafe ACCEPT in raw leaves it tracked).
func notracked(dec map[string]Decided) bool {
	for _, k := range []string{"untracked-in", "untracked-out"} {
		if d, ok := dec[k]; ok && d.Verdict == vAccept && d.Reason != "failsafe" {
			return true
		}
	}
	return false
}

// fillStages turns the stages a walk listed into a verdict for every stage
// of the probe's path: a stage the walk did not list gets NONE (nfgate
// does not police it), or "-" after a DROP (not reached).
func fillStages(path Path, listed []string) Verdicts {
	v := Verdicts{}
	got := map[string]string{}
	for i := 0; i+1 < len(listed); i += 2 {
		got[listed[i]] = listed[i+1]
	}
	dropped := false
	for _, k := range pathStages(path) {
		switch {
		case dropped:
			v[k] = vUnreached
		case got[k] != "":
			v[k] = got[k]
		default:
			v[k] = vNone
		}
		if v[k] == vDrop {
			dropped = true
		}
	}
	return v
}

// pathStages lists the stage keys a path passes, in order.
func pathStages(path Path) []string {
	var out []string
	if path.FromLocal {
		out = append(out, "untracked-out", "output")
		if !path.Local {
			return out
		}
	}
	out = append(out, "untracked-in", "preDNAT")
	if path.Local {
		return append(out, "input")
	}
	return append(out, "forward")
}

type explainJSON struct {
	Final  string `json:"final"`
	Stages []struct {
		Stage   string `json:"stage"`
		Verdict string `json:"verdict"`
	} `json:"stages"`
}

// explainArgs is the `nfgate explain` command line of a probe, or nil when
// the command line cannot say it (a locally originated packet whose route
// changes with DNAT: explain has no flag for the route before DNAT).
func (e *explainer) explainArgs(p *Probe) []string {
	path := p.Path()
	if path.OutBeforeDNAT != "" {
		return nil
	}
	args := []string{"explain", "--json", "--config", filepath.Join(e.dir, "nfgate.toml"),
		"--src", p.Src.String(), "--dst", p.Dst.String(), "--proto", strconv.Itoa(int(p.Proto)), "--ct", p.expectedCT()}
	for _, n := range []string{"eth0", "eth1", "lo"} {
		for _, a := range gwAddrs[n] {
			args = append(args, "--iface-addr", n+"="+a.String())
		}
	}
	switch {
	case path.FromLocal && path.Local:
		args = append(args, "--from-local", "--local", "--in", "lo")
	case path.FromLocal:
		args = append(args, "--from-local", "--out", path.Out)
	case path.Local:
		args = append(args, "--in", path.In, "--local")
	default:
		args = append(args, "--in", path.In, "--out", path.Out)
	}
	if p.hasPorts() {
		args = append(args, "--sport", strconv.Itoa(int(p.SPort)), "--dport", strconv.Itoa(int(p.DPort)))
	}
	if p.isICMP() {
		args = append(args, "--icmp-type", strconv.Itoa(int(p.ICMPType)), "--icmp-code", strconv.Itoa(int(p.ICMPCode)))
	}
	if path.DNAT.IsValid() {
		d := path.DNAT.String()
		if path.DNATPort != 0 && p.hasPorts() {
			d = netip.AddrPortFrom(path.DNAT, path.DNATPort).String()
		}
		args = append(args, "--dnat-to", d)
	}
	return args
}

// command runs `nfgate explain --json` for a probe; ok is false when the
// command line cannot express the probe.
func (e *explainer) command(p *Probe) (v Verdicts, ok bool, err error) {
	args := e.explainArgs(p)
	if args == nil || e.bin == "" {
		return nil, false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, true, fmt.Errorf("nfgate %v: %v: %s", args, err, errb.String())
	}
	var res explainJSON
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, true, fmt.Errorf("nfgate explain: %v: %s", err, out.String())
	}
	var listed []string
	for i, s := range res.Stages {
		key := s.Stage
		if key == "untracked" {
			key = "untracked-in"
			if p.Path().FromLocal && i == 0 {
				key = "untracked-out"
			}
		}
		listed = append(listed, key, s.Verdict)
	}
	return fillStages(p.Path(), listed), true, nil
}
