package nfq

import (
	"encoding/binary"

	"github.com/nfgate/nfgate/engine"
)

// nfnetlink_queue's wire format (include/uapi/linux/netfilter/nfnetlink_queue.h,
// nfnetlink.h, netlink.h). Netlink headers and attribute headers are in host
// (little-endian) order, attribute payloads in network order.
const (
	nlmsgHdrLen = 16
	nfgenHdrLen = 4
	attrHdrLen  = 4

	nlmsgError  = 0x2 // NLMSG_ERROR
	nlmFRequest = 0x1
	nlmFAck     = 0x4

	subsysQueue     = 3 // NFNL_SUBSYS_QUEUE
	msgPacket       = subsysQueue<<8 | 0
	msgVerdict      = subsysQueue<<8 | 1
	msgConfig       = subsysQueue<<8 | 2
	msgVerdictBatch = subsysQueue<<8 | 3

	// Packet attributes (NFQA_*).
	attrPacketHdr  = 1
	attrVerdictHdr = 2
	attrMark       = 3
	attrInDev      = 5
	attrOutDev     = 6
	attrPayload    = 10
	attrCapLen     = 13

	// Configuration attributes (NFQA_CFG_*) and commands.
	cfgCmd     = 1
	cfgParams  = 2
	cfgMaxLen  = 3
	cfgMask    = 4
	cfgFlags   = 5
	cmdBind    = 1
	cmdUnbind  = 2
	copyPacket = 2 // NFQNL_COPY_PACKET

	// Queue flags (NFQA_CFG_F_*).
	flagFailOpen = 1
	flagGSO      = 4

	// Verdicts.
	nfDrop   = 0
	nfAccept = 1
	nfRepeat = 4

	attrTypeMask = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER

	// verdictLen is one verdict message with a mark (see appendVerdict).
	verdictLen = nlmsgHdrLen + nfgenHdrLen + attrHdrLen + 8 + attrHdrLen + 4
)

func align4(n int) int { return (n + 3) &^ 3 }

// appendHeader appends a netlink + nfgenmsg header for queue q and returns
// the offset of the message, whose length appendDone fills in.
func appendHeader(b []byte, typ, flags uint16, seq uint32, q uint16) ([]byte, int) {
	off := len(b)
	b = binary.LittleEndian.AppendUint32(b, 0) // length, see appendDone
	b = binary.LittleEndian.AppendUint16(b, typ)
	b = binary.LittleEndian.AppendUint16(b, flags)
	b = binary.LittleEndian.AppendUint32(b, seq)
	b = binary.LittleEndian.AppendUint32(b, 0) // port id: the kernel
	b = append(b, 0 /* AF_UNSPEC */, 0 /* NFNETLINK_V0 */)
	b = binary.BigEndian.AppendUint16(b, q)
	return b, off
}

func appendDone(b []byte, off int) []byte {
	binary.LittleEndian.PutUint32(b[off:], uint32(len(b)-off))
	return b
}

// appendAttr appends one attribute, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, data ...byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(attrHdrLen+len(data)))
	b = binary.LittleEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// appendVerdict appends one verdict message (NFQNL_MSG_VERDICT, or
// NFQNL_MSG_VERDICT_BATCH when v.Batch) for queue q. NF_REPEAT and
// NF_ACCEPT carry the new mark; a drop carries none. It allocates only if
// b lacks verdictLen bytes of capacity.
func appendVerdict(b []byte, q uint16, v engine.Verdict) []byte {
	typ := uint16(msgVerdict)
	if v.Batch {
		typ = msgVerdictBatch
	}
	verdict, mark := uint32(nfDrop), false
	switch v.Action {
	case engine.NfRepeat:
		verdict, mark = nfRepeat, true
	case engine.NfAccept:
		verdict, mark = nfAccept, true
	}
	b, off := appendHeader(b, typ, nlmFRequest, 0, q)
	b = binary.LittleEndian.AppendUint16(b, attrHdrLen+8)
	b = binary.LittleEndian.AppendUint16(b, attrVerdictHdr)
	b = binary.BigEndian.AppendUint32(b, verdict)
	b = binary.BigEndian.AppendUint32(b, v.ID)
	if mark {
		b = binary.LittleEndian.AppendUint16(b, attrHdrLen+4)
		b = binary.LittleEndian.AppendUint16(b, attrMark)
		b = binary.BigEndian.AppendUint32(b, v.Mark)
	}
	return appendDone(b, off)
}

// configMsg is one NFQNL_MSG_CONFIG with NLM_F_ACK for queue q: bind,
// copy mode and range, queue length and flags in one message, so the
// kernel applies them together (a packet queued between the bind and the
// copy mode is the only one that can see the defaults: see Open).
func configMsg(seq uint32, q uint16, copyLen, maxLen, flags uint32) []byte {
	b, off := appendHeader(nil, msgConfig, nlmFRequest|nlmFAck, seq, q)
	b = appendAttr(b, cfgCmd, cmdBind, 0, 0, 0)
	b = appendAttr(b, cfgParams, append(be32(copyLen), copyPacket)...)
	b = appendAttr(b, cfgMaxLen, be32(maxLen)...)
	b = appendAttr(b, cfgFlags, be32(flags)...)
	b = appendAttr(b, cfgMask, be32(flagFailOpen|flagGSO)...)
	return appendDone(b, off)
}

// unbindMsg asks the kernel to unbind queue q (NFQNL_CFG_CMD_UNBIND), with
// NLM_F_ACK.
func unbindMsg(seq uint32, q uint16) []byte {
	b, off := appendHeader(nil, msgConfig, nlmFRequest|nlmFAck, seq, q)
	b = appendAttr(b, cfgCmd, cmdUnbind, 0, 0, 0)
	return appendDone(b, off)
}

// next splits the first netlink message off datagram b: its type, its
// bytes after the netlink header, and the rest of b. ok is false at a
// malformed length.
func next(b []byte) (typ uint16, body, rest []byte, ok bool) {
	if len(b) < nlmsgHdrLen {
		return 0, nil, nil, false
	}
	l := int(binary.LittleEndian.Uint32(b[0:]))
	if l < nlmsgHdrLen || l > len(b) {
		return 0, nil, nil, false
	}
	typ, body = binary.LittleEndian.Uint16(b[4:]), b[nlmsgHdrLen:l]
	if align4(l) >= len(b) {
		return typ, body, nil, true
	}
	return typ, body, b[align4(l):], true
}

// seqOf returns a message's sequence number (b starts at its header).
func seqOf(b []byte) uint32 { return binary.LittleEndian.Uint32(b[8:]) }

// errCode returns the error an NLMSG_ERROR body carries (0: an ack).
func errCode(body []byte) int32 {
	if len(body) < 4 {
		return -1
	}
	return int32(binary.LittleEndian.Uint32(body))
}

// parsePacket fills p from an NFQNL_MSG_PACKET body (nfgenmsg and
// attributes), in place: p.Payload points into body. cut: the datagram
// was longer than the receive buffer. It reports false without a packet id.
func parsePacket(body []byte, cut bool, p *engine.Packet) bool {
	if len(body) < nfgenHdrLen {
		return false
	}
	*p = engine.Packet{}
	a := body[nfgenHdrLen:]
	haveID := false
	capLen := uint32(0)
	for len(a) >= attrHdrLen {
		l := int(binary.LittleEndian.Uint16(a[0:]))
		if l < attrHdrLen || l > len(a) {
			cut = true // the rest is missing: whatever was not parsed
			break
		}
		d := a[attrHdrLen:l]
		switch binary.LittleEndian.Uint16(a[2:]) & attrTypeMask {
		case attrPacketHdr:
			if len(d) >= 7 {
				p.ID = binary.BigEndian.Uint32(d)
				p.Hook = d[6]
				haveID = true
			}
		case attrMark:
			if len(d) >= 4 {
				p.Mark = binary.BigEndian.Uint32(d)
			}
		case attrInDev:
			if len(d) >= 4 {
				p.InIf = binary.BigEndian.Uint32(d)
			}
		case attrOutDev:
			if len(d) >= 4 {
				p.OutIf = binary.BigEndian.Uint32(d)
			}
		case attrPayload:
			p.Payload = d
		case attrCapLen:
			if len(d) >= 4 {
				capLen = binary.BigEndian.Uint32(d)
			}
		}
		if align4(l) >= len(a) {
			break
		}
		a = a[align4(l):]
	}
	// NFQA_CAP_LEN is the packet's full length, sent when the copy is
	// shorter.
	p.Truncated = cut || capLen > uint32(len(p.Payload))
	return haveID
}
