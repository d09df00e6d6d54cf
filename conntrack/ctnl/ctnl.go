//go:build linux

// Package ctnl changes kernel conntrack entries over ctnetlink: it rewrites
// nfgate's connmark bits when a reload asks for existing flows to be
// re-checked, and deletes flows a re-check denied. Needs
// nf_conntrack_netlink (CONFIG_NF_CT_NETLINK).
//
// It speaks ctnetlink itself (a few message types) rather than through a
// library, for three reasons the re-check needs:
//
//   - each request carries the flow's own address family (IPv4 or IPv6):
//     a library that guessed the family from the tuples it was given sent
//     IPv6 updates as IPv4, and the kernel refused them (EINVAL), so IPv6
//     flows were never re-checked;
//   - the mark is changed with CTA_MARK_MASK, so the kernel rewrites only
//     nfgate's bits, atomically (a read-modify-write lost changes another
//     program made to the other bits in between);
//   - dumps are processed as they arrive, in kernel-sized chunks, so a
//     table of 160,000 decided flows never sits in the daemon's memory
//     at once (it took 6.9 s and 220 MB that were not returned).
package ctnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Tuple is a flow as one of its original-direction packets shows it at
// some hook: before DNAT (then it equals the entry's original tuple) or
// after DNAT (then Dst/DstPort are the reply tuple's source).
type Tuple struct {
	Proto            uint8
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	ICMP             bool // ports are not meaningful (ICMP echo ids are not known)
}

// Conn is a ctnetlink connection: one socket for dumps, one for requests
// made while a dump is being read. Safe for concurrent use.
type Conn struct {
	mu   sync.Mutex
	dump *sock
	req  *sock
}

// Timeout bounds every receive: a kernel that stops answering fails the
// operation instead of hanging the daemon.
var Timeout = 30 * time.Second

// batch is how many requests are sent in one write before reading their
// answers.
const batch = 256

// Dial opens a ctnetlink connection in the current network namespace.
func Dial() (*Conn, error) {
	d, err := openSock()
	if err != nil {
		return nil, fmt.Errorf("ctnl: dial: %w", err)
	}
	r, err := openSock()
	if err != nil {
		d.close()
		return nil, fmt.Errorf("ctnl: dial: %w", err)
	}
	return &Conn{dump: d, req: r}, nil
}

// Close closes the connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return errors.Join(c.dump.close(), c.req.close())
}

// Stats reports what one Remark did.
type Stats struct {
	Changed  int // flows whose mark was rewritten
	Gone     int // flows that ended between the dump and the update
	Failed   int // updates the kernel refused
	Messages int // flows the dumps returned
}

// Remark rewrites the mark of every flow whose mark has any bit of
// owned&clear: the bits of clear are cleared and those of set set; the
// kernel applies the change with a mask, so no other bit of the mark is
// touched. It returns how many flows it changed; flows that ended meanwhile
// are skipped.
//
// The kernel filters the dumps (one per bit, by mark and mask), so only
// flows carrying those bits cross to userspace, and each chunk of a dump
// is updated before the next is read. A flow carrying several bits is
// changed by the first dump that returns it and no longer matches the
// later ones.
func (c *Conn) Remark(owned, clear, set uint32) (int, error) {
	st, err := c.RemarkStats(owned, clear, set)
	return st.Changed, err
}

// RemarkStats is Remark with the details.
func (c *Conn) RemarkStats(owned, clear, set uint32) (Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var st Stats
	var errs []error
	mask := clear | set
	for bits := owned & clear; bits != 0; bits &= bits - 1 {
		b := bits & -bits
		req := newMsg(ctGet, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, unix.AF_UNSPEC)
		req.u32(ctaMark, b)
		req.u32(ctaMarkMask, b)
		var pending []*msg
		send := func() {
			if len(pending) == 0 {
				return
			}
			res, err := c.req.exchange(pending)
			pending = pending[:0]
			if err != nil {
				errs = append(errs, err)
				return
			}
			for _, e := range res {
				switch e {
				case 0:
					st.Changed++
				case unix.ENOENT:
					st.Gone++
				default:
					st.Failed++
					if st.Failed <= 5 {
						errs = append(errs, fmt.Errorf("ctnl: update: %w", e))
					}
				}
			}
		}
		err := c.dump.dumpEach(req, func(f *flow) {
			st.Messages++
			nm := f.mark&^clear | set
			if f.mark&b == 0 || nm == f.mark || f.orig == nil {
				return
			}
			m := newMsg(ctNew, unix.NLM_F_REQUEST|unix.NLM_F_ACK, f.family)
			m.raw(ctaTupleOrig|nlaNested, f.orig)
			if f.hasZone {
				m.u16(ctaZone, f.zone)
			}
			m.u32(ctaMark, set)
			m.u32(ctaMarkMask, mask)
			pending = append(pending, m)
			if len(pending) == batch {
				send()
			}
		})
		send()
		if err != nil {
			errs = append(errs, fmt.Errorf("ctnl: dump: %w", err))
			break
		}
	}
	return st, errors.Join(errs...)
}

// Delete removes the flow t belongs to: by its original tuple, by its reply
// tuple, and else by matching the table (DNAT'd and SNAT'd flows, ICMP).
func (c *Conn) Delete(t Tuple) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	fam := uint8(unix.AF_INET)
	if t.Src.Is6() && !t.Src.Is4In6() {
		fam = unix.AF_INET6
	}
	if !t.ICMP {
		for _, attr := range []uint16{ctaTupleOrig, ctaTupleReply} {
			var tu []byte
			if attr == ctaTupleOrig {
				tu = encodeTuple(t.Proto, t.Src, t.Dst, t.SrcPort, t.DstPort)
			} else {
				tu = encodeTuple(t.Proto, t.Dst, t.Src, t.DstPort, t.SrcPort)
			}
			m := newMsg(ctDelete, unix.NLM_F_REQUEST|unix.NLM_F_ACK, fam)
			m.raw(attr|nlaNested, tu)
			res, err := c.req.exchange([]*msg{m})
			if err != nil {
				return err
			}
			if res[0] == 0 {
				return nil
			}
			if res[0] != unix.ENOENT {
				return fmt.Errorf("ctnl: delete: %w", res[0])
			}
		}
	}
	req := newMsg(ctGet, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, fam)
	found := 0
	var derr error
	err := c.dump.dumpEach(req, func(f *flow) {
		o, r := f.origT, f.replyT
		if o.proto != t.Proto || o.src != t.Src || !t.ICMP && o.sport != t.SrcPort {
			return
		}
		pre := o.dst == t.Dst && (t.ICMP || o.dport == t.DstPort)
		post := r.src == t.Dst && (t.ICMP || r.sport == t.DstPort)
		if !pre && !post || f.orig == nil {
			return
		}
		m := newMsg(ctDelete, unix.NLM_F_REQUEST|unix.NLM_F_ACK, f.family)
		m.raw(ctaTupleOrig|nlaNested, f.orig)
		if f.hasZone {
			m.u16(ctaZone, f.zone)
		}
		if f.hasID {
			m.u32(ctaID, f.id)
		}
		res, err := c.req.exchange([]*msg{m})
		if err == nil && res[0] == 0 {
			found++
		} else if err != nil && derr == nil {
			derr = err
		}
	})
	if err != nil {
		return fmt.Errorf("ctnl: dump: %w", err)
	}
	if found == 0 {
		if derr != nil {
			return derr
		}
		return fmt.Errorf("ctnl: no conntrack entry for %v %v:%d -> %v:%d", t.Proto, t.Src, t.SrcPort, t.Dst, t.DstPort)
	}
	return nil
}

// ---- ctnetlink messages ----

const (
	nfnlSubsysCTNetlink = 1
	ctNew               = 0
	ctGet               = 1
	ctDelete            = 2

	nlaNested = 0x8000

	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaMark       = 8
	ctaID         = 12
	ctaZone       = 18
	ctaMarkMask   = 21

	ctaTupleIP    = 1
	ctaTupleProto = 2

	ctaIPv4Src = 1
	ctaIPv4Dst = 2
	ctaIPv6Src = 3
	ctaIPv6Dst = 4

	ctaProtoNum     = 1
	ctaProtoSrcPort = 2
	ctaProtoDstPort = 3
)

// msg is one netlink request being built: header, nfgenmsg, attributes.
type msg struct{ b []byte }

func newMsg(typ uint16, flags uint16, family uint8) *msg {
	b := make([]byte, unix.SizeofNlMsghdr+4, 128)
	binary.NativeEndian.PutUint16(b[4:], nfnlSubsysCTNetlink<<8|typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	b[16] = family // nfgen_family; version 0, res_id 0
	return &msg{b}
}

func appendAttr(b []byte, typ uint16, payload []byte) []byte {
	l := 4 + len(payload)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func (m *msg) raw(typ uint16, payload []byte) { m.b = appendAttr(m.b, typ, payload) }
func (m *msg) u32(typ uint16, v uint32)       { m.raw(typ, binary.BigEndian.AppendUint32(nil, v)) }
func (m *msg) u16(typ uint16, v uint16)       { m.raw(typ, binary.BigEndian.AppendUint16(nil, v)) }

// bytes finishes the message with its length and sequence number.
func (m *msg) bytes(seq uint32) []byte {
	binary.NativeEndian.PutUint32(m.b[0:], uint32(len(m.b)))
	binary.NativeEndian.PutUint32(m.b[8:], seq)
	return m.b
}

// encodeTuple is the payload of CTA_TUPLE_ORIG/REPLY for a port-based
// protocol.
func encodeTuple(proto uint8, src, dst netip.Addr, sport, dport uint16) []byte {
	var ip []byte
	if src.Is4() || src.Is4In6() {
		s, d := src.Unmap().As4(), dst.Unmap().As4()
		ip = appendAttr(ip, ctaIPv4Src, s[:])
		ip = appendAttr(ip, ctaIPv4Dst, d[:])
	} else {
		s, d := src.As16(), dst.As16()
		ip = appendAttr(ip, ctaIPv6Src, s[:])
		ip = appendAttr(ip, ctaIPv6Dst, d[:])
	}
	var p []byte
	p = appendAttr(p, ctaProtoNum, []byte{proto})
	p = appendAttr(p, ctaProtoSrcPort, binary.BigEndian.AppendUint16(nil, sport))
	p = appendAttr(p, ctaProtoDstPort, binary.BigEndian.AppendUint16(nil, dport))
	var t []byte
	t = appendAttr(t, ctaTupleIP|nlaNested, ip)
	t = appendAttr(t, ctaTupleProto|nlaNested, p)
	return t
}

// tuple is a decoded conntrack tuple (ports are zero for ICMP).
type tuple struct {
	proto        uint8
	src, dst     netip.Addr
	sport, dport uint16
}

// flow is one dumped entry. orig aliases the receive buffer: valid only
// during the callback.
type flow struct {
	family         uint8
	orig           []byte // CTA_TUPLE_ORIG payload, as the kernel sent it
	origT, replyT  tuple
	mark           uint32
	zone           uint16
	hasZone, hasID bool
	id             uint32
}

// attrs calls fn for each attribute in b.
func attrs(b []byte, fn func(typ uint16, payload []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:])&^nlaNested, b[4:l])
		b = b[min(len(b), (l+3)&^3):]
	}
}

func decodeTuple(b []byte) tuple {
	var t tuple
	attrs(b, func(typ uint16, p []byte) {
		switch typ {
		case ctaTupleIP:
			attrs(p, func(typ uint16, a []byte) {
				switch {
				case (typ == ctaIPv4Src || typ == ctaIPv4Dst) && len(a) == 4:
					ad := netip.AddrFrom4([4]byte(a))
					if typ == ctaIPv4Src {
						t.src = ad
					} else {
						t.dst = ad
					}
				case (typ == ctaIPv6Src || typ == ctaIPv6Dst) && len(a) == 16:
					ad := netip.AddrFrom16([16]byte(a))
					if typ == ctaIPv6Src {
						t.src = ad
					} else {
						t.dst = ad
					}
				}
			})
		case ctaTupleProto:
			attrs(p, func(typ uint16, a []byte) {
				switch {
				case typ == ctaProtoNum && len(a) == 1:
					t.proto = a[0]
				case typ == ctaProtoSrcPort && len(a) == 2:
					t.sport = binary.BigEndian.Uint16(a)
				case typ == ctaProtoDstPort && len(a) == 2:
					t.dport = binary.BigEndian.Uint16(a)
				}
			})
		}
	})
	return t
}

// decodeFlow decodes a ctnetlink message body (after the nlmsghdr).
func decodeFlow(body []byte, f *flow) bool {
	if len(body) < 4 {
		return false
	}
	*f = flow{family: body[0]}
	attrs(body[4:], func(typ uint16, p []byte) {
		switch typ {
		case ctaTupleOrig:
			f.orig = p
			f.origT = decodeTuple(p)
		case ctaTupleReply:
			f.replyT = decodeTuple(p)
		case ctaMark:
			if len(p) == 4 {
				f.mark = binary.BigEndian.Uint32(p)
			}
		case ctaZone:
			if len(p) == 2 {
				f.zone, f.hasZone = binary.BigEndian.Uint16(p), true
			}
		case ctaID:
			if len(p) == 4 {
				f.id, f.hasID = binary.BigEndian.Uint32(p), true
			}
		}
	})
	return true
}

// ---- sockets ----

type sock struct {
	fd  int
	seq uint32
	buf []byte
}

func openSock() (*sock, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, err
	}
	s := &sock{fd: fd, seq: uint32(time.Now().UnixNano()), buf: make([]byte, 64<<10)}
	// Short acknowledgements (no copy of the request), bounded waits.
	unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	tv := unix.NsecToTimeval(Timeout.Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return s, nil
}

func (s *sock) close() error {
	if s == nil || s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}

func (s *sock) recv() ([]byte, error) {
	for {
		n, _, err := unix.Recvfrom(s.fd, s.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if err == unix.EAGAIN {
				return nil, fmt.Errorf("no answer from the kernel within %v", Timeout)
			}
			return nil, err
		}
		return s.buf[:n], nil
	}
}

// exchange sends the requests in one write and returns each one's errno
// (0: done).
func (s *sock) exchange(reqs []*msg) ([]unix.Errno, error) {
	first := s.seq + 1
	var out []byte
	for _, m := range reqs {
		s.seq++
		out = append(out, m.bytes(s.seq)...)
	}
	if err := unix.Sendto(s.fd, out, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("ctnl: send: %w", err)
	}
	res := make([]unix.Errno, len(reqs))
	got := 0
	for got < len(reqs) {
		b, err := s.recv()
		if err != nil {
			return nil, fmt.Errorf("ctnl: receive: %w", err)
		}
		for len(b) >= unix.SizeofNlMsghdr {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				break
			}
			typ := binary.NativeEndian.Uint16(b[4:])
			seq := binary.NativeEndian.Uint32(b[8:])
			if typ == unix.NLMSG_ERROR && l >= unix.SizeofNlMsghdr+4 && seq-first < uint32(len(reqs)) {
				e := int32(binary.NativeEndian.Uint32(b[16:]))
				res[seq-first] = unix.Errno(-e)
				got++
			}
			b = b[min(len(b), (l+3)&^3):]
		}
	}
	return res, nil
}

// dumpEach sends a dump request and calls fn for every flow, chunk by
// chunk as the kernel sends them.
func (s *sock) dumpEach(req *msg, fn func(*flow)) error {
	s.seq++
	seq := s.seq
	if err := unix.Sendto(s.fd, req.bytes(seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	var f flow
	for {
		b, err := s.recv()
		if err != nil {
			return err
		}
		for len(b) >= unix.SizeofNlMsghdr {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				break
			}
			typ := binary.NativeEndian.Uint16(b[4:])
			mseq := binary.NativeEndian.Uint32(b[8:])
			body := b[unix.SizeofNlMsghdr:l]
			b = b[min(len(b), (l+3)&^3):]
			if mseq != seq {
				continue
			}
			switch typ {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(body) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(body)); e != 0 {
						return unix.Errno(-e)
					}
				}
				return nil
			}
			if typ>>8 == nfnlSubsysCTNetlink && decodeFlow(body, &f) {
				fn(&f)
			}
		}
	}
}
