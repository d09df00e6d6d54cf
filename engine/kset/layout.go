// Package kset keeps nfgate's kernel deny regions (engine.RegionSets): an
// nf_tables table of its own, "inet nfgate-flood", beside the iptables
// tables nfgate's hooks live in (iptables-legacy or iptables-nft alike),
// with one base chain per stage hooked just before the iptables table of
// the stage's queue rule, and concatenated range sets (nf_tables' pipapo
// sets) whose elements are whole boxes of packet space with their own
// timeout and counter. It talks netlink (github.com/google/nftables): the
// nft 1.0.6 command line cannot write a set keyed on interface indexes.
//
// Layout, per stage (preDNAT, input, forward), family and packet kind:
//
//	set pre4p  { ip saddr . ip daddr . meta l4proto . th sport . th dport . iif }
//	set pre4i  { ip saddr . ip daddr . meta l4proto . icmp type . icmp code . iif }
//	set pre4o  { ip saddr . ip daddr . meta l4proto . iif }
//	set in4p ... (as pre), set fwd4p ... (with . oif), and the same for ip6
//	chain prednat { type filter hook prerouting priority -151 }  (mangle is -150)
//	chain input   { type filter hook input priority -1 }         (filter is 0)
//	chain forward { type filter hook forward priority -1 }
//
// Each chain first lets through (accept ends only this chain) every packet
// that is not ct state new, carries any of nfgate's mark bits the stage's
// own chain acts on before its queue rule (engine.Marks.RegionMarkBits), or
// is inbound failsafe traffic; then it looks the packet up in its sets and
// drops (rejects, for input and forward under the REJECT deny action) what
// an element holds, counting per rule and per element.
package kset

import (
	"encoding/binary"
	"fmt"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/dtree"
)

// TableName is the nf_tables table (family inet) nfgate's regions live in.
const TableName = "nfgate-flood"

// Chain priorities: just before the iptables table of each stage's queue
// rule (mangle PREROUTING for preDNAT, filter INPUT and FORWARD).
const (
	PrioPreDNAT = -151
	PrioFilter  = -1
)

// stages are the stages with regions, in table order.
var stages = []policy.Stage{policy.StagePreDNAT, policy.StageInput, policy.StageForward}

var stageShort = map[policy.Stage]string{policy.StagePreDNAT: "pre", policy.StageInput: "in", policy.StageForward: "fwd"}

var kindShort = [...]string{engine.RegionPorts: "p", engine.RegionICMP: "i", engine.RegionOther: "o"}

// setName is the name of the set holding elements of stage st, family
// fam and kind k.
func setName(st policy.Stage, fam uint8, k engine.RegionKind) string {
	return fmt.Sprintf("%s%d%s", stageShort[st], fam, kindShort[k])
}

// layout is a set's key: the field lengths as the kernel keeps them
// (each field padded to 4 bytes in the key).
type layout struct {
	st   policy.Stage
	fam  uint8
	kind engine.RegionKind
}

func (l layout) addrLen() int {
	if l.fam == 6 {
		return 16
	}
	return 4
}

// abLen is the length of the A and B fields (0: none).
func (l layout) abLen() int {
	switch l.kind {
	case engine.RegionPorts:
		return 2
	case engine.RegionICMP:
		return 1
	}
	return 0
}

func (l layout) hasOut() bool { return l.st == policy.StageForward }

// keyLen is the length of a key.
func (l layout) keyLen() int {
	n := 2*l.addrLen() + 4 + 4 // addresses, protocol, iif
	if l.abLen() > 0 {
		n += 8
	}
	if l.hasOut() {
		n += 4
	}
	return n
}

func putAddr(b []byte, fam uint8, a dtree.U128) []byte {
	if fam == 4 {
		return binary.BigEndian.AppendUint32(b, uint32(a.Lo))
	}
	b = binary.BigEndian.AppendUint64(b, a.Hi)
	return binary.BigEndian.AppendUint64(b, a.Lo)
}

func getAddr(b []byte, fam uint8) (dtree.U128, []byte) {
	if fam == 4 {
		return dtree.U128{Lo: uint64(binary.BigEndian.Uint32(b))}, b[4:]
	}
	return dtree.U128{Hi: binary.BigEndian.Uint64(b), Lo: binary.BigEndian.Uint64(b[8:])}, b[16:]
}

// key encodes one corner of el (c 0: lowest, 1: highest) as the kernel
// compares it: addresses and ports in network order, interface indexes in
// host order (meta iif), every field padded to 4 bytes.
func (l layout) key(el *engine.RegionElem, c int) []byte {
	b := make([]byte, 0, l.keyLen())
	b = putAddr(b, l.fam, el.Src[c])
	b = putAddr(b, l.fam, el.Dst[c])
	b = append(b, el.Proto[c], 0, 0, 0)
	switch l.kind {
	case engine.RegionPorts:
		b = binary.BigEndian.AppendUint16(b, el.A[c])
		b = append(b, 0, 0)
		b = binary.BigEndian.AppendUint16(b, el.B[c])
		b = append(b, 0, 0)
	case engine.RegionICMP:
		b = append(b, uint8(el.A[c]), 0, 0, 0, uint8(el.B[c]), 0, 0, 0)
	}
	b = binary.NativeEndian.AppendUint32(b, el.InIf)
	if l.hasOut() {
		b = binary.NativeEndian.AppendUint32(b, el.OutIf)
	}
	return b
}

// decode is key's inverse for both corners.
func (l layout) decode(lo, hi []byte) (engine.RegionElem, error) {
	el := engine.RegionElem{Stage: l.st, Fam: l.fam, Kind: l.kind}
	if len(lo) != l.keyLen() || len(hi) != l.keyLen() {
		return el, fmt.Errorf("kset: element of %d/%d bytes, want %d", len(lo), len(hi), l.keyLen())
	}
	for c, b := range [2][]byte{lo, hi} {
		el.Src[c], b = getAddr(b, l.fam)
		el.Dst[c], b = getAddr(b, l.fam)
		el.Proto[c], b = b[0], b[4:]
		switch l.kind {
		case engine.RegionPorts:
			el.A[c], el.B[c] = binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[4:])
			b = b[8:]
		case engine.RegionICMP:
			el.A[c], el.B[c] = uint16(b[0]), uint16(b[4])
			b = b[8:]
		}
		in := binary.NativeEndian.Uint32(b)
		if c == 0 {
			el.InIf = in
		}
		if l.hasOut() && c == 0 {
			el.OutIf = binary.NativeEndian.Uint32(b[4:])
		}
	}
	return el, nil
}

// layoutOf is the layout of el's set.
func layoutOf(el *engine.RegionElem) (layout, error) {
	l := layout{st: el.Stage, fam: el.Fam, kind: el.Kind}
	if stageShort[el.Stage] == "" || (el.Fam != 4 && el.Fam != 6) || int(el.Kind) >= len(kindShort) {
		return l, fmt.Errorf("kset: no set for stage %v, family %d, kind %v", el.Stage, el.Fam, el.Kind)
	}
	if !l.hasOut() && el.OutIf != 0 {
		return l, fmt.Errorf("kset: a %v element has no out-interface", el.Stage)
	}
	return l, nil
}
