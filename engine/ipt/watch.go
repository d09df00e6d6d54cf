//go:build linux

package ipt

import (
	"context"
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"
)

// nf_tables netlink: the multicast group that reports every ruleset change,
// and the messages that matter to nfgate's hooks.
const (
	nfnlgrpNftables = 7
	nfnlSubsysNft   = 10
	nftMsgNewTable  = 0
	nftMsgDelTable  = 2
	nftMsgNewChain  = 3
	nftMsgDelChain  = 5
	nftMsgNewRule   = 6
	nftMsgDelRule   = 8
	nftaTable       = 1 // NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE
)

// Changes reports changes to the nf_tables tables iptables-nft uses (raw,
// mangle and filter of the ip and ip6 families) as they happen, from the
// kernel's NFNLGRP_NFTABLES notifications. The legacy backend has no such
// notifications: Changes returns nil, and the periodic check must do.
func (i *Installer) Changes(ctx context.Context) <-chan struct{} {
	if i.Backend != "nft" {
		return nil
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (nfnlgrpNftables - 1)}); err != nil {
		unix.Close(fd)
		return nil
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	tv := unix.NsecToTimeval(int64(500 * time.Millisecond))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
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
				signal() // notifications were lost: assume a change
				continue
			case err != nil:
				continue // timeout (to look at ctx) or EINTR
			}
			if relevant(buf[:n]) {
				signal()
			}
		}
	}()
	return ch
}

// relevant reports whether a batch of notifications touches a table
// iptables-nft keeps nfgate's hooks in.
func relevant(b []byte) bool {
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return true // unparseable: better look
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		body := b[unix.SizeofNlMsghdr:l]
		b = b[min(len(b), (l+3)&^3):]
		if typ>>8 != nfnlSubsysNft || len(body) < 4 {
			continue
		}
		switch typ & 0xff {
		case nftMsgNewTable, nftMsgDelTable, nftMsgNewChain, nftMsgDelChain, nftMsgNewRule, nftMsgDelRule:
		default:
			continue
		}
		if fam := body[0]; fam != unix.NFPROTO_IPV4 && fam != unix.NFPROTO_IPV6 {
			continue
		}
		table := ""
		for a := body[4:]; len(a) >= 4; {
			al := int(binary.NativeEndian.Uint16(a))
			if al < 4 || al > len(a) {
				break
			}
			if binary.NativeEndian.Uint16(a[2:])&0x3fff == nftaTable {
				table = string(trimNUL(a[4:al]))
				break
			}
			a = a[min(len(a), (al+3)&^3):]
		}
		switch table {
		case "raw", "mangle", "filter", "":
			return true
		}
	}
	return false
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}
