//go:build linux

// Package nfq adapts go-nfqueue to engine.Queue. It is the only importer of
// go-nfqueue: it converts each kernel message into an engine.Packet at once
// (go-nfqueue allocates per packet; the engine's zero-allocation budget
// starts after this conversion) and maps engine verdicts to NF_DROP,
// NF_ACCEPT and NF_REPEAT with a packet mark.
//
// Kernel facts this relies on: NF_REPEAT re-runs the same table's hook with
// the new mark; the queue's conntrack flag (which would let a verdict set
// the connmark) is not available on every kernel, so nfgate never needs it.
package nfq

import (
	"context"
	"errors"
	"fmt"
	"sync"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/engine"
)

// Options configure a queue.
type Options struct {
	// FailOpen asks the kernel to accept packets when the queue is full
	// (NFQA_CFG_F_FAIL_OPEN). Queue-bypass for an absent reader is a rule
	// option (--queue-bypass), not a queue option.
	FailOpen bool
	// MaxQueueLen is the kernel's queue length (default 4096).
	MaxQueueLen uint32
	// CopyLen is how many bytes of each packet are copied (default 256:
	// enough for IP, IPv6 extension and transport headers).
	CopyLen uint32
	// NetNS is a network namespace fd to bind in (0: the current one).
	NetNS int
}

// Queue is one bound NFQUEUE.
type Queue struct {
	num  uint16
	nf   *nfqueue.Nfqueue
	opt  Options
	once sync.Once
	// Features reports what the kernel accepted.
	FailOpenSet bool
}

// Open opens queue num. Binding happens in Receive.
func Open(num uint16, o Options) (*Queue, error) {
	if o.MaxQueueLen == 0 {
		o.MaxQueueLen = 4096
	}
	if o.CopyLen == 0 {
		o.CopyLen = 256
	}
	return &Queue{num: num, opt: o}, nil
}

func (q *Queue) open(flags uint32) error {
	nf, err := nfqueue.Open(&nfqueue.Config{
		NfQueue:      q.num,
		MaxPacketLen: q.opt.CopyLen,
		MaxQueueLen:  q.opt.MaxQueueLen,
		Copymode:     nfqueue.NfQnlCopyPacket,
		Flags:        flags,
		NetNS:        q.opt.NetNS,
	})
	if err != nil {
		return err
	}
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil {
		nf.Close()
		return err
	}
	// A large socket buffer absorbs bursts: when it is full the kernel
	// counts user_dropped and drops (or, fail-open, accepts) the packet.
	_ = nf.Con.SetReadBuffer(8 << 20)
	q.nf = nf
	return nil
}

// Num returns the queue number.
func (q *Queue) Num() uint16 { return q.num }

// Receive binds the queue and calls fn for every packet until ctx ends.
// The kernel's optional flags are tried first and dropped when refused.
func (q *Queue) Receive(ctx context.Context, fn func(*engine.Packet)) error {
	var pkt engine.Packet
	hook := func(a nfqueue.Attribute) int {
		if a.PacketID == nil {
			return 0
		}
		pkt = engine.Packet{ID: *a.PacketID}
		if a.Hook != nil {
			pkt.Hook = *a.Hook
		}
		if a.Mark != nil {
			pkt.Mark = *a.Mark
		}
		if a.InDev != nil {
			pkt.InIf = *a.InDev
		}
		if a.OutDev != nil {
			pkt.OutIf = *a.OutDev
		}
		if a.Payload != nil {
			pkt.Payload = *a.Payload
		}
		fn(&pkt)
		return 0
	}
	errc := make(chan error, 1)
	errfn := func(err error) int {
		var oe *netlink.OpError
		if errors.As(err, &oe) && (oe.Timeout() || oe.Temporary()) {
			return 0
		}
		if errors.Is(err, unix.ENOENT) {
			// A verdict for a packet the kernel no longer holds (rules
			// changed under it, e.g. `nfgate cleanup --force` or
			// `iptables -F` while the daemon runs): that packet is gone,
			// the queue is fine. Stopping here ended the daemon.
			return 0
		}
		if ctx.Err() != nil {
			return 1
		}
		select {
		case errc <- err:
		default:
		}
		return 1
	}
	flagSets := []uint32{nfqueue.NfQaCfgFlagGSO, 0}
	if q.opt.FailOpen {
		flagSets = []uint32{nfqueue.NfQaCfgFlagFailOpen | nfqueue.NfQaCfgFlagGSO, nfqueue.NfQaCfgFlagFailOpen, nfqueue.NfQaCfgFlagGSO, 0}
	}
	var err error
	for _, f := range flagSets {
		if err = q.open(f); err != nil {
			return fmt.Errorf("nfq: open queue %d: %w", q.num, err)
		}
		if err = q.nf.RegisterWithErrorFunc(ctx, hook, errfn); err == nil {
			q.FailOpenSet = f&nfqueue.NfQaCfgFlagFailOpen != 0
			break
		}
		q.nf.Close()
		q.nf = nil
	}
	if err != nil {
		return fmt.Errorf("nfq: bind queue %d: %w", q.num, err)
	}
	defer q.Close()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return fmt.Errorf("nfq: queue %d: %w", q.num, err)
	}
}

// SetVerdict answers one packet. Safe for concurrent use.
func (q *Queue) SetVerdict(id uint32, a engine.Action, mark uint32) error {
	nf := q.nf
	if nf == nil {
		return errors.New("nfq: queue not bound")
	}
	switch a {
	case engine.NfRepeat:
		return nf.SetVerdictWithOption(id, nfqueue.NfRepeat, nfqueue.WithMark(mark))
	case engine.NfAccept:
		return nf.SetVerdict(id, nfqueue.NfAccept)
	default:
		return nf.SetVerdict(id, nfqueue.NfDrop)
	}
}

// Close unbinds the queue.
func (q *Queue) Close() error {
	var err error
	q.once.Do(func() {
		if q.nf != nil {
			err = q.nf.Close()
		}
	})
	return err
}
