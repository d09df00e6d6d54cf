package links

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/mdlayher/netlink"
)

// rtnetlink message types and attributes (linux/rtnetlink.h,
// linux/if_link.h, linux/if_addr.h). Spelled out here so decoding builds and
// is tested on every platform.
const (
	rtmNewLink = 16
	rtmDelLink = 17
	rtmGetLink = 18
	rtmNewAddr = 20
	rtmDelAddr = 21
	rtmGetAddr = 22

	iflaIfname = 3

	ifaAddress = 1
	ifaLocal   = 2

	ifinfomsgLen = 16 // family, pad, type u16, index s32, flags u32, change u32
	ifaddrmsgLen = 8  // family, prefixlen, flags, scope, index u32

	afInet  = 2
	afInet6 = 10
)

// state is the watcher's mutable view, owned by one goroutine.
type state struct {
	links map[uint32]*linkState
}

type linkState struct {
	name  string
	addrs []netip.Addr
}

func newState() *state { return &state{links: make(map[uint32]*linkState)} }

// apply updates s from one rtnetlink message and reports whether anything a
// reader can see changed. Messages it cannot decode are ignored.
func (s *state) apply(m netlink.Message) bool {
	switch m.Header.Type {
	case rtmNewLink, rtmDelLink:
		idx, name, ok := decodeLink(m.Data)
		if !ok {
			return false
		}
		if m.Header.Type == rtmDelLink {
			if _, had := s.links[idx]; !had {
				return false
			}
			delete(s.links, idx)
			return true
		}
		l := s.links[idx]
		if l == nil {
			if name == "" {
				return false
			}
			s.links[idx] = &linkState{name: name}
			return true
		}
		if name == "" || name == l.name {
			return false
		}
		l.name = name
		return true
	case rtmNewAddr, rtmDelAddr:
		idx, addr, ok := decodeAddr(m.Data)
		if !ok {
			return false
		}
		l := s.links[idx]
		if l == nil {
			// An address event can beat its link's event, or outlive it;
			// either way there is no name to file it under. Keep it on a
			// placeholder so a later NEWLINK finds it.
			if m.Header.Type == rtmDelAddr {
				return false
			}
			l = &linkState{}
			s.links[idx] = l
		}
		i, found := slices.BinarySearchFunc(l.addrs, addr, netip.Addr.Compare)
		if m.Header.Type == rtmDelAddr {
			if !found {
				return false
			}
			l.addrs = slices.Delete(l.addrs, i, i+1)
			return l.name != ""
		}
		if found {
			return false
		}
		l.addrs = slices.Insert(l.addrs, i, addr)
		return l.name != ""
	}
	return false
}

// ifaces returns the named links as a fresh slice for a snapshot.
func (s *state) ifaces() []Iface {
	out := make([]Iface, 0, len(s.links))
	for idx, l := range s.links {
		if l.name == "" {
			continue
		}
		out = append(out, Iface{Index: idx, Name: l.name, Addrs: slices.Clone(l.addrs)})
	}
	return out
}

// decodeLink reads the index and IFLA_IFNAME of an ifinfomsg payload. The
// name is "" when the message does not carry one.
func decodeLink(b []byte) (idx uint32, name string, ok bool) {
	if len(b) < ifinfomsgLen {
		return 0, "", false
	}
	idx = binary.NativeEndian.Uint32(b[4:8])
	if idx == 0 {
		return 0, "", false
	}
	ad, err := netlink.NewAttributeDecoder(b[ifinfomsgLen:])
	if err != nil {
		return 0, "", false
	}
	for ad.Next() {
		if ad.Type() == iflaIfname {
			name = ad.String()
		}
	}
	if ad.Err() != nil {
		return 0, "", false
	}
	return idx, name, true
}

// decodeAddr reads the index and address of an ifaddrmsg payload. The local
// address (IFA_LOCAL) wins over IFA_ADDRESS, which on point-to-point links
// is the peer's.
func decodeAddr(b []byte) (idx uint32, addr netip.Addr, ok bool) {
	if len(b) < ifaddrmsgLen {
		return 0, netip.Addr{}, false
	}
	family := b[0]
	idx = binary.NativeEndian.Uint32(b[4:8])
	ad, err := netlink.NewAttributeDecoder(b[ifaddrmsgLen:])
	if err != nil {
		return 0, netip.Addr{}, false
	}
	var address, local netip.Addr
	for ad.Next() {
		switch ad.Type() {
		case ifaAddress:
			address = decodeIP(family, ad.Bytes())
		case ifaLocal:
			local = decodeIP(family, ad.Bytes())
		}
	}
	if ad.Err() != nil || idx == 0 {
		return 0, netip.Addr{}, false
	}
	if local.IsValid() {
		return idx, local, true
	}
	return idx, address, address.IsValid()
}

func decodeIP(family uint8, b []byte) netip.Addr {
	switch {
	case family == afInet && len(b) == 4:
		return netip.AddrFrom4([4]byte(b))
	case family == afInet6 && len(b) == 16:
		return netip.AddrFrom16([16]byte(b))
	}
	return netip.Addr{}
}
