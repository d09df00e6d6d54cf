package engine

import (
	"fmt"
	"math/bits"

	"github.com/nfgate/nfgate/policy/config"
)

// MarkBitsNeeded is how many bits of Runtime.MarkMask nfgate needs.
const MarkBitsNeeded = config.MarkBitsNeeded

// Marks is nfgate's bit layout inside the configured mark mask. Every bit is
// one bit of the mask; nfgate never reads or writes a bit outside it. The
// same layout is used for the packet mark (skb->mark) and the conntrack mark.
//
// Persisted bits (saved to the connmark, restored into the packet mark at
// the first mangle hook, so later NEW packets of an unreplied flow skip the
// queue):
//
//	Accepted  Calico's accept-mark: an untracked (per packet) or preDNAT
//	          (per flow) Allow. INPUT and OUTPUT accept, FORWARD skips the
//	          in-endpoint's AoF ingress chain.
//	PreDone   the preDNAT stage decided this flow (Accepted says how).
//	InDone    the input stage accepted this flow; on a forwarded flow:
//	          the forward stage decided it.
//	OutDone   the output stage accepted this flow; on a forwarded flow:
//	          the forward stage accepted it (clear: NONE).
//	Recheck   a reload asked for this flow to be re-evaluated: its
//	          ESTABLISHED original-direction packets are queued again
//	          until each stage has decided anew.
//
// A conntrack entry is either forwarded or local for its whole life, so the
// forward stage can share InDone/OutDone with the local stages.
//
// Per-packet bits (never saved):
//
//	Pass      nfgate gave NONE at this hook: the hook's nfgate chain clears
//	          the bit and returns to the host's own rules.
//	Reject    the deny action is REJECT: the chain rejects the packet.
type Marks struct {
	Mask     uint32
	Accepted uint32
	PreDone  uint32
	InDone   uint32
	OutDone  uint32
	Recheck  uint32
	Pass     uint32
	Reject   uint32
}

// Persist is the set of bits kept in the connmark.
func (m Marks) Persist() uint32 {
	return m.Accepted | m.PreDone | m.InDone | m.OutDone | m.Recheck
}

// All is every bit nfgate uses.
func (m Marks) All() uint32 { return m.Persist() | m.Pass | m.Reject }

// FwdDone and FwdAccept are the forward stage's names for InDone and OutDone.
func (m Marks) FwdDone() uint32   { return m.InDone }
func (m Marks) FwdAccept() uint32 { return m.OutDone }

// NewMarks assigns nfgate's bits to the lowest MarkBitsNeeded set bits of mask.
func NewMarks(mask uint32) (Marks, error) {
	if n := bits.OnesCount32(mask); n < MarkBitsNeeded {
		return Marks{}, fmt.Errorf("engine: markMask %#08x has %d bits, nfgate needs %d", mask, n, MarkBitsNeeded)
	}
	var b [MarkBitsNeeded]uint32
	rest := mask
	for i := range b {
		low := rest & -rest
		b[i] = low
		rest &^= low
	}
	return Marks{Mask: mask, Accepted: b[0], PreDone: b[1], InDone: b[2], OutDone: b[3],
		Recheck: b[4], Pass: b[5], Reject: b[6]}, nil
}
