//go:build linux

package ipt

import (
	"context"

	"github.com/nfgate/nfgate/engine/nftnotify"
	"golang.org/x/sys/unix"
)

// Changes reports changes to the nf_tables tables iptables-nft uses (raw,
// mangle and filter of the ip and ip6 families) as they happen, from the
// kernel's nf_tables notifications. The legacy backend has no such
// notifications: Changes returns nil, and the periodic check must do.
func (i *Installer) Changes(ctx context.Context) <-chan struct{} {
	if i.Backend != "nft" {
		return nil
	}
	fd, err := nftnotify.Socket()
	if err != nil {
		return nil
	}
	return nftnotify.Watch(ctx, fd, relevant)
}

// relevant reports whether a change touches a table iptables-nft keeps
// nfgate's hooks in (a message without a table name counts).
func relevant(c nftnotify.Change) bool {
	switch c.Type {
	case nftnotify.MsgNewSet, nftnotify.MsgDelSet:
		return false
	}
	if c.Family != unix.NFPROTO_IPV4 && c.Family != unix.NFPROTO_IPV6 {
		return false
	}
	switch c.Table {
	case "raw", "mangle", "filter", "":
		return true
	}
	return false
}
