package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/metrics"
)

// sdNotify tells systemd about the daemon's state (Type=notify). Outside
// systemd (no NOTIFY_SOCKET) it does nothing.
type sdNotify struct{ log *slog.Logger }

func (n sdNotify) send(lines ...string) {
	if _, err := daemon.SdNotify(false, strings.Join(lines, "\n")); err != nil {
		n.log.Warn("systemd notify", "err", err)
	}
}

func (n sdNotify) ready(status string) { n.send(daemon.SdNotifyReady, "STATUS="+status) }
func (n sdNotify) reloading() {
	n.send(daemon.SdNotifyReloading, strings.TrimSuffix(daemon.SdNotifyMonotonicUsec(), "\n"), "STATUS=reloading")
}
func (n sdNotify) stopping(status string) { n.send(daemon.SdNotifyStopping, "STATUS="+status) }
func (n sdNotify) status(status string)   { n.send("STATUS=" + status) }
func (n sdNotify) watchdog()              { n.send(daemon.SdNotifyWatchdog) }

// watchdogInterval is systemd's WatchdogSec for this process, 0 when unset.
func watchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}

// health decides whether the packet path makes progress, so the systemd
// watchdog is fed only while it does: a timer alone would keep a daemon
// whose readers are wedged alive while new flows wait in the kernel.
type health struct {
	stuckAfter time.Duration
	// waiting is, per queue, when packets were first seen waiting
	// with the reader's count at handled; reset when the reader moves.
	waiting map[uint16]waitMark
}

type waitMark struct {
	handled uint64
	since   time.Time
}

func newHealth(stuckAfter time.Duration) *health {
	return &health{stuckAfter: stuckAfter, waiting: map[uint16]waitMark{}}
}

// check returns nil while every reader is alive: none has been deciding
// one packet for longer than stuckAfter, and none has left packets waiting
// in its kernel queue without answering any for longer than stuckAfter.
// rows is the kernel's queue table (nil when unreadable: that check is
// skipped).
func (h *health) check(now time.Time, readers []engine.ReaderStatus, rows []metrics.QueueRow) error {
	if len(readers) == 0 {
		return fmt.Errorf("no queue reader is running")
	}
	byNum := make(map[uint16]metrics.QueueRow, len(rows))
	for _, r := range rows {
		byNum[r.Num] = r
	}
	for _, r := range readers {
		if !r.Busy.IsZero() {
			if d := now.Sub(r.Busy); d > h.stuckAfter {
				return fmt.Errorf("queue %d (%s): reader stuck on one packet for %v", r.Queue, r.Stage, d.Round(time.Millisecond))
			}
		}
		row, listed := byNum[r.Queue]
		if rows != nil && !listed {
			return fmt.Errorf("queue %d (%s): the kernel lists no listener", r.Queue, r.Stage)
		}
		if row.Waiting == 0 {
			delete(h.waiting, r.Queue)
			continue
		}
		m, ok := h.waiting[r.Queue]
		if !ok || m.handled != r.Handled {
			h.waiting[r.Queue] = waitMark{handled: r.Handled, since: now}
			continue
		}
		if d := now.Sub(m.since); d > h.stuckAfter {
			return fmt.Errorf("queue %d (%s): %d packets waiting, none answered for %v", r.Queue, r.Stage, row.Waiting, d.Round(time.Millisecond))
		}
	}
	return nil
}
