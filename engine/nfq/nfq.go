//go:build linux

// Package nfq is nfgate's NFQUEUE reader and verdict writer, on raw netlink
// (golang.org/x/sys/unix), implementing engine.Queue.
//
// One Queue is one kernel queue and one netlink socket. Open binds it: one
// configuration message (bind, copy mode and range, queue length, flags)
// acknowledged by the kernel, then checked in the kernel's queue table
// (/proc/net/netfilter/nfnetlink_queue lists the queue with this socket's
// port id). Only then does Open return, so a caller that installs its hooks
// afterwards never sends packets to a queue nobody holds.
//
// Receive runs on one locked OS thread: a blocking recvmmsg(MSG_WAITFORONE)
// reads up to MaxBurst messages into buffers allocated once; attributes are
// parsed in place into engine.Packet values whose payloads point into those
// buffers; the engine decides the burst and answers it through SetVerdicts,
// which writes all verdict messages (batch verdicts for runs of equal
// answers) into one buffer and sends them with one sendto. Nothing on this
// path allocates.
//
// Kernel facts this relies on: NF_REPEAT re-runs the same table's hook with
// the new mark; the queue's conntrack flag (which would let a verdict set
// the connmark) is not available on every kernel, so nfgate never needs it;
// a queue's packet ids start at 1 and grow by one per packet queued, also
// for packets the socket could not take (the engine counts those gaps).
package nfq

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/engine"
)

// Defaults.
const (
	// DefaultCopyLen is how many bytes of each packet the kernel copies:
	// the IPv4 header with options and a TCP header (80 bytes) always fit;
	// IPv6 leaves 196 bytes for extension headers before the transport
	// header. A packet whose headers do not fit is dropped on a policed
	// interface (engine Stats.Truncated), never guessed at.
	DefaultCopyLen = 256
	// DefaultMaxQueueLen is the kernel queue's length: what waits for
	// nfgate when it is slow or hung before the failure mode applies (the
	// kernel drops the next packet, counting queue_dropped, or in fail-open
	// mode accepts it, counting nothing).
	DefaultMaxQueueLen = 4096
	// DefaultRcvBuf is the socket receive buffer (SO_RCVBUFFORCE; the
	// kernel doubles it for bookkeeping): it holds more messages than the
	// queue, so the queue, not the socket, is what fills. If the socket
	// fills anyway, the kernel still numbers the packet and drops it
	// (user_dropped) or accepts it in fail-open mode: the engine counts
	// those gaps in the ids (Stats.Undelivered).
	DefaultRcvBuf = 8 << 20
	// recvTimeout bounds a blocking read, so Receive notices its context
	// ending.
	recvTimeout = 250 * time.Millisecond
	// bindTimeout bounds the wait for the kernel's answer to the bind.
	bindTimeout = 5 * time.Second
)

// Options configure a queue.
type Options struct {
	// FailOpen asks the kernel to accept packets when the queue or the
	// socket is full (NFQA_CFG_F_FAIL_OPEN). Queue-bypass for an absent
	// reader is a rule option (--queue-bypass), not a queue option.
	FailOpen bool
	// MaxQueueLen is the kernel's queue length (default DefaultMaxQueueLen).
	MaxQueueLen uint32
	// CopyLen is how many bytes of each packet are copied (default
	// DefaultCopyLen).
	CopyLen uint32
	// RcvBuf is the socket receive buffer in bytes (default DefaultRcvBuf).
	RcvBuf int
	// NetNS is a network namespace fd to bind in (0: the current one).
	NetNS int
}

// Queue is one bound NFQUEUE.
type Queue struct {
	num uint16
	opt Options
	s   sock
	// FailOpenSet and GSOSet report the flags the kernel accepted; PortID
	// is the socket's netlink port id (the kernel's queue table lists it).
	FailOpenSet, GSOSet bool
	PortID              uint32

	// Receive side (the reader's goroutine only).
	bufs [][]byte
	lens []int
	cut  []bool
	pkts []engine.Packet
	// Packets that arrived before the bind was acknowledged, answered with
	// NF_REPEAT so the kernel queues them again (see Open).
	Requeued int
	stats    stats

	// Send side.
	wmu    sync.Mutex
	out    []byte
	closed bool

	mu      sync.Mutex // guards running, closing
	running bool
	closing bool
}

// Stats are a queue's own counters.
type Stats struct {
	Reads    uint64 // receive calls that returned messages
	Packets  uint64 // packet messages read
	Sends    uint64 // verdict sendto calls
	Verdicts uint64 // verdict messages sent
	Batches  uint64 // of which NFQNL_MSG_VERDICT_BATCH
}

type stats struct {
	reads, packets, sends, verdicts, batches atomic.Uint64
}

// Stats returns the queue's counters.
func (q *Queue) Stats() Stats {
	s := &q.stats
	return Stats{Reads: s.reads.Load(), Packets: s.packets.Load(), Sends: s.sends.Load(), Verdicts: s.verdicts.Load(), Batches: s.batches.Load()}
}

// sock is the queue's netlink socket (a fake in tests).
type sock interface {
	// recv reads up to len(ns) datagrams into the buffers the socket was
	// made with, blocking until at least one arrived (or a timeout: EAGAIN).
	// ns[i] is datagram i's length, cut[i] whether it was longer than its
	// buffer.
	recv(ns []int, cut []bool) (int, error)
	// recvOne reads one datagram into b (configuration answers).
	recvOne(b []byte) (int, error)
	send(b []byte) error
	close() error
}

// Open binds queue num and returns once the kernel confirmed it (the bind
// was acknowledged and the kernel's queue table lists this socket). The
// kernel's optional flags (fail-open, GSO) are tried first and dropped when
// refused. A queue another socket holds is an error naming it.
func Open(num uint16, o Options) (*Queue, error) {
	o = o.withDefaults()
	q := newQueue(num, o)
	var s *nlsock
	err := inNetNS(o.NetNS, func() error {
		var err error
		if s, err = openSock(q.bufs, o.RcvBuf); err != nil {
			return err
		}
		q.s, q.PortID = s, s.port
		if err = q.bind(); err != nil {
			return err
		}
		return verifyBound(procQueueFile, num, q.PortID, o.CopyLen)
	})
	if err != nil {
		if s != nil {
			s.close()
		}
		return nil, fmt.Errorf("nfq: queue %d: %w", num, err)
	}
	return q, nil
}

func (o Options) withDefaults() Options {
	if o.MaxQueueLen == 0 {
		o.MaxQueueLen = DefaultMaxQueueLen
	}
	if o.CopyLen == 0 {
		o.CopyLen = DefaultCopyLen
	}
	if o.RcvBuf == 0 {
		o.RcvBuf = DefaultRcvBuf
	}
	return o
}

// newQueue allocates the queue's buffers: MaxBurst datagrams of the copy
// range plus room for the attributes.
func newQueue(num uint16, o Options) *Queue {
	q := &Queue{num: num, opt: o}
	size := int(o.CopyLen) + 1024
	q.bufs = make([][]byte, engine.MaxBurst)
	for i := range q.bufs {
		q.bufs[i] = make([]byte, size)
	}
	q.lens = make([]int, engine.MaxBurst)
	q.cut = make([]bool, engine.MaxBurst)
	q.pkts = make([]engine.Packet, 0, engine.MaxBurst)
	q.out = make([]byte, 0, 2*engine.MaxBurst*verdictLen)
	return q
}

// bind sends the configuration, trying the optional flags first.
func (q *Queue) bind() error {
	sets := []uint32{flagGSO, 0}
	if q.opt.FailOpen {
		sets = []uint32{flagFailOpen | flagGSO, flagFailOpen, flagGSO, 0}
	}
	var err error
	for i, f := range sets {
		seq := uint32(i + 1)
		if err = q.config(seq, configMsg(seq, q.num, q.opt.CopyLen, q.opt.MaxQueueLen, f)); err == nil {
			q.FailOpenSet, q.GSOSet = f&flagFailOpen != 0, f&flagGSO != 0
			return nil
		}
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("bound by another process (is another nfgate running?): %w", err)
		}
		// Undo a partial bind before trying fewer flags.
		q.config(seq+100, unbindMsg(seq+100, q.num))
	}
	return fmt.Errorf("bind refused: %w", err)
}

// config sends one configuration message and waits for the kernel's
// acknowledgement. Packets that arrive first (the queue is live from the
// bind on, and hooks of an earlier run may still be queueing) are answered
// NF_REPEAT with their mark unchanged: the kernel runs the hook again and
// queues them anew, now with the copy mode set, for the engine to decide.
func (q *Queue) config(seq uint32, m []byte) error {
	if err := q.s.send(m); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	end := time.Now().Add(bindTimeout)
	for time.Now().Before(end) {
		n, err := q.s.recvOne(buf)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		result, done := 0, false
		for m := buf[:n]; len(m) >= nlmsgHdrLen; {
			s := seqOf(m)
			typ, body, rest, ok := next(m)
			if !ok {
				break
			}
			m = rest
			switch typ {
			case nlmsgError:
				if s == seq {
					result, done = int(-errCode(body)), true
				}
			case msgPacket:
				var p engine.Packet
				if parsePacket(body, false, &p) {
					q.Requeued++
					q.s.send(appendVerdict(nil, q.num, engine.Verdict{ID: p.ID, Action: engine.NfRepeat, Mark: p.Mark}))
				}
			}
		}
		if done {
			if result != 0 {
				return unix.Errno(result)
			}
			return nil
		}
	}
	return fmt.Errorf("no answer from the kernel within %v", bindTimeout)
}

// Num returns the queue number.
func (q *Queue) Num() uint16 { return q.num }

// Receive calls fn with each burst of packets until ctx ends or the socket
// fails, on a locked OS thread. It closes the queue when it returns.
func (q *Queue) Receive(ctx context.Context, fn func(*engine.Burst)) error {
	q.mu.Lock()
	if q.closing || q.running {
		q.mu.Unlock()
		return errors.New("nfq: queue closed or already receiving")
	}
	q.running = true
	q.mu.Unlock()
	defer q.finish()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var b engine.Burst
	for ctx.Err() == nil {
		err := q.read(fn, &b)
		if err == nil {
			continue
		}
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue // the timeout: look at ctx
		case errors.Is(err, unix.ENOBUFS):
			// Only without NETLINK_NO_ENOBUFS: messages were lost, and
			// the id gaps count them.
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("nfq: queue %d: receive: %w", q.num, err)
	}
	return nil
}

// read does one receive call and hands its packets to fn (b is scratch).
func (q *Queue) read(fn func(*engine.Burst), b *engine.Burst) error {
	n, err := q.s.recv(q.lens, q.cut)
	if err != nil {
		return err
	}
	b.Packets, b.VerdictErrs = q.pkts[:0], 0
	for i := 0; i < n; i++ {
		m := q.bufs[i][:q.lens[i]]
		for len(m) >= nlmsgHdrLen {
			typ, body, rest, ok := next(m)
			if !ok {
				break
			}
			m = rest
			switch typ {
			case msgPacket:
				if len(b.Packets) == cap(b.Packets) {
					fn(b) // more messages than slots: hand these over first
					b.Packets, b.VerdictErrs = q.pkts[:0], 0
				}
				b.Packets = b.Packets[:len(b.Packets)+1]
				if !parsePacket(body, q.cut[i], &b.Packets[len(b.Packets)-1]) {
					b.Packets = b.Packets[:len(b.Packets)-1]
				}
			case nlmsgError:
				if errCode(body) != 0 {
					b.VerdictErrs++ // a verdict the kernel refused
				}
			}
		}
	}
	q.stats.reads.Add(1)
	q.stats.packets.Add(uint64(len(b.Packets)))
	if len(b.Packets) > 0 || b.VerdictErrs > 0 {
		fn(b)
	}
	return nil
}

// SetVerdicts sends vs in one sendto. Safe for concurrent use.
func (q *Queue) SetVerdicts(vs []engine.Verdict) error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if q.closed {
		return errors.New("nfq: queue closed")
	}
	b := q.out[:0]
	batches := 0
	for _, v := range vs {
		b = appendVerdict(b, q.num, v)
		if v.Batch {
			batches++
		}
	}
	q.out = b[:0]
	if len(b) == 0 {
		return nil
	}
	var err error
	for try := 0; try < 3; try++ {
		if err = q.s.send(b); err == nil {
			q.stats.sends.Add(1)
			q.stats.verdicts.Add(uint64(len(vs)))
			q.stats.batches.Add(uint64(batches))
			return nil
		}
		if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.ENOMEM) && !errors.Is(err, unix.EAGAIN) {
			break
		}
	}
	return fmt.Errorf("nfq: queue %d: sending %d verdicts: %w", q.num, len(vs), err)
}

// Close unbinds the queue (closing its socket: the kernel drops what is
// still queued). While Receive runs, the socket is closed when it returns.
func (q *Queue) Close() error {
	q.mu.Lock()
	q.closing = true
	running := q.running
	q.mu.Unlock()
	if running {
		return nil
	}
	return q.closeSock()
}

func (q *Queue) finish() {
	q.mu.Lock()
	q.running = false
	q.closing = true
	q.mu.Unlock()
	q.closeSock()
}

func (q *Queue) closeSock() error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	return q.s.close()
}
