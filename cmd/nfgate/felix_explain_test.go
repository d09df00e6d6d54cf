package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 11, second round: what the real Felix v3.32.1 did, and what
// `nfgate explain` must say. Each row was run on Felix (shared/calico's
// felix-oracle.sh, iptables mode) in a gateway namespace with eth1
// (198.18.1.1/24), eth2 (198.18.2.1/24) and cali1 (198.18.3.1/24, a
// workload interface, no WorkloadEndpoint): the files in testdata/felix
// applied with calicoctl, one TCP connection from the source, twice (host
// chains at ACCEPT, then at DROP) to tell ACCEPT from NONE. The files are
// loaded here as local files, in the order given.
var felixCases = []struct {
	files             []string
	in, out, src, dst string
	port              int
	felix             string
}{
	// A staged policy in a tier of its own: no end-of-tier drop, the
	// profile decides; not applyOnForward, so forwarding keeps its default.
	{[]string{"staged-only-tier"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "ACCEPT"},
	{[]string{"staged-only-tier"}, "eth1", "eth2", "198.18.1.2", "198.18.2.2", 80, "ACCEPT"},
	// A "*" endpoint's preDNAT Deny of 9000 reaches eth1 (its named endpoint
	// has no preDNAT policy) until a staged preDNAT policy selects it.
	{[]string{"wildcard-prednat-deny"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 9000, "DROP"},
	{[]string{"wildcard-prednat-deny", "staged-prednat-named"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 9000, "ACCEPT"},
	{[]string{"wildcard-prednat-deny", "staged-prednat-named"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 8080, "ACCEPT"},
	// A staged (stagedAction Learn) applyOnForward Egress policy selecting
	// eth1's endpoint takes away its forward default allow: leaving by
	// eth1 is NONE; arriving by it, eth2's default allow still accepts.
	{[]string{"staged-forward-learn"}, "eth1", "eth2", "198.18.1.2", "198.18.2.2", 80, "ACCEPT"},
	{[]string{"staged-forward-learn"}, "eth2", "eth1", "198.18.2.2", "198.18.1.2", 80, "NONE"},
	// stagedAction Delete: Felix never sees it.
	{[]string{"heps-eth1-eth2", "staged-delete"}, "eth1", "eth2", "198.18.1.2", "198.18.2.2", 80, "ACCEPT"},
	// A NetworkSet in namespace ns1 (role=trusted, 198.18.1.2/32) and the
	// source selectors of an Allow rule; then with Profile kns.ns1
	// (labelsToApply pcns.team=x, role=untrusted, extra=gold).
	{[]string{"networkset-ns1", "networkset-rule-1"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "ACCEPT"},
	{[]string{"networkset-ns1", "networkset-rule-2"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "DROP"},
	{[]string{"networkset-ns1", "networkset-rule-3"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "ACCEPT"},
	{[]string{"networkset-ns1", "networkset-rule-4"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "DROP"},
	{[]string{"networkset-ns1", "networkset-rule-5"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "ACCEPT"},
	{[]string{"networkset-ns1", "networkset-rule-6"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "ACCEPT"},
	{[]string{"networkset-ns1", "networkset-rule-7"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "ACCEPT"},
	{[]string{"networkset-ns1", "networkset-rule-8", "profile-kns-ns1"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "ACCEPT"},
	{[]string{"networkset-ns1", "networkset-rule-9", "profile-kns-ns1"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "ACCEPT"},
	{[]string{"networkset-ns1", "networkset-rule-10", "profile-kns-ns1"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "DROP"},
	{[]string{"networkset-ns1", "networkset-rule-11", "profile-kns-ns1"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "ACCEPT"},
	{[]string{"networkset-ns1", "networkset-rule-12", "profile-kns-ns1"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "DROP"},
	// Selector-scoped FelixConfigurations (failsafeInboundHostPorts; eth1's
	// endpoint has no policy, so only failsafe ports are accepted).
	{[]string{"node-felix-berlin"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 22, "DROP"},
	{[]string{"node-felix-berlin"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "ACCEPT"},
	{[]string{"node-felix-berlin"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 9000, "DROP"},
	{[]string{"node-berlin", "hep-eth1", "felix-berlin", "felix-aaa-newer"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "ACCEPT"}, // the oldest wins
	{[]string{"node-berlin", "hep-eth1", "felix-berlin", "felix-aaa-newer"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 9000, "DROP"},
	{[]string{"node-paris", "hep-eth1", "felix-berlin", "felix-aaa-newer"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "DROP"},
	{[]string{"node-paris", "hep-eth1", "felix-berlin", "felix-aaa-newer"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 9000, "ACCEPT"},
	{[]string{"node-paris", "hep-eth1", "felix-berlin", "felix-aaa-newer", "felix-node-gw"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 8080, "ACCEPT"},
	{[]string{"node-paris", "hep-eth1", "felix-berlin", "felix-aaa-newer", "felix-node-gw"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 9000, "DROP"},
	{[]string{"node-unlabelled-felix-all", "hep-eth1"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 22, "ACCEPT"},
	{[]string{"node-unlabelled-felix-all", "hep-eth1"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "DROP"},
	// cali1, an unknown workload interface: dropped to the host (even with
	// defaultEndpointToHostAction Accept) and forwarded either way, while
	// a "*" endpoint allows the rest.
	{[]string{"wildcard-forward-allow"}, "cali1", "local", "198.18.3.2", "198.18.3.1", 80, "DROP"},
	{[]string{"wildcard-forward-allow"}, "cali1", "eth2", "198.18.3.2", "198.18.2.2", 80, "DROP"},
	{[]string{"wildcard-forward-allow"}, "eth1", "cali1", "198.18.1.2", "198.18.3.2", 80, "DROP"},
	{[]string{"wildcard-forward-allow"}, "eth1", "eth2", "198.18.1.2", "198.18.2.2", 80, "ACCEPT"},
	{[]string{"wildcard-forward-allow"}, "eth1", "local", "198.18.1.2", "198.18.1.1", 80, "ACCEPT"},
}

func TestExplainAgreesWithFelix(t *testing.T) {
	for _, c := range felixCases {
		name := fmt.Sprintf("%s %s>%s %d", strings.Join(c.files, "+"), c.in, c.out, c.port)
		dir := t.TempDir()
		var inc []string
		for _, f := range c.files {
			abs, err := filepath.Abs(filepath.Join("testdata", "felix", f+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			inc = append(inc, fmt.Sprintf("%q", abs))
		}
		main := filepath.Join(dir, "nfgate.toml")
		if err := os.WriteFile(main, []byte("include = ["+strings.Join(inc, ", ")+"]\n[gateway]\nnodeName = \"gw\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		where := "--out " + c.out
		if c.out == "local" {
			where = "--local"
		}
		args := fmt.Sprintf("--config %s --in %s %s --src %s --dst %s --proto TCP --sport 40000 --dport %d --json "+
			"--iface-addr eth1=198.18.1.1 --iface-addr eth2=198.18.2.1 --iface-addr cali1=198.18.3.1", main, c.in, where, c.src, c.dst, c.port)
		var out, errb bytes.Buffer
		if code := runExplain(strings.Fields(args), &out, &errb); code != 0 {
			t.Errorf("%s: exit %d: %s", name, code, errb.String())
			continue
		}
		var res explainResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out.String())
		}
		if res.Final != c.felix {
			t.Errorf("%s: nfgate %s, Felix %s\n%s", name, res.Final, c.felix, out.String())
		}
	}
	t.Logf("%d explain verdicts agree with the real Felix v3.32.1", len(felixCases))
}
