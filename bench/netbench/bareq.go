//go:build linux

package netbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
)

// The bare NFQUEUE reader is the floor of any userspace design: it accepts
// every queued packet with NF_REPEAT and a mark bit that a rule saves to the
// connmark (the same trick nfgate uses), reading with the same go-nfqueue
// settings as nfgate's adapter (copy 256 bytes, GSO, 8 MiB socket buffer,
// no ENOBUFS). The harness runs it as a child process (RoleEnv) in the
// gateway namespace so its CPU and memory are its own.

// RoleEnv selects a child role when the harness re-executes itself.
const RoleEnv = "NETBENCH_ROLE"

// bareMark is the bit the bare reader sets (inside nfgate's default mask,
// but the two never run at the same time).
const bareMark = 0x00010000

// BareRules is the gateway's filter table for the bare reader: established
// flows and decided flows stay in the kernel, new ones go to queues
// base..base+n-1.
func BareRules(base, n int) string {
	q := fmt.Sprintf("--queue-num %d", base)
	if n > 1 {
		q = fmt.Sprintf("--queue-balance %d:%d", base, base+n-1)
	}
	return fmt.Sprintf(`*mangle
-A PREROUTING -j CONNMARK --restore-mark --nfmask %#x --ctmask %#x
COMMIT
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m mark --mark %#x/%#x -j CONNMARK --save-mark --nfmask %#x --ctmask %#x
-A FORWARD -m mark --mark %#x/%#x -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW -j NFQUEUE %s
COMMIT
`, bareMark, bareMark, bareMark, bareMark, bareMark, bareMark, bareMark, bareMark, q)
}

// MaybeChild runs a child role if RoleEnv asks for one, and exits; it
// returns at once otherwise. Call it first in main (and TestMain).
func MaybeChild() {
	role := os.Getenv(RoleEnv)
	if role == "" {
		return
	}
	var err error
	switch {
	case strings.HasPrefix(role, "bareq:"):
		err = bareQueueMain(strings.TrimPrefix(role, "bareq:"))
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netbench child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// bareQueueMain serves queues "base:n" until SIGTERM.
func bareQueueMain(spec string) error {
	b, n, ok := strings.Cut(spec, ":")
	base, err1 := strconv.Atoi(b)
	num, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil || num < 1 {
		return fmt.Errorf("bad queue spec %q", spec)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	errc := make(chan error, num)
	for i := 0; i < num; i++ {
		nf, err := nfqueue.Open(&nfqueue.Config{
			NfQueue:      uint16(base + i),
			MaxPacketLen: 256,
			MaxQueueLen:  4096,
			Copymode:     nfqueue.NfQnlCopyPacket,
			Flags:        nfqueue.NfQaCfgFlagGSO,
		})
		if err != nil {
			return err
		}
		defer nf.Close()
		if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil {
			return err
		}
		_ = nf.Con.SetReadBuffer(8 << 20)
		hook := func(a nfqueue.Attribute) int {
			if a.PacketID == nil {
				return 0
			}
			var mark uint32
			if a.Mark != nil {
				mark = *a.Mark
			}
			nf.SetVerdictWithOption(*a.PacketID, nfqueue.NfRepeat, nfqueue.WithMark(mark|bareMark))
			return 0
		}
		errfn := func(err error) int {
			var oe *netlink.OpError
			if errors.As(err, &oe) && (oe.Timeout() || oe.Temporary()) {
				return 0
			}
			if ctx.Err() == nil {
				errc <- err
			}
			return 1
		}
		if err := nf.RegisterWithErrorFunc(ctx, hook, errfn); err != nil {
			return fmt.Errorf("queue %d: %w", base+i, err)
		}
	}
	fmt.Println("ready")
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}
