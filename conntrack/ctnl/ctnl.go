//go:build linux

// Package ctnl changes kernel conntrack entries over ctnetlink
// (ti-mo/conntrack): it rewrites nfgate's connmark bits when a reload asks
// for existing flows to be re-checked, and deletes flows a re-check denied.
// Needs nf_conntrack_netlink (CONFIG_NF_CT_NETLINK).
package ctnl

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
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

// Conn is a ctnetlink connection. Safe for concurrent use.
type Conn struct {
	mu sync.Mutex
	c  *ct.Conn
}

// Dial opens a ctnetlink connection in the current network namespace.
func Dial() (*Conn, error) {
	c, err := ct.Dial(&netlink.Config{})
	if err != nil {
		return nil, fmt.Errorf("ctnl: dial: %w", err)
	}
	return &Conn{c: c}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Remark rewrites the mark of every flow whose mark has any bit of
// owned&clear: mark = mark &^ clear | set. It returns how many flows it
// changed; flows that vanished meanwhile are skipped.
//
// The kernel filters the dumps (one per bit, by mark and mask), so only
// flows carrying those bits cross to userspace: a reload on a gateway whose
// table holds a million flows nfgate never decided costs nothing for them
// (an unfiltered dump held the whole table in memory at once). A flow
// carrying several bits is changed by the first dump that returns it and
// no longer matches the later ones.
func (c *Conn) Remark(owned, clear, set uint32) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	var errs []error
	for bits := owned & clear; bits != 0; bits &= bits - 1 {
		b := bits & -bits
		flows, err := c.c.DumpFilter(ct.NewFilter().Mark(b).MarkMask(b), nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("ctnl: dump: %w", err))
			break
		}
		for _, f := range flows {
			nm := f.Mark&^clear | set
			if f.Mark&b == 0 || nm == f.Mark {
				continue
			}
			u := ct.Flow{TupleOrig: f.TupleOrig, Mark: nm, Zone: f.Zone}
			if err := c.c.Update(u); err != nil {
				if !errors.Is(err, unix.ENOENT) && len(errs) < 5 {
					errs = append(errs, err)
				}
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

// Delete removes the flow t belongs to: by its original tuple, by its reply
// tuple, and else by matching the table (DNAT'd and SNAT'd flows, ICMP).
func (c *Conn) Delete(t Tuple) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.ICMP {
		f := ct.NewFlow(t.Proto, 0, t.Src, t.Dst, t.SrcPort, t.DstPort, 0, 0)
		if err := c.c.Delete(ct.Flow{TupleOrig: f.TupleOrig}); err == nil {
			return nil
		}
		if err := c.c.Delete(ct.Flow{TupleReply: f.TupleReply}); err == nil {
			return nil
		}
	}
	flows, err := c.c.Dump(nil)
	if err != nil {
		return fmt.Errorf("ctnl: dump: %w", err)
	}
	found := 0
	for _, f := range flows {
		o, r := f.TupleOrig, f.TupleReply
		if o.Proto.Protocol != t.Proto || o.IP.SourceAddress != t.Src {
			continue
		}
		if !t.ICMP && o.Proto.SourcePort != t.SrcPort {
			continue
		}
		pre := o.IP.DestinationAddress == t.Dst && (t.ICMP || o.Proto.DestinationPort == t.DstPort)
		post := r.IP.SourceAddress == t.Dst && (t.ICMP || r.Proto.SourcePort == t.DstPort)
		if !pre && !post {
			continue
		}
		if err := c.c.Delete(ct.Flow{TupleOrig: o, ID: f.ID}); err == nil {
			found++
		}
	}
	if found == 0 {
		return fmt.Errorf("ctnl: no conntrack entry for %v %v:%d -> %v:%d", t.Proto, t.Src, t.SrcPort, t.Dst, t.DstPort)
	}
	return nil
}
