package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine/trace"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

func init() {
	commands["replay"] = subcommand{
		summary: "run captured packets (pcap, pcapng) through the policy and write the verdict trace",
		run:     func(args []string) int { return runReplay(args, os.Stdout, os.Stderr) },
	}
}

// Link types replay reads (LINKTYPE_* values as stored in capture files).
const (
	linkNull     = 0
	linkEthernet = 1
	linkRawBSD   = 12 // DLT_RAW on most BSDs
	linkRawOBSD  = 14 // DLT_RAW on OpenBSD
	linkRaw      = 101
	linkLoop     = 108
	linkSLL      = 113
	linkIPv4     = 228
	linkIPv6     = 229
	linkSLL2     = 276
)

func runReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfgPath   = fs.String("config", "", "configuration file (TOML)")
		pcapPath  = fs.String("pcap", "", "capture file (pcap or pcapng; Ethernet, raw IP, Linux SLL/SLL2, BSD loopback)")
		in        = fs.String("in", "", "interface the captured packets arrived on")
		out       = fs.String("out", "", "interface they leave by (forwarded or locally originated traffic)")
		local     = fs.Bool("local", false, "the packets are delivered to the host itself")
		fromLocal = fs.Bool("from-local", false, "the packets are originated by the host itself")
		tracePath = fs.String("trace", "", "write the trace to this file (replaced) instead of standard output")
	)
	addrs := ifaceAddrs{}
	fs.Var(addrs, "iface-addr", "IFACE=ADDR: an interface address for endpoint matching by expectedIPs (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "nfgate replay: "+format+"\n", a...)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected argument %q", fs.Arg(0))
	case *cfgPath == "" || *pcapPath == "":
		return usage("--config and --pcap are required")
	case *local && *out != "":
		return usage("--local and --out exclude each other")
	case !*fromLocal && *in == "":
		return usage("--in is required unless --from-local")
	case !*local && *out == "":
		return usage("one of --out or --local is required")
	}
	iface := func(name string) policy.Interface { return policy.Interface{Name: name, Addrs: addrs[name]} }
	path := packetPath(*in, *out, *local, *fromLocal, iface)

	fail := func(err error) int {
		fmt.Fprintf(stderr, "nfgate replay: %v\n", err)
		return 1
	}
	ld, err := config.Load(*cfgPath)
	if err != nil {
		return fail(err)
	}
	prog, err := policy.Compile(ld.Policy)
	if err != nil {
		return fail(err)
	}
	f, err := os.Open(*pcapPath)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	src, err := openCapture(f)
	if err != nil {
		return fail(fmt.Errorf("%s: %v", *pcapPath, err))
	}

	var w io.Writer = stdout
	if *tracePath != "" {
		tf, err := os.OpenFile(*tracePath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return fail(err)
		}
		defer tf.Close()
		w = tf
	}
	r := replayer{prog: prog, path: path, hash: hex.EncodeToString(ld.Hash[:4]),
		reject: ld.Policy.Settings.DenyAction == policy.DenyReject, tw: trace.New(w, replayBuffer)}
	n, rerr := r.run(src)
	werr := r.tw.Close()
	if r.werr != nil {
		werr = r.werr
	}
	fmt.Fprintf(stderr, "nfgate replay: %d packets: %d accepted, %d dropped, %d left to the host's rules (%d malformed, %d not IP)\n",
		n, r.final[policy.Accept], r.final[policy.Drop], r.final[policy.None], r.malformed, r.notIP)
	if rerr != nil {
		return fail(fmt.Errorf("%s: packet %d: %v", *pcapPath, n+1, rerr))
	}
	if werr != nil {
		return fail(fmt.Errorf("writing the trace: %v", werr))
	}
	return 0
}

// replayBuffer is the trace writer's queue; run flushes every half of it,
// so no record is ever dropped.
const replayBuffer = 1024

// capture is a pcap or pcapng reader.
type capture interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// gopacket v1.1.19 keeps link types in a uint8, so a type above 255 (Linux
// SLL2 is 276) reaches us cut to its low byte. openCapture reads the true
// types from the file itself, refuses any it does not support, and maps
// the low bytes of the supported ones (all distinct) back.
var linkByLowByte = func() map[uint8]int {
	m := map[uint8]int{}
	for _, lt := range []int{linkNull, linkEthernet, linkRawBSD, linkRawOBSD, linkRaw, linkLoop, linkSLL, linkIPv4, linkIPv6, linkSLL2} {
		m[uint8(lt)] = lt
	}
	return m
}()

type pcapSource struct {
	*pcapgo.Reader
	lt int
}

type ngSource struct{ *pcapgo.NgReader }

// openCapture sniffs the format from the magic number and checks every
// link type the file declares.
func openCapture(f *os.File) (capture, error) {
	var head [24]byte
	n, _ := io.ReadFull(f, head[:])
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if n < 4 {
		return nil, errors.New("not a capture file: too short")
	}
	br := bufio.NewReaderSize(f, 64<<10)
	if binary.LittleEndian.Uint32(head[:4]) == 0x0A0D0D0A { // pcapng section header block
		if err := checkNgLinkTypes(f); err != nil {
			return nil, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, fmt.Errorf("pcapng: %v", err)
		}
		return ngSource{ng}, nil
	}
	pr, err := pcapgo.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("not a pcap or pcapng file: %v", err)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if m := binary.BigEndian.Uint32(head[:4]); m == 0xa1b2c3d4 || m == 0xa1b23c4d {
		bo = binary.BigEndian
	}
	lt := int(bo.Uint32(head[20:24]) & 0xffff) // the upper bits carry FCS information
	if !linkOK(lt) {
		return nil, unsupportedLink(lt)
	}
	return pcapSource{pr, lt}, nil
}

func unsupportedLink(lt int) error {
	name := ""
	if lt < 256 {
		name = " (" + layers.LinkType(lt).String() + ")"
	}
	return fmt.Errorf("link type %d%s is not supported (Ethernet, raw IP, Linux SLL/SLL2, BSD loopback are)", lt, name)
}

// checkNgLinkTypes walks a pcapng file's blocks and checks the link type
// of every interface description block.
func checkNgLinkTypes(f *os.File) error {
	var bo binary.ByteOrder = binary.LittleEndian
	var off int64
	for {
		var h [12]byte
		n, err := f.ReadAt(h[:], off)
		if n < 8 {
			if errors.Is(err, io.EOF) && n == 0 {
				return nil
			}
			return nil // a cut block: the reader reports it at that packet
		}
		typ := bo.Uint32(h[0:4])
		if typ == 0x0A0D0D0A && n >= 12 {
			bo = binary.LittleEndian
			if binary.BigEndian.Uint32(h[8:12]) == 0x1A2B3C4D {
				bo = binary.BigEndian
			}
			typ = 0x0A0D0D0A
		}
		length := int64(bo.Uint32(h[4:8]))
		if typ == 1 && n >= 10 { // interface description block
			if lt := int(bo.Uint16(h[8:10])); !linkOK(lt) {
				return unsupportedLink(lt)
			}
		}
		if length < 12 {
			return nil // malformed: left to the reader
		}
		off += length
	}
}

// linkType returns the link type of a packet read from c.
func linkType(c capture, ci gopacket.CaptureInfo) (int, error) {
	switch s := c.(type) {
	case pcapSource:
		return s.lt, nil
	case ngSource:
		ifc, err := s.Interface(ci.InterfaceIndex)
		if err != nil {
			return 0, err
		}
		lt, ok := linkByLowByte[uint8(ifc.LinkType)]
		if !ok {
			return 0, unsupportedLink(int(ifc.LinkType))
		}
		return lt, nil
	}
	return 0, errors.New("unknown capture")
}

func linkOK(lt int) bool {
	switch lt {
	case linkNull, linkEthernet, linkRawBSD, linkRawOBSD, linkRaw, linkLoop, linkSLL, linkIPv4, linkIPv6, linkSLL2:
		return true
	}
	return false
}

// Link-layer outcomes besides an IP packet.
const (
	linkIP        = iota
	linkTruncated // the link header is cut short: a malformed packet
	linkNotIP     // ARP and the like: iptables never sees it
)

// ipPayload strips the link-layer header. It returns the IP packet, or why
// there is none; proto is the EtherType (or loopback family) of a non-IP frame.
func ipPayload(lt int, b []byte) (ip []byte, kind int, proto uint32) {
	etherIP := func(et uint16, rest []byte) ([]byte, int, uint32) {
		if et == uint16(layers.EthernetTypeIPv4) || et == uint16(layers.EthernetTypeIPv6) {
			return rest, linkIP, 0
		}
		return nil, linkNotIP, uint32(et)
	}
	switch lt {
	case linkEthernet:
		if len(b) < 14 {
			return nil, linkTruncated, 0
		}
		et, rest := binary.BigEndian.Uint16(b[12:14]), b[14:]
		// 802.1Q, 802.1ad and old QinQ tags, stacked.
		for et == 0x8100 || et == 0x88a8 || et == 0x9100 {
			if len(rest) < 4 {
				return nil, linkTruncated, 0
			}
			et, rest = binary.BigEndian.Uint16(rest[2:4]), rest[4:]
		}
		return etherIP(et, rest)
	case linkSLL:
		if len(b) < 16 {
			return nil, linkTruncated, 0
		}
		return etherIP(binary.BigEndian.Uint16(b[14:16]), b[16:])
	case linkSLL2:
		if len(b) < 20 {
			return nil, linkTruncated, 0
		}
		return etherIP(binary.BigEndian.Uint16(b[0:2]), b[20:])
	case linkNull, linkLoop:
		if len(b) < 4 {
			return nil, linkTruncated, 0
		}
		fam := binary.LittleEndian.Uint32(b[:4]) // host order of the capturing machine
		if fam > 0xffff {
			fam = binary.BigEndian.Uint32(b[:4])
		}
		switch fam {
		case 2, 24, 28, 30: // AF_INET, AF_INET6 on NetBSD/OpenBSD, FreeBSD, macOS
			return b[4:], linkIP, 0
		}
		return nil, linkNotIP, fam
	}
	return b, linkIP, 0 // raw IP
}

// replayer evaluates packets and writes trace records.
type replayer struct {
	prog      *policy.Program
	path      policy.Path
	hash      string
	reject    bool
	tw        *trace.Writer
	dec       classify.Decoder
	pending   int
	final     [3]int // by policy.Verdict
	malformed int
	notIP     int
	werr      error // first failed write
}

// run replays every packet; it returns how many it read.
func (r *replayer) run(c capture) (int, error) {
	n := 0
	for {
		data, ci, err := c.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		lt, err := linkType(c, ci)
		if err != nil {
			return n, err
		}
		r.packet(lt, data, ci.Timestamp)
		n++
	}
}

// packet evaluates one captured frame and writes one record per stage it
// passed (at least one).
func (r *replayer) packet(lt int, data []byte, ts time.Time) {
	ip, kind, proto := ipPayload(lt, data)
	rec := trace.Record{Time: ts, Gen: 1, Hash: r.hash, Rule: policy.NoIndex, CT: "new"}
	if kind == linkNotIP {
		// Not an IP packet: netfilter's IP hooks never see it.
		r.notIP++
		r.final[policy.None]++
		rec.In, rec.Out, rec.CT = r.path.In.Name, r.path.Out.Name, ""
		rec.Verdict, rec.Reason, rec.Note = policy.None.String(), policy.ReasonNotPoliced.String(), "not-ip:0x"+strconv.FormatUint(uint64(proto), 16)
		r.emit(&rec)
		return
	}
	var pkt classify.Packet
	r.dec.Decode(ip, &pkt)
	pkt.CT = classify.CTNew
	note := ""
	switch {
	case kind == linkTruncated:
		pkt = classify.Packet{Class: classify.Malformed, Reason: classify.ReasonEmpty}
		note = "malformed:truncated-link-header"
	case pkt.Class == classify.Malformed:
		note = "malformed:" + pkt.Reason.String()
	case pkt.Class == classify.Fragment:
		note = "fragment"
	}
	if pkt.Class == classify.Malformed {
		r.malformed++
	}
	tr := r.prog.Walk(r.path, pkt)
	r.final[tr.Final]++
	if len(tr.Stages) == 0 {
		// No stage polices this path: the host's rules decide.
		fillPacket(&rec, &pkt)
		rec.In, rec.Out = r.path.In.Name, r.path.Out.Name
		rec.Verdict, rec.Reason, rec.Note = policy.None.String(), policy.ReasonNotPoliced.String(), note
		r.emit(&rec)
		return
	}
	for _, s := range tr.Stages {
		st := rec
		fillPacket(&st, &s.Packet)
		st.Stage = s.Stage.String()
		if s.Stage == policy.StageUntracked {
			st.CT = classify.CTUntracked.String() // raw table: before conntrack, as the engine reports it
		}
		st.In, st.Out = r.interfaces(s.Stage)
		d := r.prog.Describe(s.Decision)
		st.Endpoint, st.Tier, st.Policy, st.Rule, st.Reason, st.Logged = d.Endpoint, d.Tier, d.Policy, d.Rule, d.Reason, d.Logged
		st.Verdict = d.Verdict
		// mangle POSTROUTING (DNAT'd local traffic) cannot REJECT.
		if s.Decision.Verdict == policy.Drop && r.reject && s.Stage >= policy.StageInput && !s.Postrouting {
			st.Verdict = "REJECT"
		}
		st.Note = note
		r.emit(&st)
	}
}

// interfaces names the in and out interfaces the live engine's trace
// shows at a stage: the ones the kernel knows at that hook.
func (r *replayer) interfaces(st policy.Stage) (in, out string) {
	p := &r.path
	switch st {
	case policy.StageUntracked:
		if p.FromLocal && !p.ToLocal {
			return "", p.Out.Name
		}
		return p.In.Name, ""
	case policy.StagePreDNAT, policy.StageInput:
		return p.In.Name, ""
	case policy.StageOutput:
		return "", p.Out.Name
	}
	return p.In.Name, p.Out.Name
}

func fillPacket(rec *trace.Record, p *classify.Packet) {
	rec.Family, rec.Proto, rec.Src, rec.Dst = uint8(p.Family), p.Proto, p.Src, p.Dst
	rec.SrcPort, rec.DstPort, rec.HasPorts = p.SrcPort, p.DstPort, p.HasPorts()
	rec.ICMPType, rec.ICMPCode, rec.HasICMP = p.ICMPType, p.ICMPCode, p.HasICMP()
	rec.CT = p.CT.String()
}

// emit queues a record, flushing often enough that the queue never fills.
func (r *replayer) emit(rec *trace.Record) {
	r.tw.Enqueue(rec)
	if r.pending++; r.pending >= replayBuffer/2 {
		if err := r.tw.Flush(); err != nil && r.werr == nil {
			r.werr = err
		}
		r.pending = 0
	}
}
