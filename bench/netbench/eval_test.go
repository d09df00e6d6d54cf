package netbench

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// BenchmarkPolicyForward is the userspace half of a new flow's cost: one
// forward-stage evaluation of the generated policy (no kernel, no queue).
func BenchmarkPolicyForward(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		dir := b.TempDir()
		path := filepath.Join(dir, "nfgate.toml")
		os.WriteFile(path, []byte(NfgateTOML(Policy(n, 1), Topology{Node: "gw", ServerIf: "srv0", ServerIP: GWServerIP})), 0o644)
		ld, err := config.Load(path)
		if err != nil {
			b.Fatal(err)
		}
		prog, err := policy.Compile(ld.Policy)
		if err != nil {
			b.Fatal(err)
		}
		out := prog.Bind(policy.Interface{Name: "srv0", Addrs: []netip.Addr{netip.MustParseAddr(GWServerIP)}})
		in := prog.Bind(policy.Interface{Name: "cli0", Addrs: []netip.Addr{netip.MustParseAddr(GWClientIP)}})
		for _, c := range []struct {
			name string
			port uint16
		}{{"early", PortUDPEarly}, {"deep", PortUDPDeep}, {"denied", PortDenied}} {
			b.Run(fmt.Sprintf("rules=%d/%s", n, c.name), func(b *testing.B) {
				pkt := classify.Packet{Family: classify.IPv4, Proto: classify.ProtoUDP, Src: netip.MustParseAddr(ClientIP),
					Dst: netip.MustParseAddr(ServerIP), SrcPort: 40000, DstPort: c.port, Class: classify.OK, CT: classify.CTNew}
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					pkt.SrcPort = uint16(1024 + i%60000)
					prog.Forward(in.ForwardIn, out.Filter, false, &pkt)
				}
			})
		}
	}
}

// BenchmarkLoadCompile is most of a reload's cost: reading and validating
// the generated configuration (as nfgate TOML, or as Calico YAML manifests
// included from a small TOML file), then compiling it.
func BenchmarkLoadCompile(b *testing.B) {
	topo := Topology{Node: "gw", ServerIf: "srv0", ServerIP: GWServerIP}
	for _, n := range []int{1000, 10000} {
		rules := Policy(n, 1)
		tomlPath, err1 := WriteConfig(b.TempDir(), rules, topo, false)
		yamlMain, err2 := WriteConfig(b.TempDir(), rules, topo, true)
		if err1 != nil || err2 != nil {
			b.Fatal(err1, err2)
		}
		for _, f := range []struct{ name, path string }{{"toml", tomlPath}, {"yaml", yamlMain}} {
			b.Run(fmt.Sprintf("rules=%d/load-%s", n, f.name), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					ld, err := config.Load(f.path)
					if err != nil {
						b.Fatal(err)
					}
					if len(ld.Policy.Policies) != (n+maxRulesPerPol-1)/maxRulesPerPol {
						b.Fatalf("%d policies", len(ld.Policy.Policies))
					}
				}
			})
		}
		ld, err := config.Load(tomlPath)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("rules=%d/compile", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := policy.Compile(ld.Policy); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
