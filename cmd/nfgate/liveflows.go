package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/links"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/analysis"
)

// liveFlows reads the flows a daemon decided from the conntrack table of
// its network namespace (pid 0: this one): every entry carrying one of
// nfgate's persisted mark bits under mask, which is exactly what a reload
// marks for re-check. The kernel filters the dump by those bits. A flow's
// path comes from the namespace: an end at one of its addresses is local;
// the in-interface is the route back to the source, the out-interface the
// route to the (post-DNAT) destination.
func liveFlows(pid int, mask uint32) ([]analysis.Flow, error) {
	marks, err := engine.NewMarks(mask)
	if err != nil {
		return nil, err
	}
	nsfd := 0
	if pid > 0 {
		f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
		if err != nil {
			return nil, fmt.Errorf("the daemon's network namespace: %v", err)
		}
		defer f.Close()
		nsfd = int(f.Fd())
	}
	c, err := ct.Dial(&netlink.Config{NetNS: nsfd})
	if err != nil {
		return nil, fmt.Errorf("ctnetlink (needs root and nf_conntrack_netlink): %v", err)
	}
	defer c.Close()
	seen := map[uint32]bool{}
	var entries []ct.Flow
	persist := marks.Persist()
	for bits := persist; bits != 0; bits &= bits - 1 {
		b := bits & -bits
		fs, err := c.DumpFilter(ct.NewFilter().Mark(b).MarkMask(b), nil)
		if err != nil {
			return nil, fmt.Errorf("conntrack dump: %v", err)
		}
		for _, f := range fs {
			if !seen[f.ID] {
				seen[f.ID] = true
				entries = append(entries, f)
			}
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lt, err := links.WatchNetNS(ctx, nsfd)
	if err != nil {
		return nil, err
	}
	defer lt.Close()
	ifs := lt.Interfaces()
	byIndex := map[uint32]policy.Interface{}
	local := map[netip.Addr]bool{}
	for _, ifc := range ifs {
		byIndex[ifc.Index] = policy.Interface{Name: ifc.Name, Addrs: ifc.Addrs}
		for _, a := range ifc.Addrs {
			local[a.Unmap()] = true
		}
	}
	rc, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: nsfd})
	if err != nil {
		return nil, fmt.Errorf("rtnetlink: %v", err)
	}
	defer rc.Close()
	route := func(a netip.Addr) policy.Interface {
		if local[a.Unmap()] {
			return byIndex[loIndex(ifs)]
		}
		idx, err := routeOIF(rc, a)
		if err != nil {
			return policy.Interface{}
		}
		return byIndex[idx]
	}

	out := make([]analysis.Flow, 0, len(entries))
	for _, e := range entries {
		o, r := e.TupleOrig, e.TupleReply
		src, dst := o.IP.SourceAddress.Unmap(), o.IP.DestinationAddress.Unmap()
		post := r.IP.SourceAddress.Unmap()
		pkt := classify.Packet{Proto: o.Proto.Protocol, Src: src, Dst: dst, Family: classify.IPv6}
		if src.Is4() {
			pkt.Family = classify.IPv4
		}
		if pkt.HasPorts() {
			pkt.SrcPort, pkt.DstPort = o.Proto.SourcePort, o.Proto.DestinationPort
		} else if pkt.HasICMP() {
			pkt.ICMPType, pkt.ICMPCode = o.Proto.ICMPType, o.Proto.ICMPCode
		}
		var path policy.Path
		switch {
		case local[src] && local[post]:
			lo := byIndex[loIndex(ifs)]
			path = policy.Path{FromLocal: true, ToLocal: true, In: lo, Out: lo}
		case local[src]:
			path = policy.Path{FromLocal: true, Out: route(post), OutBeforeDNAT: route(dst)}
		case local[post]:
			path = policy.Path{ToLocal: true, In: route(src)}
		default:
			path = policy.Path{In: route(src), Out: route(post)}
		}
		if post != dst || (pkt.HasPorts() && r.Proto.SourcePort != o.Proto.DestinationPort) {
			path.DNATAddr = post
			if pkt.HasPorts() && r.Proto.SourcePort != o.Proto.DestinationPort {
				path.DNATPort = r.Proto.SourcePort
			}
		}
		out = append(out, analysis.Flow{Path: path, Pkt: pkt, Live: true, Count: 1})
	}
	return out, nil
}

func loIndex(ifs []links.Iface) uint32 {
	for _, i := range ifs {
		if i.Name == "lo" {
			return i.Index
		}
	}
	return 1
}

// routeOIF asks the kernel (RTM_GETROUTE) which interface a packet to
// dst leaves by.
func routeOIF(c *netlink.Conn, dst netip.Addr) (uint32, error) {
	fam, bits := uint8(unix.AF_INET6), uint8(128)
	raw := dst.AsSlice()
	if dst.Is4() {
		fam, bits = unix.AF_INET, 32
	}
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(unix.RTA_DST, raw)
	attrs, err := ae.Encode()
	if err != nil {
		return 0, err
	}
	hdr := make([]byte, unix.SizeofRtMsg)
	hdr[0], hdr[1] = fam, bits
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETROUTE, Flags: netlink.Request},
		Data:   append(hdr, attrs...),
	})
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if len(m.Data) < unix.SizeofRtMsg {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofRtMsg:])
		if err != nil {
			return 0, err
		}
		for ad.Next() {
			if ad.Type() == unix.RTA_OIF {
				b := ad.Bytes()
				if len(b) == 4 {
					return binary.NativeEndian.Uint32(b), nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no route to %s", dst)
}
