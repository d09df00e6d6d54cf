// Package links keeps nfgate's view of the host's network interfaces
// current: interface index to name, and name to addresses.
//
// Watch (Linux) dumps links and addresses over rtnetlink, then follows
// RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR and RTNLGRP_IPV6_IFADDR events. Each
// change is published as a new immutable snapshot behind an atomic pointer,
// so the packet path resolves names with Name without locks or allocations,
// and readers of Changed hear about it once per burst of changes. If the
// kernel reports that events were lost (ENOBUFS) the table is rebuilt from a
// fresh dump.
//
// NewStatic builds a fixed table for tests and for explain/replay tools.
package links

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// Iface is one network interface.
type Iface struct {
	Index uint32
	Name  string
	Addrs []netip.Addr // sorted; IPv6 link-local addresses carry no zone
}

// denseLimit bounds the ifindex-indexed slice; rarer, larger indexes (long
// lived hosts with much veth churn) go to a map.
const denseLimit = 4096

// snapshot is an immutable view of the interfaces.
type snapshot struct {
	dense  []string          // ifindex -> name for ifindex < denseLimit, "" if absent
	sparse map[uint32]string // ifindex -> name for the rest
	ifaces []Iface           // sorted by index; Addrs never modified after publish
	byName map[string]int    // name -> position in ifaces
}

func newSnapshot(ifs []Iface) *snapshot {
	s := &snapshot{ifaces: ifs, byName: make(map[string]int, len(ifs))}
	slices.SortFunc(s.ifaces, func(a, b Iface) int { return cmp.Compare(a.Index, b.Index) })
	maxDense := uint32(0)
	for _, ifc := range ifs {
		if ifc.Index < denseLimit && ifc.Index >= maxDense {
			maxDense = ifc.Index + 1
		}
	}
	s.dense = make([]string, maxDense)
	for i, ifc := range s.ifaces {
		s.byName[ifc.Name] = i
		if ifc.Index < denseLimit {
			s.dense[ifc.Index] = ifc.Name
			continue
		}
		if s.sparse == nil {
			s.sparse = make(map[uint32]string)
		}
		s.sparse[ifc.Index] = ifc.Name
	}
	return s
}

// Table is a current view of the interfaces. All methods are safe for
// concurrent use.
type Table struct {
	snap    atomic.Pointer[snapshot]
	changed chan struct{}

	closeOnce sync.Once
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the watcher has stopped; nil for static tables
}

func newTable() *Table {
	t := &Table{changed: make(chan struct{}, 1), stop: make(chan struct{})}
	t.snap.Store(newSnapshot(nil))
	return t
}

// NewStatic returns a table holding ifs, which never changes. The slice and
// its address slices are copied.
func NewStatic(ifs []Iface) *Table {
	t := newTable()
	t.snap.Store(newSnapshot(cloneIfaces(ifs)))
	return t
}

// Name returns the name of the interface with index ifindex. It takes no
// lock and allocates nothing.
func (t *Table) Name(ifindex uint32) (string, bool) {
	s := t.snap.Load()
	if ifindex < uint32(len(s.dense)) {
		n := s.dense[ifindex]
		return n, n != ""
	}
	n, ok := s.sparse[ifindex]
	return n, ok
}

// Index returns the index of the interface called name.
func (t *Table) Index(name string) (uint32, bool) {
	s := t.snap.Load()
	i, ok := s.byName[name]
	if !ok {
		return 0, false
	}
	return s.ifaces[i].Index, true
}

// Addrs returns a copy of the addresses of the interface called name.
func (t *Table) Addrs(name string) ([]netip.Addr, bool) {
	s := t.snap.Load()
	i, ok := s.byName[name]
	if !ok {
		return nil, false
	}
	return slices.Clone(s.ifaces[i].Addrs), true
}

// Interfaces returns a copy of every interface, sorted by index.
func (t *Table) Interfaces() []Iface {
	return cloneIfaces(t.snap.Load().ifaces)
}

// Changed returns a channel that receives a value after the table changed.
// Notifications are coalesced: one value may stand for many changes, so a
// reader should re-read the table after each. It is meant for one reader.
func (t *Table) Changed() <-chan struct{} { return t.changed }

// Close stops watching for changes and waits for the watcher to exit. The
// table keeps answering with its last state. Close is idempotent.
func (t *Table) Close() {
	t.closeOnce.Do(func() { close(t.stop) })
	if t.done != nil {
		<-t.done
	}
}

// publish installs ifs (owned by the table from now on) and notifies.
func (t *Table) publish(ifs []Iface) {
	t.snap.Store(newSnapshot(ifs))
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

func cloneIfaces(ifs []Iface) []Iface {
	out := make([]Iface, len(ifs))
	for i, ifc := range ifs {
		out[i] = Iface{Index: ifc.Index, Name: ifc.Name, Addrs: slices.Clone(ifc.Addrs)}
	}
	return out
}
