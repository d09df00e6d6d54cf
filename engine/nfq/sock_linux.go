//go:build linux

package nfq

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// procQueueFile is the kernel's queue table as the calling thread's network
// namespace sees it.
const procQueueFile = "/proc/thread-self/net/netfilter/nfnetlink_queue"

// nlsock is a NETLINK_NETFILTER socket with recvmmsg headers prepared once
// over the queue's buffers.
type nlsock struct {
	fd   int
	port uint32
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
}

// openSock makes the socket: receive buffer (SO_RCVBUFFORCE, else as large
// as SO_RCVBUF allows), NETLINK_NO_ENOBUFS (a full buffer drops messages
// instead of failing the next read; the id gaps count them), a receive
// timeout.
func openSock(bufs [][]byte, rcvbuf int) (*nlsock, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	s := &nlsock{fd: fd}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		s.close()
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if nl, ok := sa.(*unix.SockaddrNetlink); err == nil && ok {
		s.port = nl.Pid
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1)
	tv := unix.NsecToTimeval(int64(recvTimeout))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		s.close()
		return nil, fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	s.hdrs = make([]unix.Mmsghdr, len(bufs))
	s.iovs = make([]unix.Iovec, len(bufs))
	for i, b := range bufs {
		s.iovs[i].Base = &b[0]
		s.iovs[i].SetLen(len(b))
		s.hdrs[i].Hdr.Iov = &s.iovs[i]
		s.hdrs[i].Hdr.SetIovlen(1)
	}
	return s, nil
}

func (s *nlsock) recv(ns []int, cut []bool) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.hdrs[0])),
		uintptr(min(len(s.hdrs), len(ns))), unix.MSG_WAITFORONE, 0, 0)
	if e != 0 {
		return 0, e
	}
	n := int(r)
	for i := 0; i < n; i++ {
		ns[i] = int(s.hdrs[i].Len)
		cut[i] = s.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0
	}
	return n, nil
}

func (s *nlsock) recvOne(b []byte) (int, error) {
	n, _, err := unix.Recvfrom(s.fd, b, 0)
	return n, err
}

func (s *nlsock) send(b []byte) error {
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func (s *nlsock) close() error { return unix.Close(s.fd) }

// inNetNS runs f on a locked thread in the network namespace fd (0: the
// current one), so the socket it makes lives there and procQueueFile shows
// that namespace's table.
func inNetNS(fd int, f func() error) error {
	runtime.LockOSThread()
	if fd == 0 {
		defer runtime.UnlockOSThread()
		return f()
	}
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("own network namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering network namespace: %w", err)
	}
	err = f()
	if unix.Setns(orig, unix.CLONE_NEWNET) != nil {
		// The thread stays in the other namespace: keep it locked, so it
		// ends with this goroutine instead of serving others.
		return err
	}
	runtime.UnlockOSThread()
	return err
}

// verifyBound checks the kernel's queue table: queue num must be listed
// with port id port, copy mode "packet" and copy range copyLen. A missing
// table (no /proc) leaves the kernel's acknowledgement as the only proof.
func verifyBound(path string, num uint16, port, copyLen uint32) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the kernel's queue table: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 || fs[0] != strconv.Itoa(int(num)) {
			continue
		}
		if fs[1] != strconv.FormatUint(uint64(port), 10) {
			return fmt.Errorf("the kernel lists the queue with netlink port %s, not this socket's %d", fs[1], port)
		}
		if fs[3] != strconv.Itoa(copyPacket) || fs[4] != strconv.FormatUint(uint64(copyLen), 10) {
			return fmt.Errorf("the kernel lists copy mode %s range %s, want %d and %d", fs[3], fs[4], copyPacket, copyLen)
		}
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the kernel's queue table: %w", err)
	}
	return fmt.Errorf("acknowledged, but the kernel's queue table (%s) does not list it", path)
}
