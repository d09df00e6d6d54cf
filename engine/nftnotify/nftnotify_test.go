//go:build linux

package nftnotify

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// msg builds one nf_tables notification: header, nfgenmsg, and a table
// name attribute when table is not empty.
func msg(typ uint8, family uint8, table string) []byte {
	body := []byte{family, 0, 0, 0}
	if table != "" {
		v := append([]byte(table), 0)
		a := make([]byte, 4, 4+len(v)+3)
		binary.NativeEndian.PutUint16(a, uint16(4+len(v)))
		binary.NativeEndian.PutUint16(a[2:], nftaTable)
		a = append(a, v...)
		for len(a)%4 != 0 {
			a = append(a, 0)
		}
		body = append(body, a...)
	}
	b := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(b, uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(b[4:], nfnlSubsysNft<<8|uint16(typ))
	return append(b, body...)
}

func TestMatches(t *testing.T) {
	ours := func(c Change) bool { return c.Table == "nfgate" && c.Family == unix.NFPROTO_INET }
	for _, c := range []struct {
		name  string
		batch []byte
		want  bool
	}{
		{"our table's rule deleted", msg(MsgDelRule, unix.NFPROTO_INET, "nfgate"), true},
		{"our set added", msg(MsgNewSet, unix.NFPROTO_INET, "nfgate"), true},
		{"another table", msg(MsgNewRule, unix.NFPROTO_INET, "other"), false},
		{"same name, other family", msg(MsgNewChain, unix.NFPROTO_IPV4, "nfgate"), false},
		{"a set element (not a shape change)", msg(12, unix.NFPROTO_INET, "nfgate"), false},
		{"ours after another in one batch", append(msg(MsgNewRule, unix.NFPROTO_IPV4, "filter"), msg(MsgDelTable, unix.NFPROTO_INET, "nfgate")...), true},
		{"truncated: a length beyond the batch", msg(MsgNewRule, unix.NFPROTO_INET, "other")[:20], true},
		{"empty", nil, false},
	} {
		if got := Matches(c.batch, ours); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	var seen Change
	Matches(msg(MsgNewChain, unix.NFPROTO_IPV6, "mangle"), func(c Change) bool { seen = c; return false })
	if seen != (Change{Type: MsgNewChain, Family: unix.NFPROTO_IPV6, Table: "mangle"}) {
		t.Errorf("parsed %+v", seen)
	}
}
