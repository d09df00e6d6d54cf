package main

import (
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/metrics"
	"github.com/nfgate/nfgate/policy"
)

func TestHealth(t *testing.T) {
	t0 := time.Unix(1000, 0)
	fwd := func(handled uint64, busy time.Time) []engine.ReaderStatus {
		return []engine.ReaderStatus{{Queue: 104, Stage: policy.StageForward, Handled: handled, Busy: busy}}
	}
	table := func(waiting uint64) []metrics.QueueRow { return []metrics.QueueRow{{Num: 104, Waiting: waiting}} }
	h := newHealth(10 * time.Second)
	for _, c := range []struct {
		name    string
		at      time.Duration
		readers []engine.ReaderStatus
		rows    []metrics.QueueRow
		want    string // "" = healthy
	}{
		{"idle reader, empty queue", 0, fwd(5, time.Time{}), table(0), ""},
		{"idle reader, no queue table", 0, fwd(5, time.Time{}), nil, ""},
		{"deciding for 2s", 0, fwd(5, t0.Add(-2*time.Second)), table(0), ""},
		{"deciding for 11s", 0, fwd(5, t0.Add(-11*time.Second)), table(0), "reader stuck on one packet for 11s"},
		{"packets waiting, first seen", 0, fwd(5, time.Time{}), table(3), ""},
		{"still waiting 5s later, no progress", 5 * time.Second, fwd(5, time.Time{}), table(3), ""},
		{"still waiting 11s later, no progress", 11 * time.Second, fwd(5, time.Time{}), table(3), "3 packets waiting, none answered for 11s"},
		{"progress resets the clock", 12 * time.Second, fwd(6, time.Time{}), table(3), ""},
		{"waiting again 9s after progress", 21 * time.Second, fwd(6, time.Time{}), table(1), ""},
		{"queue drained", 30 * time.Second, fwd(6, time.Time{}), table(0), ""},
		{"queue unbound", 31 * time.Second, fwd(6, time.Time{}), []metrics.QueueRow{{Num: 7}}, "no listener"},
		{"no readers", 32 * time.Second, nil, table(0), "no queue reader"},
	} {
		err := h.check(t0.Add(c.at), c.readers, c.rows)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestSdNotifyMessages(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	sd := sdNotify{slog.New(slog.DiscardHandler)}
	recv := func() string {
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 4096)
		n, err := conn.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		return string(b[:n])
	}
	sd.ready("policy generation 1 live")
	if got := recv(); got != "READY=1\nSTATUS=policy generation 1 live" {
		t.Errorf("ready: %q", got)
	}
	sd.reloading()
	if got := recv(); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") || !strings.HasSuffix(got, "\nSTATUS=reloading") {
		t.Errorf("reloading: %q", got)
	}
	sd.watchdog()
	if got := recv(); got != "WATCHDOG=1" {
		t.Errorf("watchdog: %q", got)
	}
	sd.stopping("bye")
	if got := recv(); got != "STOPPING=1\nSTATUS=bye" {
		t.Errorf("stopping: %q", got)
	}
}
