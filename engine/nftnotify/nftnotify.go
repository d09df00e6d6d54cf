//go:build linux

// Package nftnotify watches the kernel's nf_tables change notifications
// (the NFNLGRP_NFTABLES multicast group): what the self-healing checks of
// nfgate's iptables hooks (engine/ipt) and of its deny-region table
// (engine/kset) wake up on.
package nftnotify

import (
	"context"
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"
)

// Message types of nf_tables notifications that change a ruleset's shape
// (elements are left out: the region installer's own work).
const (
	MsgNewTable = 0
	MsgDelTable = 2
	MsgNewChain = 3
	MsgDelChain = 5
	MsgNewRule  = 6
	MsgDelRule  = 8
	MsgNewSet   = 9
	MsgDelSet   = 11
)

const (
	nfnlgrpNftables = 7
	nfnlSubsysNft   = 10
	nftaTable       = 1 // NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE
)

// Change is one notification: its message type, the family of the table
// (unix.NFPROTO_*) and the table's name ("" when the message has none).
type Change struct {
	Type   uint8
	Family uint8
	Table  string
}

// Socket opens a netlink socket subscribed to nf_tables notifications in
// the calling thread's network namespace.
func Socket() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (nfnlgrpNftables - 1)}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	tv := unix.NsecToTimeval(int64(500 * time.Millisecond))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return fd, nil
}

// Watch reads fd (from Socket) until ctx ends, then closes it. The channel
// is signalled, coalesced, whenever a batch has a change match accepts, a
// batch cannot be parsed, or notifications were lost (ENOBUFS): a missed
// change is worse than a needless check.
func Watch(ctx context.Context, fd int, match func(Change) bool) <-chan struct{} {
	ch := make(chan struct{}, 1)
	signal := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 64<<10)
		for ctx.Err() == nil {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			switch {
			case err == unix.ENOBUFS:
				signal()
				continue
			case err != nil:
				continue // timeout (to look at ctx) or EINTR
			}
			if Matches(buf[:n], match) {
				signal()
			}
		}
	}()
	return ch
}

// Matches reports whether a batch of notifications has a change match
// accepts, or cannot be parsed.
func Matches(b []byte, match func(Change) bool) bool {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return true
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		body := b[unix.NLMSG_HDRLEN:l]
		b = b[min(len(b), (l+3)&^3):]
		if typ>>8 != nfnlSubsysNft || len(body) < 4 {
			continue
		}
		switch t := uint8(typ); t {
		case MsgNewTable, MsgDelTable, MsgNewChain, MsgDelChain, MsgNewRule, MsgDelRule, MsgNewSet, MsgDelSet:
			if match(Change{Type: t, Family: body[0], Table: tableAttr(body[4:])}) {
				return true
			}
		}
	}
	return false
}

// tableAttr returns the table name attribute of an nf_tables message's
// attributes.
func tableAttr(a []byte) string {
	for len(a) >= 4 {
		l := int(binary.NativeEndian.Uint16(a))
		if l < 4 || l > len(a) {
			return ""
		}
		if binary.NativeEndian.Uint16(a[2:])&0x3fff == nftaTable {
			v := a[4:l]
			for len(v) > 0 && v[len(v)-1] == 0 {
				v = v[:len(v)-1]
			}
			return string(v)
		}
		a = a[min(len(a), (l+3)&^3):]
	}
	return ""
}
