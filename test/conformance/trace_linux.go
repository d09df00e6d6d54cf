//go:build linux

package conformance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The kernel's nf_tables trace: every traced packet reports each rule that
// matched (with its verdict) and each base chain's policy, on the
// NFNLGRP_NFTRACE netlink group of its network namespace. Reading it from
// the kernel tells, for both gateways alike, what each hook did with a
// probe: ACCEPT (a rule accepted), DROP (a rule dropped, or the packet
// was queued and never came back), NONE (the base chain's policy: the
// firewall returned without a verdict). Constants: linux/netfilter/nf_tables.h.
const (
	nfnlSubsysNFTables = 10
	nftMsgTrace        = 17
	nfnlGrpNFTrace     = 9

	nftaTraceTable     = 1
	nftaTraceChain     = 2
	nftaTraceType      = 4
	nftaTraceVerdict   = 5
	nftaTraceID        = 6
	nftaTraceNetwork   = 8
	nftaTraceTransport = 9
	nftaTraceIIF       = 10
	nftaTraceOIF       = 12
	nftaTraceNFProto   = 15
	nftaTracePolicy    = 16

	nftaVerdictCode  = 1
	nftaVerdictChain = 2
)

// tracer collects trace events of one namespace.
type tracer struct {
	conn *netlink.Conn
	mu   sync.Mutex
	evs  []traceEvent
	errs []error
	done chan struct{}
}

func openTracer(nsPath string) (*tracer, error) {
	f, err := os.Open(nsPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		return nil, fmt.Errorf("trace: netlink: %w", err)
	}
	if err := c.JoinGroup(nfnlGrpNFTrace); err != nil {
		c.Close()
		return nil, fmt.Errorf("trace: join NFNLGRP_NFTRACE: %w", err)
	}
	// A burst of probes makes thousands of events: a large buffer keeps
	// the kernel from dropping them (ENOBUFS is reported, never ignored).
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
		})
	}
	t := &tracer{conn: c, done: make(chan struct{})}
	go t.loop()
	return t, nil
}

func (t *tracer) loop() {
	defer close(t.done)
	for {
		msgs, err := t.conn.Receive()
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF) {
				return
			}
			var oe *netlink.OpError
			if errors.As(err, &oe) && errors.Is(oe.Err, unix.ENOBUFS) {
				t.mu.Lock()
				t.errs = append(t.errs, errors.New("trace: events lost (ENOBUFS)"))
				t.mu.Unlock()
				continue
			}
			if errors.Is(err, unix.ENOBUFS) {
				t.mu.Lock()
				t.errs = append(t.errs, errors.New("trace: events lost (ENOBUFS)"))
				t.mu.Unlock()
				continue
			}
			// A closed socket ends the loop quietly.
			return
		}
		var evs []traceEvent
		for _, m := range msgs {
			if uint16(m.Header.Type) != nfnlSubsysNFTables<<8|nftMsgTrace || len(m.Data) < 4 {
				continue
			}
			ev, err := decodeTrace(m.Data)
			if err != nil {
				continue
			}
			evs = append(evs, ev)
		}
		t.mu.Lock()
		t.evs = append(t.evs, evs...)
		t.mu.Unlock()
	}
}

func decodeTrace(b []byte) (traceEvent, error) {
	ev := traceEvent{Family: b[0]}
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return ev, err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case nftaTraceTable:
			ev.Table = ad.String()
		case nftaTraceChain:
			ev.Chain = ad.String()
		case nftaTraceType:
			ev.Type = ad.Uint32()
		case nftaTraceID:
			ev.ID = ad.Uint32()
		case nftaTraceNetwork:
			ev.Network, ev.HasPacket = ad.Bytes(), true
		case nftaTraceTransport:
			ev.Transport = ad.Bytes()
		case nftaTraceIIF:
			ev.IIF = ad.Uint32()
		case nftaTraceOIF:
			ev.OIF = ad.Uint32()
		case nftaTraceNFProto:
			ev.Family = uint8(ad.Uint32())
		case nftaTracePolicy:
			ev.Verdict = int32(ad.Uint32())
		case nftaTraceVerdict:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				for nd.Next() {
					switch nd.Type() {
					case nftaVerdictCode:
						ev.Verdict = int32(nd.Uint32())
					case nftaVerdictChain:
						ev.JumpTo = nd.String()
					}
				}
				return nil
			})
		}
	}
	return ev, ad.Err()
}

// take returns and forgets the events collected so far, and any loss.
func (t *tracer) take() ([]traceEvent, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	evs, errs := t.evs, t.errs
	t.evs, t.errs = nil, nil
	return evs, errors.Join(errs...)
}

// count is the number of events collected so far.
func (t *tracer) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.evs)
}

// settle waits until no event arrived for quiet, at most max.
func (t *tracer) settle(quiet, max time.Duration) {
	deadline := time.Now().Add(max)
	last, lastChange := t.count(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(quiet / 5)
		if n := t.count(); n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) >= quiet {
			return
		}
	}
}

func (t *tracer) close() {
	t.conn.Close()
	<-t.done
}
