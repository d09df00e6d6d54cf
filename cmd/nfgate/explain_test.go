package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/policytest"
)

// The forwarded-traffic guide's tutorial, loaded in memory.
func explainConfig() *policy.Config {
	return &policy.Config{
		Settings: policy.Settings{NodeName: "myhost", FailsafeInbound: policy.DefaultFailsafeInbound(), FailsafeOutbound: policy.DefaultFailsafeOutbound()},
		HostEndpoints: []policy.HostEndpoint{{Name: "myhost.eth1", InterfaceName: "", ExpectedIPs: policytest.Addrs("198.19.0.45"),
			Labels: policytest.Labels("network=maintenance")}},
		Policies: []policy.GlobalNetworkPolicy{{Name: "allow-ssh-maintenance", Selector: policytest.Sel("network == 'maintenance'"),
			ApplyOnForward: true, Types: []policy.PolicyType{policy.Egress},
			Egress: []policy.Rule{policytest.Allow(policytest.P("TCP"), policytest.DstPorts("22"))}}},
	}
}

func runExplainTest(t *testing.T, args string) (int, string, string) {
	t.Helper()
	old := loadPolicy
	loadPolicy = func(string) (*policy.Config, error) { return explainConfig(), nil }
	defer func() { loadPolicy = old }()
	var out, errb bytes.Buffer
	code := runExplain(strings.Fields(args), &out, &errb)
	return code, out.String(), errb.String()
}

func TestExplainJSON(t *testing.T) {
	for _, c := range []struct {
		args  string
		final string
		last  explainStage
	}{
		{"--dport 22", "ACCEPT", explainStage{Stage: "forward", Interface: "eth1", Verdict: "ACCEPT", Endpoint: "myhost.eth1", Tier: "default", Policy: "allow-ssh-maintenance", Rule: 0, Reason: "rule"}},
		{"--dport 80", "DROP", explainStage{Stage: "forward", Interface: "eth1", Verdict: "DROP", Endpoint: "myhost.eth1", Tier: "default", Rule: -1, Reason: "end-of-tier"}},
		{"--dport 80 --ct established", "ACCEPT", explainStage{Stage: "forward", Interface: "eth1", Verdict: "ACCEPT", Endpoint: "myhost.eth1", Rule: -1, Reason: "conntrack"}},
	} {
		args := "--config x.toml --in eth0 --out eth1 --iface-addr eth1=198.19.0.45 --iface-addr eth0=198.18.0.1 --src 198.18.5.5 --sport 40000 --dst 198.19.7.7 --proto TCP --json " + c.args
		code, out, errs := runExplainTest(t, args)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.args, code, errs)
		}
		var res explainResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%s: %v\n%s", c.args, err, out)
		}
		if res.Final != c.final || len(res.Stages) == 0 || res.Stages[len(res.Stages)-1] != c.last {
			t.Errorf("%s: got %+v, want final %s last %+v", c.args, res, c.final, c.last)
		}
	}
}

func TestExplainText(t *testing.T) {
	code, out, errs := runExplainTest(t, "--config x.toml --in eth1 --local --iface-addr eth1=198.19.0.45 --src 198.19.7.7 --dst 198.19.0.45 --proto tcp --dport 22")
	if code != 0 || !strings.Contains(out, "input") || !strings.Contains(out, "failsafe") || !strings.HasSuffix(out, "final: ACCEPT\n") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
}

func TestExplainUsage(t *testing.T) {
	for _, args := range []string{
		"--in eth0 --out eth1 --src 198.18.0.1 --dst 198.18.0.2 --proto TCP",
		"--config x --in eth0 --src 198.18.0.1 --dst 198.18.0.2 --proto TCP",
		"--config x --in eth0 --out eth1 --local --src 198.18.0.1 --dst 198.18.0.2 --proto TCP",
		"--config x --in eth0 --out eth1 --src 198.18.0.1 --dst 2001:db8::1 --proto TCP",
		"--config x --in eth0 --out eth1 --src 198.18.0.1 --dst 198.18.0.2 --proto bogus",
		"--config x --in eth0 --out eth1 --src 198.18.0.1 --dst 198.18.0.2 --proto TCP --ct weird",
		"--config x --in eth0 --out eth1 --src 198.18.0.1 --dst 198.18.0.2 --proto TCP --dnat-to nope",
		"--config x --in eth0 --out eth1 --src 198.18.0.1 --dst 198.18.0.2 --proto TCP --iface-addr eth0",
		"--config x --from-local --out eth1 --src 198.18.0.1 --dst 198.18.0.2 --proto TCP --out-before-dnat eth0",
	} {
		if code, _, errs := runExplainTest(t, args); code != 2 || errs == "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
}

// Locally originated traffic that nat OUTPUT DNATs: Calico polices it in
// mangle POSTROUTING, where an Allow only returns, so explain reports NONE
// (the host's OUTPUT rules decide) as the live daemon behaves; a Deny is a
// DROP (issue 11 item 9).
func TestExplainDNATedLocalOutput(t *testing.T) {
	old := loadPolicy
	defer func() { loadPolicy = old }()
	loadPolicy = func(string) (*policy.Config, error) {
		cfg := explainConfig()
		cfg.Policies[0].ApplyOnForward = false
		cfg.Policies[0].Egress = append(cfg.Policies[0].Egress, policytest.Deny(policytest.P("TCP"), policytest.DstPorts("80")))
		return cfg, nil
	}
	base := "--config x.toml --from-local --out eth1 --iface-addr eth1=198.19.0.45 --src 198.19.0.45 --sport 40000 --dst 198.18.0.1 --proto TCP --json "
	for _, c := range []struct {
		args, final, verdict, hook string
	}{
		{"--dport 22 --dnat-to 198.19.7.7", "NONE", "NONE", "postrouting"},
		{"--dport 80 --dnat-to 198.19.7.7", "DROP", "DROP", "postrouting"},
		{"--dport 22", "ACCEPT", "ACCEPT", ""},
	} {
		var out, errb bytes.Buffer
		if code := runExplain(strings.Fields(base+c.args), &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d: %s", c.args, code, errb.String())
		}
		var res explainResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		last := res.Stages[len(res.Stages)-1]
		if res.Final != c.final || last.Stage != "output" || last.Verdict != c.verdict || last.Hook != c.hook {
			t.Errorf("%s: got final %s, last %+v; want %s / %s / hook %q", c.args, res.Final, last, c.final, c.verdict, c.hook)
		}
	}
}

// --out-before-dnat: raw OUTPUT dispatches on the route chosen before nat
// OUTPUT's DNAT, as the kernel (and the live daemon) does.
func TestExplainOutBeforeDNAT(t *testing.T) {
	old := loadPolicy
	defer func() { loadPolicy = old }()
	loadPolicy = func(string) (*policy.Config, error) {
		return &policy.Config{Settings: policy.Settings{NodeName: "gw"},
			HostEndpoints: []policy.HostEndpoint{{Name: "gw.eth0", InterfaceName: "eth0", Labels: policytest.Labels("side=out")}},
			Policies: []policy.GlobalNetworkPolicy{{Name: "dnt", Selector: policytest.Sel("side == 'out'"), DoNotTrack: true, ApplyOnForward: true,
				Types: []policy.PolicyType{policy.Egress}, Egress: []policy.Rule{policytest.Deny(policytest.P("TCP"))}}}}, nil
	}
	base := "--config x.toml --from-local --out eth1 --src 198.19.0.1 --sport 40000 --dst 198.18.0.9 --dport 80 --proto TCP --dnat-to 198.19.7.7 --json"
	for _, c := range []struct{ extra, final string }{{"", "NONE"}, {" --out-before-dnat eth0", "DROP"}} {
		var out, errb bytes.Buffer
		if code := runExplain(strings.Fields(base+c.extra), &out, &errb); code != 0 {
			t.Fatalf("%q: exit %d: %s", c.extra, code, errb.String())
		}
		var res explainResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		if res.Final != c.final {
			t.Errorf("%q: final %s, want %s (%+v)", c.extra, res.Final, c.final, res.Stages)
		}
	}
}
