package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine/trace"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

const labConfigPath = "../../examples/lab/nfgate.toml"

// capPacket is one IP packet of a generated capture, or a raw frame.
type capPacket struct {
	ip    []byte // an IP packet, framed per link type
	frame []byte // if set: written as is (Ethernet captures only)
}

var capStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// forwardedPackets are captured on app0 on their way to the maintenance
// network (lab addresses).
func forwardedPackets() []capPacket {
	syn := classify.TCPFlagSYN
	truncated := classify.BuildTCP4("198.18.1.10", "198.18.2.10", 41009, 22, syn)
	truncated = truncated[:20+8] // IPv4 header and 8 of TCP's 20 bytes
	binary.BigEndian.PutUint16(truncated[2:4], uint16(len(truncated)))
	return []capPacket{
		{ip: classify.BuildTCP4("198.18.1.10", "198.18.2.10", 41001, 22, syn)}, // allowed: SSH from the app network
		{ip: classify.BuildTCP4("198.18.1.10", "198.18.2.10", 41002, 80, syn)}, // denied: HTTP
		{ip: classify.BuildUDP4("198.18.1.10", "198.18.2.10", 41003, 53)},      // denied: UDP
		{ip: truncated}, // malformed: TCP header cut short
		{ip: classify.BuildTCP6("2001:db8:1::10", "2001:db8:2::10", 41004, 22, syn)}, // IPv6: the rule's source net is IPv4
		{ip: classify.BuildICMP4("198.18.1.10", "198.18.2.10", 8, 0)},                // ICMP echo: denied
	}
}

// frame wraps an IP packet for a link type.
func frame(t *testing.T, lt layers.LinkType, ip []byte) []byte {
	t.Helper()
	et := uint16(layers.EthernetTypeIPv4)
	if ip[0]>>4 == 6 {
		et = uint16(layers.EthernetTypeIPv6)
	}
	switch lt {
	case layers.LinkTypeEthernet:
		h := make([]byte, 14)
		copy(h, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1})
		binary.BigEndian.PutUint16(h[12:], et)
		return append(h, ip...)
	case layers.LinkTypeRaw:
		return ip
	case layers.LinkTypeLinuxSLL:
		h := make([]byte, 16)
		binary.BigEndian.PutUint16(h[2:], 1) // ARPHRD_ETHER
		binary.BigEndian.PutUint16(h[4:], 6)
		binary.BigEndian.PutUint16(h[14:], et)
		return append(h, ip...)
	case sll2:
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], et)
		binary.BigEndian.PutUint32(h[4:], 3) // ifindex
		binary.BigEndian.PutUint16(h[8:], 1)
		h[11] = 6
		return append(h, ip...)
	}
	t.Fatalf("no framing for link type %d", lt)
	return nil
}

// sll2 stands for Linux SLL2 (276) in the writers, which hold a link type
// in a uint8; writeCapture patches the file header.
const sll2 = layers.LinkType(linkSLL2 & 0xff)

// writeCapture writes pkts as a pcap (ng false) or pcapng file.
func writeCapture(t *testing.T, name string, ng bool, lt layers.LinkType, pkts []capPacket) string {
	t.Helper()
	var buf bytes.Buffer
	var write func(ci gopacket.CaptureInfo, b []byte) error
	var flush func() error
	if ng {
		w, err := pcapgo.NewNgWriter(&buf, lt)
		if err != nil {
			t.Fatal(err)
		}
		write, flush = w.WritePacket, w.Flush
	} else {
		w := pcapgo.NewWriter(&buf)
		if err := w.WriteFileHeader(65535, lt); err != nil {
			t.Fatal(err)
		}
		write, flush = w.WritePacket, func() error { return nil }
	}
	for i, p := range pkts {
		b := p.frame
		if b == nil {
			b = frame(t, lt, p.ip)
		}
		ci := gopacket.CaptureInfo{Timestamp: capStart.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(b), Length: len(b)}
		if err := write(ci, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	out := buf.Bytes()
	if lt == sll2 { // both writers write little-endian files
		if ng {
			idb := binary.LittleEndian.Uint32(out[4:8]) // the interface block follows the section header
			if binary.LittleEndian.Uint32(out[idb:]) != 1 {
				t.Fatal("pcapng: no interface block after the section header")
			}
			binary.LittleEndian.PutUint16(out[idb+8:], linkSLL2)
		} else {
			binary.LittleEndian.PutUint32(out[20:24], linkSLL2)
		}
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runReplayArgs(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runReplay(args, &out, &errb)
	return code, out.String(), errb.String()
}

var maskRE = regexp.MustCompile(`"(time|hash)":"[^"]*"`)

// masked replaces the time and config hash fields (the hash follows the
// example's bytes; times are checked in TestReplayTimes).
func masked(s string) string { return maskRE.ReplaceAllString(s, `"$1":"-"`) }

// Every capture format and link type gives the same trace for the same packets.
func TestReplayForwardedGolden(t *testing.T) {
	pkts := forwardedPackets()
	for _, c := range []struct {
		name string
		ng   bool
		lt   layers.LinkType
	}{
		{"ethernet.pcap", false, layers.LinkTypeEthernet},
		{"raw.pcap", false, layers.LinkTypeRaw},
		{"sll.pcap", false, layers.LinkTypeLinuxSLL},
		{"sll2.pcap", false, sll2},
		{"sll2.pcapng", true, sll2},
		{"ethernet.pcapng", true, layers.LinkTypeEthernet},
		{"raw.pcapng", true, layers.LinkTypeRaw},
	} {
		t.Run(c.name, func(t *testing.T) {
			capPath := writeCapture(t, c.name, c.ng, c.lt, pkts)
			code, out, errs := runReplayArgs("--config", labConfigPath, "--pcap", capPath, "--in", "app0", "--out", "mnt0")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			golden(t, "replay_app0_mnt0.jsonl", masked(out))
			if want := "6 packets: 1 accepted, 5 dropped, 0 left to the host's rules (1 malformed, 0 not IP)"; !strings.Contains(errs, want) {
				t.Errorf("summary %q, want %q", errs, want)
			}
		})
	}
}

// The NodePort lab, seen on ext0 on the way in: the pinhole, a probe, a
// failsafe port, and what is not IP or not even a whole Ethernet header.
func TestReplayLocalGolden(t *testing.T) {
	syn := classify.TCPFlagSYN
	arp := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06}, make([]byte, 28)...)
	vlan := frame(t, layers.LinkTypeEthernet, classify.BuildTCP4("198.18.0.2", "198.18.0.1", 41005, 30080, syn))
	vlan = append(append(append([]byte{}, vlan[:12]...), 0x81, 0x00, 0x00, 0x07), vlan[12:]...)
	pkts := []capPacket{
		{ip: classify.BuildTCP4("198.18.0.2", "198.18.0.1", 41001, 30080, syn)}, // pre-DNAT pinhole
		{ip: classify.BuildTCP4("198.18.0.2", "198.18.0.1", 41002, 8080, syn)},  // probe: dropped by drop-other-ingress
		{ip: classify.BuildTCP4("198.18.0.2", "198.18.0.1", 41003, 22, syn)},    // failsafe
		{ip: classify.BuildICMP4("198.18.0.2", "198.18.0.1", 8, 0)},             // ping: dropped
		{frame: arp},                      // not IP
		{frame: []byte{2, 0, 0, 0, 0, 2}}, // a truncated Ethernet header
		{frame: vlan},                     // 802.1Q-tagged pinhole
	}
	capPath := writeCapture(t, "ext0.pcap", false, layers.LinkTypeEthernet, pkts)
	code, out, errs := runReplayArgs("--config", labConfigPath, "--pcap", capPath, "--in", "ext0", "--local")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden(t, "replay_ext0_local.jsonl", masked(out))
}

// Locally originated traffic: the gateway's own connections to the
// maintenance network (its egress has no policy that allows them).
func TestReplayFromLocalGolden(t *testing.T) {
	pkts := []capPacket{
		{ip: classify.BuildTCP4("198.18.2.1", "198.18.2.10", 41001, 22, classify.TCPFlagSYN)},
		{ip: classify.BuildUDP4("198.18.2.1", "198.18.2.10", 41002, 53)}, // failsafe outbound DNS
	}
	capPath := writeCapture(t, "out.pcapng", true, layers.LinkTypeRaw, pkts)
	dir := t.TempDir()
	tracePath := filepath.Join(dir, "trace.jsonl")
	os.WriteFile(tracePath, []byte("old content\n"), 0o644)
	code, out, errs := runReplayArgs("--config", labConfigPath, "--pcap", capPath, "--from-local", "--out", "mnt0", "--trace", tracePath)
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q: %s", code, out, errs)
	}
	b, err := os.ReadFile(tracePath)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "replay_from_local_mnt0.jsonl", masked(string(b)))
}

// Every line is valid JSON, and times are the packets' capture times.
func TestReplayTimes(t *testing.T) {
	capPath := writeCapture(t, "t.pcapng", true, layers.LinkTypeRaw, forwardedPackets())
	code, out, errs := runReplayArgs("--config", labConfigPath, "--pcap", capPath, "--in", "app0", "--out", "mnt0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(forwardedPackets()) {
		t.Fatalf("%d lines for %d packets", len(lines), len(forwardedPackets()))
	}
	for i, l := range lines {
		var rec struct {
			Time time.Time `json:"time"`
			Type string    `json:"type"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, l)
		}
		if want := capStart.Add(time.Duration(i) * time.Millisecond); !rec.Time.Equal(want) || rec.Type != "verdict" {
			t.Errorf("line %d: time %v type %q, want %v verdict", i+1, rec.Time, rec.Type, want)
		}
	}
}

func TestReplayManyPackets(t *testing.T) {
	// More packets than the trace writer's queue: none may be lost.
	var pkts []capPacket
	for i := 0; i < 3*replayBuffer; i++ {
		pkts = append(pkts, capPacket{ip: classify.BuildUDP4("198.18.1.10", "198.18.2.10", uint16(1024+i), 80)})
	}
	capPath := writeCapture(t, "many.pcap", false, layers.LinkTypeRaw, pkts)
	code, out, errs := runReplayArgs("--config", labConfigPath, "--pcap", capPath, "--in", "app0", "--out", "mnt0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if n := strings.Count(out, "\n"); n != len(pkts) || strings.Contains(out, `"type":"dropped"`) {
		t.Errorf("%d lines for %d packets (or a dropped line)", n, len(pkts))
	}
}

func TestReplayErrors(t *testing.T) {
	good := writeCapture(t, "g.pcap", false, layers.LinkTypeRaw, forwardedPackets()[:1])
	goodBytes, _ := os.ReadFile(good)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	cut := write("cut.pcap", goodBytes[:len(goodBytes)-5])
	notCap := write("notcap.pcap", []byte("this is not a capture file"))
	var tok bytes.Buffer
	w := pcapgo.NewWriter(&tok)
	w.WriteFileHeader(65535, layers.LinkTypeFDDI)
	fddi := write("fddi.pcap", tok.Bytes())
	for _, c := range []struct {
		args string
		code int
		msg  string
	}{
		{"--pcap " + good, 2, "--config and --pcap are required"},
		{"--config " + labConfigPath + " --pcap " + good + " --out mnt0", 2, "--in is required unless --from-local"},
		{"--config " + labConfigPath + " --pcap " + good + " --in app0", 2, "one of --out or --local is required"},
		{"--config " + labConfigPath + " --pcap " + good + " --in app0 --out mnt0 --local", 2, "--local and --out exclude each other"},
		{"--config " + labConfigPath + " --pcap " + filepath.Join(dir, "missing.pcap") + " --in app0 --out mnt0", 1, "no such file"},
		{"--config " + labConfigPath + " --pcap " + notCap + " --in app0 --out mnt0", 1, "not a pcap or pcapng file"},
		{"--config " + labConfigPath + " --pcap " + fddi + " --in app0 --out mnt0", 1, "link type 10 (FDDI) is not supported"},
		{"--config " + labConfigPath + " --pcap " + cut + " --in app0 --out mnt0", 1, "packet 1: unexpected EOF"},
		{"--config missing.toml --pcap " + good + " --in app0 --out mnt0", 1, "missing.toml"},
	} {
		code, _, errs := runReplayArgs(strings.Fields(c.args)...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("replay %s: exit %d, %q; want exit %d with %q", c.args, code, errs, c.code, c.msg)
		}
	}
}

// Any frame of any supported link type gives at least one trace line and
// never a panic.
func FuzzReplayPacket(f *testing.F) {
	ld, err := config.Load(labConfigPath)
	if err != nil {
		f.Fatal(err)
	}
	prog, err := policy.Compile(ld.Policy)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(1), append([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x81, 0, 0, 1, 0x08, 0}, classify.BuildTCP4("198.18.1.10", "198.18.2.10", 1, 22, 2)...))
	f.Add(uint8(113), make([]byte, 16))
	f.Add(uint8(20), make([]byte, 19))
	f.Add(uint8(0), []byte{2, 0, 0, 0, 0x45})
	f.Add(uint8(101), classify.BuildTCP6("2001:db8::1", "2001:db8::2", 1, 2, 2)[:45])
	f.Fuzz(func(t *testing.T, low uint8, b []byte) {
		lt, ok := linkByLowByte[low]
		if !ok {
			return
		}
		if ip, kind, _ := ipPayload(lt, b); kind == linkIP && len(ip) > len(b) {
			t.Fatalf("payload longer than the frame")
		}
		for _, path := range []policy.Path{
			{In: policy.Interface{Name: "app0"}, Out: policy.Interface{Name: "mnt0"}},
			{In: policy.Interface{Name: "ext0"}, ToLocal: true},
			{Out: policy.Interface{Name: "mnt0"}, FromLocal: true},
		} {
			r := replayer{prog: prog, path: path, tw: trace.New(io.Discard, replayBuffer)}
			r.packet(lt, b, capStart)
			r.tw.Close()
			if w := r.tw.Stats().Written; w < 1 {
				t.Fatalf("%d trace lines for one packet", w)
			}
		}
	})
}
