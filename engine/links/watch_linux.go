//go:build linux

package links

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Watch dumps the interfaces of the current network namespace and keeps the
// returned table current until ctx is done or Close is called.
func Watch(ctx context.Context) (*Table, error) { return WatchNetNS(ctx, 0) }

// WatchNetNS is Watch for the network namespace open at file descriptor
// nsfd (0: the current one). The descriptor is only used while dialing.
func WatchNetNS(ctx context.Context, nsfd int) (*Table, error) {
	// Subscribe before dumping, so no change between the dump and the
	// subscription is missed; events that the dump already reflects are
	// replayed on top of it harmlessly, in order.
	events, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{
		Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR,
		NetNS:  nsfd,
	})
	if err != nil {
		return nil, fmt.Errorf("links: subscribing to rtnetlink: %w", err)
	}
	// A bigger receive buffer makes lost events (ENOBUFS, then a resync)
	// rarer during bursts such as a container runtime creating many veths.
	_ = events.SetReadBuffer(1 << 20)
	dump, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: nsfd})
	if err != nil {
		events.Close()
		return nil, fmt.Errorf("links: dialing rtnetlink: %w", err)
	}
	st, err := dumpState(dump)
	if err != nil {
		events.Close()
		dump.Close()
		return nil, err
	}
	t := newTable()
	t.done = make(chan struct{})
	t.publish(st.ifaces())
	// Drain the initial notification: the caller has just read the table.
	<-t.changed

	go func() {
		select {
		case <-ctx.Done():
			t.closeOnce.Do(func() { close(t.stop) })
		case <-t.stop:
		}
		events.Close() // unblocks Receive
	}()
	go t.follow(events, dump, st)
	return t, nil
}

// follow applies events until the event socket is closed.
func (t *Table) follow(events, dump *netlink.Conn, st *state) {
	defer close(t.done)
	defer dump.Close()
	backoff := 10 * time.Millisecond
	for {
		msgs, err := events.Receive()
		if err != nil {
			if t.stopped() || errors.Is(err, net.ErrClosed) {
				return
			}
			// ENOBUFS: the kernel dropped events. Anything else is
			// unexpected; in both cases rebuild from a dump, pacing retries.
			if !errors.Is(err, unix.ENOBUFS) {
				select {
				case <-time.After(backoff):
				case <-t.stop:
					return
				}
				backoff = min(2*backoff, 5*time.Second)
			}
			if fresh, err := dumpState(dump); err == nil {
				st = fresh
				t.publish(st.ifaces())
			}
			continue
		}
		backoff = 10 * time.Millisecond
		dirty := false
		for _, m := range msgs {
			if st.apply(m) {
				dirty = true
			}
		}
		if dirty {
			t.publish(st.ifaces())
		}
	}
}

func (t *Table) stopped() bool {
	select {
	case <-t.stop:
		return true
	default:
		return false
	}
}

// dumpState builds a state from full link and address dumps.
func dumpState(c *netlink.Conn) (*state, error) {
	st := newState()
	for _, req := range []struct {
		typ  netlink.HeaderType
		body int
		what string
	}{
		{rtmGetLink, ifinfomsgLen, "links"},
		{rtmGetAddr, ifaddrmsgLen, "addresses"},
	} {
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: req.typ, Flags: netlink.Request | netlink.Dump},
			Data:   make([]byte, req.body), // AF_UNSPEC: every family
		})
		if err != nil {
			return nil, fmt.Errorf("links: dumping %s: %w", req.what, err)
		}
		for _, m := range msgs {
			st.apply(m)
		}
	}
	return st, nil
}
