package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/nfgate/nfgate/bench/netbench"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/policy/config"
)

func runDiffArgs(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runDiff(args, &out, &errb)
	return code, out.String(), errb.String()
}

// labEdit is the lab's policy with SSH from half the application network
// only, and HTTP too.
func labEdit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(labConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `destination = { ports = [22] }`, `destination = { ports = [22, 80] }`, 1)
	s = strings.Replace(s, `source = { nets = ["198.18.1.0/24"] }`, `source = { nets = ["198.18.1.0/25"] }`, 1)
	path := filepath.Join(t.TempDir(), "nfgate.toml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDiffCommand(t *testing.T) {
	newPath := labEdit(t)
	code, out, errs := runDiffArgs("--config", newPath, "--against", labConfigPath)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (differences)\n%s%s", code, out, errs)
	}
	for _, want := range []string{
		"forward  in: app0, ext0, mnt0, (other)  out: mnt0",
		"ipv4    198.18.1.0/25    *    tcp    *      80     *     DROP end of tier default",
		"ACCEPT default/allow-ssh-maintenance#0 (" + newPath + ":50)",
		"ipv4    198.18.1.128/25  *    tcp    *      22     *     ACCEPT default/allow-ssh-maintenance#0 (../../examples/lab/nfgate.toml:50)",
		"old: Allow policy default/allow-ssh-maintenance egress rule 0 (../../examples/lab/nfgate.toml:50)",
		"3 stage(s) differ in 6 region(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}

	// The same configuration, YAML and TOML: no difference, exit 0.
	code, out, _ = runDiffArgs("--config", "../../examples/pre-dnat/nfgate.toml", "--against", "../../examples/pre-dnat/nfgate-native.toml")
	if code != 0 || !strings.Contains(out, "No difference") {
		t.Errorf("YAML vs TOML: exit %d\n%s", code, out)
	}

	// Usage and load errors: exit 2.
	if code, _, _ := runDiffArgs("--config", newPath); code != 2 {
		t.Errorf("no --against/--pid: exit %d", code)
	}
	if code, _, errs := runDiffArgs("--config", "nope.toml", "--against", labConfigPath); code != 2 || !strings.Contains(errs, "nope.toml") {
		t.Errorf("missing file: exit %d: %s", code, errs)
	}
}

func TestDiffJSONAndTraceFlows(t *testing.T) {
	newPath := labEdit(t)
	code, out, errs := runDiffArgs("--config", newPath, "--against", labConfigPath, "--flows", "testdata/replay_app0_mnt0.jsonl", "--json")
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	var rep diffReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Equivalent || !rep.Complete || len(rep.Stages) != 3 || rep.Flows == nil {
		t.Fatalf("report: %+v", rep)
	}
	c := rep.Stages[0].Changes[0]
	if c.Family != 4 || c.Src != "198.18.1.0/25" || c.Proto != "tcp" || c.DPort != "80" || c.Old.Verdict != "DROP" || c.New.Verdict != "ACCEPT" ||
		c.New.Policy != "allow-ssh-maintenance" || c.New.Line != 50 || c.Old.Reason != "end-of-tier" {
		t.Errorf("first change: %+v", c)
	}
	f := rep.Flows
	// The trace's flows (one malformed line skipped): HTTP from .10 is now allowed.
	if f.Flows != 5 || f.Changed != 1 || f.Cut != 0 || len(f.Sample) != 1 || f.Sample[0].Flow != "tcp 198.18.1.10:41002 -> 198.18.2.10:80" {
		t.Errorf("flows: %+v", f)
	}
	if len(f.ByNewRule) != 1 || f.ByNewRule[0].Policy != "allow-ssh-maintenance" || f.ByNewRule[0].Flows != 1 {
		t.Errorf("by rule: %+v", f.ByNewRule)
	}
}

func TestDiffCaptureFlows(t *testing.T) {
	newPath := labEdit(t)
	capPath := writeCapture(t, "app0.pcap", false, layers.LinkTypeEthernet, forwardedPackets())
	code, out, errs := runDiffArgs("--config", newPath, "--against", labConfigPath, "--flows", capPath, "--in", "app0", "--out", "mnt0", "--json")
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	var rep diffReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	// Five flows (the truncated packet is skipped); HTTP changes.
	if f := rep.Flows; f == nil || f.Flows != 5 || f.Changed != 1 || f.Sample[0].Flow != "tcp 198.18.1.10:41002 -> 198.18.2.10:80" {
		t.Errorf("flows: %+v", rep.Flows)
	}
	if code, _, errs := runDiffArgs("--config", newPath, "--against", labConfigPath, "--flows", capPath); code != 2 || !strings.Contains(errs, "needs its path") {
		t.Errorf("capture without a path: exit %d %s", code, errs)
	}
}

func TestDaemonArgs(t *testing.T) {
	stubProcess(t)
	old := readCmdline
	t.Cleanup(func() { readCmdline = old })
	processName = func(int) (string, error) { return "nfgate", nil }
	for _, c := range []struct {
		cmdline    string
		cfg, stats string
	}{
		{"nfgate\x00run\x00--config\x00/etc/x.toml\x00--stats\x00/run/s.json\x00", "/etc/x.toml", "/run/s.json"},
		{"nfgate\x00run\x00-config=/a.toml\x00", "/a.toml", ""},
		{"/usr/bin/nfgate\x00run\x00", "/etc/nfgate/nfgate.toml", ""},
	} {
		readCmdline = func(int) ([]byte, error) { return []byte(c.cmdline), nil }
		cfg, stats, err := daemonArgs(os.Getpid())
		if err != nil || cfg != c.cfg || stats != c.stats {
			t.Errorf("%q: %q %q %v", c.cmdline, cfg, stats, err)
		}
	}
	processName = func(int) (string, error) { return "sshd", nil }
	if _, _, err := daemonArgs(1); err == nil || !strings.Contains(err.Error(), "not nfgate") {
		t.Errorf("another process: %v", err)
	}
}

// The running copy: kept when a policy goes live, found by its hash even
// after the file on disk was edited; a stale copy is never used.
func TestRunningCopy(t *testing.T) {
	stubProcess(t)
	old := readCmdline
	t.Cleanup(func() { readCmdline = old })
	dir := t.TempDir()
	cfg := filepath.Join(dir, "nfgate.toml")
	yaml := filepath.Join(dir, "policies", "p.yaml")
	os.MkdirAll(filepath.Dir(yaml), 0o700)
	pol := "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: p\nspec:\n  selector: all()\n  types: [Ingress]\n  ingress:\n  - action: Allow\n    protocol: TCP\n    destination: {ports: [%d]}\n"
	os.WriteFile(cfg, []byte("include = [\"policies/*.yaml\"]\n[gateway]\nnodeName = \"gw\"\n[[hostEndpoint]]\nname = \"h\"\ninterfaceName = \"eth0\"\nnode = \"gw\"\n"), 0o600)
	os.WriteFile(yaml, []byte(strings.Replace(pol, "%d", "22", 1)), 0o600)
	stats := filepath.Join(dir, "stats.json")
	processName = func(int) (string, error) { return "nfgate", nil }
	readCmdline = func(int) ([]byte, error) {
		return []byte("nfgate\x00run\x00--config\x00" + cfg + "\x00--stats\x00" + stats + "\x00"), nil
	}

	ld, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	short := func(l *config.Loaded) string { return hexShort(l.Hash[:]) }
	keepRunningCopy(stats, &engine.Loaded{Hash: short(ld), Files: ld.Files}, slog.Default())
	os.WriteFile(stats, []byte(`{"gen": 1, "hash": "`+short(ld)+`"}`), 0o600)
	// The operator edits the included file.
	os.WriteFile(yaml, []byte(strings.Replace(pol, "%d", "2222", 1)), 0o600)
	run, strip, desc, err := runningConfig(42, "")
	if err != nil {
		t.Fatal(err)
	}
	if short(run) != short(ld) || strip == "" || !strings.Contains(desc, "generation 1") {
		t.Errorf("running copy: hash %s (want %s), strip %q, %q", short(run), short(ld), strip, desc)
	}
	if !strings.HasSuffix(run.Policy.Policies[0].Pos.File, yaml) {
		t.Errorf("positions: %s", run.Policy.Policies[0].Pos.File)
	}
	// The daemon reports another hash: the copy is stale, the file too.
	os.WriteFile(stats, []byte(`{"gen": 2, "hash": "00000000"}`), 0o600)
	if _, _, _, err := runningConfig(42, ""); err == nil || !strings.Contains(err.Error(), "--against") {
		t.Errorf("stale copy: %v", err)
	}
}

func hexShort(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 8)
	for i := range 4 {
		out[2*i], out[2*i+1] = digits[b[i]>>4], digits[b[i]&15]
	}
	return string(out)
}

// BenchmarkDiff10k is `nfgate diff` of two 10,000-rule configurations
// (bench/netbench's policy) that differ in ten rules, loading included.
func BenchmarkDiff10k(b *testing.B) {
	topo := netbench.Topology{Node: "gw", ServerIf: "srv0", ServerIP: "198.18.1.1"}
	rules := netbench.Policy(10000, 1)
	dir := b.TempDir()
	oldDir, newDir := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	os.MkdirAll(oldDir, 0o700)
	os.MkdirAll(newDir, 0o700)
	oldPath, err := netbench.WriteConfig(oldDir, rules, topo, false)
	if err != nil {
		b.Fatal(err)
	}
	mod := append([]netbench.Rule(nil), rules...)
	for i := 100; i < len(mod); i += 1000 {
		mod[i].Allow = !mod[i].Allow
	}
	newPath, err := netbench.WriteConfig(newDir, mod, topo, false)
	if err != nil {
		b.Fatal(err)
	}
	var ms runtime.MemStats
	for b.Loop() {
		t0 := time.Now()
		code, out, errs := runDiffArgs("--config", newPath, "--against", oldPath)
		if code != 1 || !strings.Contains(out, "stage(s) differ") {
			b.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		b.ReportMetric(float64(time.Since(t0).Milliseconds()), "ms/diff")
	}
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapSys>>20), "MB-heap-sys")
}
