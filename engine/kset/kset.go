//go:build linux

package kset

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/nftnotify"
	"github.com/nfgate/nfgate/policy"
)

// Sets implements engine.RegionSets. Safe for concurrent use.
type Sets struct {
	mu    sync.Mutex
	netns int // namespace fd for the netlink sockets; 0: the process's
	table *nftables.Table
	sets  map[layout]*nftables.Set
	// want describes the table the last Reset made ("" before one), the
	// base chains aside: Drift compares the kernel with it.
	want string
	// A stage's base chain jumps to its regions chain only while the
	// stage has elements, so the hooks cost nothing without: base and
	// regions chains by stage; n counts the elements added and not
	// deleted, by set (Counters reads only those sets).
	base, regs map[policy.Stage]*nftables.Chain
	n          map[layout]int
}

// staged is the number of elements of stage st.
func (s *Sets) staged(st policy.Stage) int {
	t := 0
	for l, k := range s.n {
		if l.st == st {
			t += k
		}
	}
	return t
}

// Open returns the sets of the process's network namespace, or of the
// namespace file netnsFd (> 0; tests).
func Open(netnsFd int) *Sets {
	return &Sets{netns: netnsFd, table: &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}}
}

func (s *Sets) conn() (*nftables.Conn, error) {
	if s.netns > 0 {
		return nftables.New(nftables.WithNetNSFd(s.netns))
	}
	return nftables.New()
}

// Available reports whether the kernel takes nfgate's region table (an
// nf_tables inet table with a concatenated range set): it makes and
// deletes a probe table.
func Available(netnsFd int) error {
	s := Open(netnsFd)
	s.table = &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName + "-probe"}
	c, err := s.conn()
	if err != nil {
		return err
	}
	c.AddTable(s.table)
	c.DelTable(s.table)
	c.AddTable(s.table)
	if _, err := s.addSet(c, layout{st: policy.StageForward, fam: 6, kind: engine.RegionPorts}, 16); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("kset: the kernel refuses nf_tables concatenated range sets: %w", err)
	}
	c.DelTable(s.table)
	return c.Flush()
}

var allLayouts = func() []layout {
	var ls []layout
	for _, st := range stages {
		for _, fam := range []uint8{4, 6} {
			for k := engine.RegionKind(0); k < 3; k++ {
				ls = append(ls, layout{st: st, fam: fam, kind: k})
			}
		}
	}
	return ls
}()

// keyType is a set's key type. The type number nft shows can name only
// five fields of a concatenation; the kernel keeps the field lengths
// (NFTA_SET_DESC_CONCAT), which is what matching uses.
func (l layout) keyType() nftables.SetDatatype {
	addr := nftables.TypeIPAddr
	if l.fam == 6 {
		addr = nftables.TypeIP6Addr
	}
	ts := []nftables.SetDatatype{addr, addr, nftables.TypeInetProto}
	switch l.kind {
	case engine.RegionPorts:
		ts = append(ts, nftables.TypeInetService, nftables.TypeInetService)
	case engine.RegionICMP:
		if l.fam == 6 {
			ts = append(ts, nftables.TypeICMP6Type, nftables.TypeICMPV6Code)
		} else {
			ts = append(ts, nftables.TypeICMPType, nftables.TypeICMPCode)
		}
	}
	ts = append(ts, nftables.TypeIFIndex)
	if l.hasOut() {
		ts = append(ts, nftables.TypeIFIndex)
	}
	shown, _ := nftables.ConcatSetType(ts[:min(len(ts), 5)]...)
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	kt := nftables.SetDatatype{Name: strings.Join(names, " . "), Bytes: uint32(l.keyLen())}
	kt.SetNFTMagic(shown.GetNFTMagic())
	return kt
}

func (s *Sets) addSet(c *nftables.Conn, l layout, size int) (*nftables.Set, error) {
	set := &nftables.Set{Table: s.table, Name: setName(l.st, l.fam, l.kind), KeyType: l.keyType(),
		Interval: true, Concatenation: true, HasTimeout: true, Counter: true, Size: uint32(size)}
	if err := c.AddSet(set, nil); err != nil {
		return nil, fmt.Errorf("kset: set %s: %w", set.Name, err)
	}
	return set, nil
}

// Registers: a concatenation is loaded into consecutive 32-bit registers
// from NFT_REG32_00 (register 8) on; the lookup reads it from there.
const reg32 = 8

// ne32 is v as the kernel keeps a host-order 32-bit register value.
func ne32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// lookupExprs loads the key of layout l and looks it up in set.
func lookupExprs(l layout, set *nftables.Set) []expr.Any {
	nfproto := byte(unix.NFPROTO_IPV4)
	saddr, daddr := uint32(12), uint32(16)
	if l.fam == 6 {
		nfproto, saddr, daddr = unix.NFPROTO_IPV6, 8, 24
	}
	al := uint32(l.addrLen())
	r := uint32(reg32)
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Payload{DestRegister: r, Base: expr.PayloadBaseNetworkHeader, Offset: saddr, Len: al},
	}
	r += al / 4
	e = append(e, &expr.Payload{DestRegister: r, Base: expr.PayloadBaseNetworkHeader, Offset: daddr, Len: al})
	r += al / 4
	e = append(e, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: r})
	r++
	if n := uint32(l.abLen()); n > 0 {
		// Ports at transport offsets 0 and 2; ICMP type and code at 0
		// and 1. A packet without its transport header (a later
		// fragment) is not looked up: the load fails.
		e = append(e, &expr.Payload{DestRegister: r, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: n})
		r++
		e = append(e, &expr.Payload{DestRegister: r, Base: expr.PayloadBaseTransportHeader, Offset: n, Len: n})
		r++
	}
	e = append(e, &expr.Meta{Key: expr.MetaKeyIIF, Register: r})
	r++
	if l.hasOut() {
		e = append(e, &expr.Meta{Key: expr.MetaKeyOIF, Register: r})
	}
	return append(e, &expr.Lookup{SourceRegister: reg32, SetName: set.Name, SetID: set.ID})
}

// nonzero: accept when reg & mask != 0 (loaded by load).
func maskedAccept(load expr.Any, mask uint32) []expr.Any {
	return []expr.Any{load,
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ne32(mask), Xor: ne32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ne32(0)},
		&expr.Verdict{Kind: expr.VerdictAccept}}
}

// ctStateNew is the conntrack state bit of a NEW packet (NF_CT_STATE_BIT(IP_CT_NEW)).
const ctStateNew = 1 << 3

// failsafeExprs accepts inbound failsafe traffic of one entry in family fam
// (none when the entry's net is of the other family).
func failsafeExprs(f policy.ProtoPort, fam uint8) []expr.Any {
	nfproto := byte(unix.NFPROTO_IPV4)
	if fam == 6 {
		nfproto = unix.NFPROTO_IPV6
	}
	var e []expr.Any
	e = append(e, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.Protocol}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, f.Port)})
	if f.Net.IsValid() {
		if f.Net.Addr().Is4() != (fam == 4) {
			return nil
		}
		p := f.Net.Masked()
		off, n := uint32(12), uint32(4)
		if fam == 6 {
			off, n = 8, 16
		}
		a := p.Addr().AsSlice()
		m := make([]byte, n)
		for i := 0; i < p.Bits(); i++ {
			m[i/8] |= 0x80 >> (i % 8)
		}
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: m, Xor: make([]byte, n)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a})
	}
	return append(e, &expr.Verdict{Kind: expr.VerdictAccept})
}

// chainSpec is one stage's chain.
type chainSpec struct {
	name string
	hook *nftables.ChainHook
	prio int32
}

func chainOf(st policy.Stage) chainSpec {
	switch st {
	case policy.StagePreDNAT:
		return chainSpec{"prednat", nftables.ChainHookPrerouting, PrioPreDNAT}
	case policy.StageInput:
		return chainSpec{"input", nftables.ChainHookInput, PrioFilter}
	}
	return chainSpec{"forward", nftables.ChainHookForward, PrioFilter}
}

// Reset replaces the table (see engine.RegionSets) in one transaction.
func (s *Sets) Reset(spec *engine.RegionSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.conn()
	if err != nil {
		return fmt.Errorf("kset: %w", err)
	}
	size := spec.Size
	if size <= 0 {
		size = engine.DefaultRegionSize
	}
	// Declare, delete and declare again: one transaction replaces the
	// table whether or not it existed.
	c.AddTable(s.table)
	c.DelTable(s.table)
	c.AddTable(s.table)
	sets := map[layout]*nftables.Set{}
	for _, l := range allLayouts {
		set, err := s.addSet(c, l, size)
		if err != nil {
			return err
		}
		sets[l] = set
	}
	var want []string
	base, regs := map[policy.Stage]*nftables.Chain{}, map[policy.Stage]*nftables.Chain{}
	for _, st := range stages {
		cs := chainOf(st)
		prio := nftables.ChainPriority(cs.prio)
		accept := nftables.ChainPolicyAccept
		base[st] = c.AddChain(&nftables.Chain{Table: s.table, Name: cs.name, Type: nftables.ChainTypeFilter,
			Hooknum: cs.hook, Priority: &prio, Policy: &accept})
		regs[st] = c.AddChain(&nftables.Chain{Table: s.table, Name: cs.name + "-regions"})
		rules, err := s.rules(c, st, spec, sets)
		if err != nil {
			return err
		}
		for _, r := range rules {
			c.AddRule(&nftables.Rule{Table: s.table, Chain: regs[st], Exprs: r})
		}
		want = append(want, fmt.Sprintf("chain %s hook %d prio %d", cs.name, *cs.hook, cs.prio),
			fmt.Sprintf("chain %s-regions rules %d", cs.name, len(rules)))
	}
	for _, l := range allLayouts {
		want = append(want, "set "+setName(l.st, l.fam, l.kind))
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("kset: replacing table inet %s: %w", TableName, err)
	}
	sort.Strings(want)
	s.sets, s.want, s.base, s.regs, s.n = sets, strings.Join(want, "\n"), base, regs, map[layout]int{}
	return nil
}

// forget uncounts an element the kernel no longer holds, turning its
// stage's jump off with its last element.
func (s *Sets) forget(el engine.RegionElem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := layoutOf(&el)
	if err != nil || s.n[l] == 0 {
		return
	}
	if s.n[l]--; s.n[l] == 0 {
		delete(s.n, l)
	}
	if s.staged(l.st) == 0 {
		if c, err := s.conn(); err == nil {
			c.FlushChain(s.base[l.st])
			c.Flush()
		}
	}
}

// jump is the base chain's one rule while its stage has elements.
func (s *Sets) jump(st policy.Stage) *nftables.Rule {
	return &nftables.Rule{Table: s.table, Chain: s.base[st], Exprs: []expr.Any{
		&expr.Verdict{Kind: expr.VerdictJump, Chain: s.regs[st].Name}}}
}

// protoSet declares an anonymous constant set of protocols (a bitmap in
// the kernel: one load and a bit test) and returns the expressions that
// continue when register 1's protocol is in it (or, invert, not in it).
func (s *Sets) protoSet(c *nftables.Conn, protos []byte, invert bool) ([]expr.Any, error) {
	set := &nftables.Set{Table: s.table, Anonymous: true, Constant: true, KeyType: nftables.TypeInetProto}
	var els []nftables.SetElement
	for _, p := range protos {
		els = append(els, nftables.SetElement{Key: []byte{p}})
	}
	if err := c.AddSet(set, els); err != nil {
		return nil, fmt.Errorf("kset: protocol set: %w", err)
	}
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID, Invert: invert}}, nil
}

// Protocols of the set kinds: ported ones, and everything else but ICMP.
var (
	portedProtos  = []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP, unix.IPPROTO_UDPLITE}
	specialProtos = []byte{unix.IPPROTO_ICMP, unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_ICMPV6, unix.IPPROTO_SCTP, unix.IPPROTO_UDPLITE}
)

// rules renders a stage's chain.
func (s *Sets) rules(c *nftables.Conn, st policy.Stage, spec *engine.RegionSpec, sets map[layout]*nftables.Set) ([][]expr.Any, error) {
	meta, ct := spec.Marks.RegionMarkBits(st)
	var rs [][]expr.Any
	// Only NEW packets: ct state & new == 0 -> accept.
	rs = append(rs, []expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ne32(ctStateNew), Xor: ne32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ne32(0)},
		&expr.Verdict{Kind: expr.VerdictAccept}})
	rs = append(rs, maskedAccept(&expr.Meta{Key: expr.MetaKeyMARK, Register: 1}, meta))
	if ct != 0 {
		rs = append(rs, maskedAccept(&expr.Ct{Register: 1, Key: expr.CtKeyMARK}, ct))
	}
	if st != policy.StageForward {
		// Inbound failsafes: those without a net in one set lookup
		// (protocol . destination port), those with a net one rule each.
		var any []nftables.SetElement
		for _, f := range spec.FailsafeIn {
			if !f.Net.IsValid() {
				k := append([]byte{f.Protocol, 0, 0, 0}, binary.BigEndian.AppendUint16(nil, f.Port)...)
				any = append(any, nftables.SetElement{Key: append(k, 0, 0)})
				continue
			}
			for _, fam := range []uint8{4, 6} {
				if e := failsafeExprs(f, fam); e != nil {
					rs = append(rs, e)
				}
			}
		}
		if len(any) > 0 {
			kt, _ := nftables.ConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
			set := &nftables.Set{Table: s.table, Anonymous: true, Constant: true, Concatenation: true, KeyType: kt}
			if err := c.AddSet(set, any); err != nil {
				return nil, fmt.Errorf("kset: failsafe set: %w", err)
			}
			rs = append(rs, []expr.Any{
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32},
				&expr.Payload{DestRegister: reg32 + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: reg32, SetName: set.Name, SetID: set.ID},
				&expr.Verdict{Kind: expr.VerdictAccept}})
		}
	}
	verdict := []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
	if spec.Reject && st != policy.StagePreDNAT {
		verdict = []expr.Any{&expr.Counter{},
			&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}}
	}
	for _, l := range allLayouts {
		if l.st != st {
			continue
		}
		// Each packet is looked up in one set: the one of its kind. (An
		// element never holds another kind's protocol, so this is speed,
		// not correctness.)
		var kind []expr.Any
		var err error
		switch l.kind {
		case engine.RegionPorts:
			kind, err = s.protoSet(c, portedProtos, false)
		case engine.RegionICMP:
			p := byte(unix.IPPROTO_ICMP)
			if l.fam == 6 {
				p = unix.IPPROTO_ICMPV6
			}
			kind = []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}}}
		default:
			kind, err = s.protoSet(c, specialProtos, true)
		}
		if err != nil {
			return nil, err
		}
		e := lookupExprs(l, sets[l])
		rule := append(append(append([]expr.Any{}, e[:2]...), kind...), e[2:]...) // family, kind, key and lookup
		rs = append(rs, append(rule, verdict...))
	}
	return rs, nil
}

// Add installs els (see engine.RegionSets).
func (s *Sets) Add(els []engine.RegionElem, timeout time.Duration) error {
	return s.elems(els, timeout, true)
}

// Delete removes els; elements already gone are skipped (the kernel's own
// expiry may have beaten the installer).
func (s *Sets) Delete(els []engine.RegionElem) error {
	err := s.elems(els, 0, false)
	if errors.Is(err, unix.ENOENT) {
		// One at a time: only those still there.
		for _, el := range els {
			e := s.elems([]engine.RegionElem{el}, 0, false)
			switch {
			case errors.Is(e, unix.ENOENT):
				s.forget(el) // gone already (the kernel's own timeout)
			case e != nil:
				return e
			}
		}
		return nil
	}
	return err
}

func (s *Sets) elems(els []engine.RegionElem, timeout time.Duration, add bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sets == nil {
		return errors.New("kset: no table (Reset first)")
	}
	c, err := s.conn()
	if err != nil {
		return fmt.Errorf("kset: %w", err)
	}
	by := map[layout][]nftables.SetElement{}
	per := map[policy.Stage]int{}
	perSet := map[layout]int{}
	var order []layout
	for i := range els {
		l, err := layoutOf(&els[i])
		if err != nil {
			return err
		}
		if by[l] == nil {
			order = append(order, l)
		}
		by[l] = append(by[l], nftables.SetElement{Key: l.key(&els[i], 0), KeyEnd: l.key(&els[i], 1), Timeout: timeout})
		per[l.st]++
		perSet[l]++
	}
	for _, l := range order {
		if add {
			err = c.SetAddElements(s.sets[l], by[l])
		} else {
			err = c.SetDeleteElements(s.sets[l], by[l])
		}
		if err != nil {
			return fmt.Errorf("kset: %w", err)
		}
	}
	// In the same transaction: a stage's first element turns its jump
	// on, its last one off.
	for _, st := range stages {
		n := s.staged(st)
		switch {
		case per[st] == 0:
		case add && n == 0:
			c.AddRule(s.jump(st))
		case !add && n <= per[st]:
			c.FlushChain(s.base[st])
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("kset: %w", err)
	}
	for l, k := range perSet {
		if add {
			s.n[l] += k
		} else if s.n[l] = max(0, s.n[l]-k); s.n[l] == 0 {
			delete(s.n, l)
		}
	}
	return nil
}

// Counters reports every element with its counters.
func (s *Sets) Counters(fn func(el engine.RegionElem, packets, bytes uint64)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.conn()
	if err != nil {
		return fmt.Errorf("kset: %w", err)
	}
	sets := s.sets
	if sets == nil {
		// Not made by this Sets (nfgate explain, tests): read the
		// kernel's table if there is one.
		if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return fmt.Errorf("kset: %w", err)
		}
		sets = map[layout]*nftables.Set{}
		for _, l := range allLayouts {
			sets[l] = &nftables.Set{Table: s.table, Name: setName(l.st, l.fam, l.kind), KeyType: l.keyType()}
		}
	}
	for _, l := range allLayouts {
		if s.sets != nil && s.n[l] == 0 {
			continue // this Sets added nothing there
		}
		got, err := c.GetSetElements(sets[l])
		if err != nil {
			return fmt.Errorf("kset: reading set %s: %w", sets[l].Name, err)
		}
		for _, g := range got {
			el, err := l.decode(g.Key, g.KeyEnd)
			if err != nil {
				return err
			}
			var p, b uint64
			if g.Counter != nil {
				p, b = g.Counter.Packets, g.Counter.Bytes
			}
			fn(el, p, b)
		}
	}
	return nil
}

// Drift compares the kernel's table with the one the last Reset made.
func (s *Sets) Drift() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.want == "" {
		return "", nil
	}
	have, jumps, err := s.describe()
	if err != nil {
		return "", err
	}
	if have == s.want {
		var bad []string
		for _, st := range stages {
			if want := min(s.staged(st), 1); jumps[chainOf(st).name] != want {
				bad = append(bad, fmt.Sprintf("chain %s has %d rules, want %d", chainOf(st).name, jumps[chainOf(st).name], want))
			}
		}
		if len(bad) == 0 {
			return "", nil
		}
		return "table inet " + TableName + " changed: " + strings.Join(bad, "; "), nil
	}
	if have == "" {
		return "table inet " + TableName + " missing", nil
	}
	return "table inet " + TableName + " changed: " + lineDiff(s.want, have), nil
}

// lineDiff lists the lines of want missing from have and those of have not
// in want.
func lineDiff(want, have string) string {
	w, h := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(want, "\n") {
		w[l] = true
	}
	for _, l := range strings.Split(have, "\n") {
		h[l] = true
	}
	var out []string
	for _, l := range strings.Split(want, "\n") {
		if !h[l] {
			out = append(out, "missing "+l)
		}
	}
	for _, l := range strings.Split(have, "\n") {
		if !w[l] {
			out = append(out, "unexpected "+l)
		}
	}
	return strings.Join(out, "; ")
}

// describe lists the table's chains (base chains: hook and priority;
// others: rule count) and sets as Reset records them ("" when the table is
// missing), and the base chains' rule counts.
func (s *Sets) describe() (string, map[string]int, error) {
	c, err := s.conn()
	if err != nil {
		return "", nil, err
	}
	if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return "", nil, nil
		}
		return "", nil, fmt.Errorf("kset: %w", err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return "", nil, fmt.Errorf("kset: %w", err)
	}
	var have []string
	jumps := map[string]int{}
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		rules, err := c.GetRules(s.table, ch)
		if err != nil {
			return "", nil, fmt.Errorf("kset: %w", err)
		}
		if ch.Hooknum == nil {
			have = append(have, fmt.Sprintf("chain %s rules %d", ch.Name, len(rules)))
			continue
		}
		var prio int64
		if ch.Priority != nil {
			prio = int64(*ch.Priority)
		}
		have = append(have, fmt.Sprintf("chain %s hook %d prio %d", ch.Name, *ch.Hooknum, prio))
		jumps[ch.Name] = len(rules)
	}
	sets, err := c.GetSets(s.table)
	if err != nil {
		return "", nil, fmt.Errorf("kset: %w", err)
	}
	for _, st := range sets {
		if !st.Anonymous && !strings.HasPrefix(st.Name, "__set") {
			have = append(have, "set "+st.Name)
		}
	}
	sort.Strings(have)
	return strings.Join(have, "\n"), jumps, nil
}

// Remove deletes the table (nothing happens when it is missing).
func (s *Sets) Remove() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.conn()
	if err != nil {
		return fmt.Errorf("kset: %w", err)
	}
	c.AddTable(s.table)
	c.DelTable(s.table)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("kset: removing table inet %s: %w", TableName, err)
	}
	s.sets, s.want, s.n = nil, "", nil
	return nil
}

// Remove deletes nfgate's region table from the process's network
// namespace (nfgate cleanup). A kernel without nf_tables has none.
func Remove() error {
	s := Open(0)
	c, err := s.conn()
	if err != nil {
		return fmt.Errorf("kset: %w", err)
	}
	if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) {
			return nil
		}
	}
	return s.Remove()
}

// Changes signals (coalesced) when the table, its chains, rules or sets
// change, from the kernel's notifications; nil when it cannot subscribe.
func (s *Sets) Changes(ctx context.Context) <-chan struct{} {
	var fd int
	err := s.inNS(func() (err error) {
		fd, err = nftnotify.Socket()
		return err
	})
	if err != nil {
		return nil
	}
	return nftnotify.Watch(ctx, fd, func(c nftnotify.Change) bool { return c.Table == TableName })
}

// inNS runs fn on a thread in s's namespace (the process's when netns is 0).
func (s *Sets) inNS(fn func() error) error {
	if s.netns <= 0 {
		return fn()
	}
	return withNetNS(s.netns, fn)
}

// withNetNS runs fn on a locked thread moved into the namespace fd.
func withNetNS(fd int, fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer unix.Close(orig)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return errors.Join(ferr, err) // the thread stays locked and dies with the goroutine
	}
	runtime.UnlockOSThread()
	return ferr
}
