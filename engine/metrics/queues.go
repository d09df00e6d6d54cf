package metrics

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// DefaultQueueFile is the kernel's NFQUEUE table.
const DefaultQueueFile = "/proc/net/netfilter/nfnetlink_queue"

// QueueRow is one line of the kernel's NFQUEUE table: a queue with a
// listener bound to it.
type QueueRow struct {
	Num         uint16
	PortID      uint32 // netlink port id of the listener
	Waiting     uint64 // queue_total: packets waiting for a verdict
	Dropped     uint64 // queue_dropped: queue full
	UserDropped uint64 // user_dropped: the listener's socket buffer was full
}

// ReadQueueFile reads the kernel's NFQUEUE table. A missing file (module
// not loaded, no queue bound yet) is an empty table.
func ReadQueueFile(path string) ([]QueueRow, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseQueues(f)
}

// ParseQueues parses the table's lines: queue number, peer port id,
// queue_total, copy mode, copy range, queue_dropped, user_dropped, id
// sequence, 1.
func ParseQueues(r io.Reader) ([]QueueRow, error) {
	rows := []QueueRow{} // non-nil: the table exists, even when empty
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 7 {
			return rows, fmt.Errorf("nfnetlink_queue line %d: %d fields, want at least 7", line, len(f))
		}
		var v [7]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return rows, fmt.Errorf("nfnetlink_queue line %d field %d: %v", line, i+1, err)
			}
			v[i] = n
		}
		if v[0] > 65535 {
			return rows, fmt.Errorf("nfnetlink_queue line %d: queue number %d out of range", line, v[0])
		}
		rows = append(rows, QueueRow{Num: uint16(v[0]), PortID: uint32(v[1]), Waiting: v[2], Dropped: v[5], UserDropped: v[6]})
	}
	return rows, sc.Err()
}
