package trace

import (
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendRecord appends r as one JSON line, newline included.
func appendRecord(b []byte, r *Record) []byte {
	b = append(b, `{"time":`...)
	b = appendTime(b, r.Time)
	b = append(b, `,"type":"verdict","gen":`...)
	b = strconv.AppendUint(b, r.Gen, 10)
	b = appendStringField(b, "hash", r.Hash)
	b = appendStringField(b, "stage", r.Stage)
	b = appendStringField(b, "in", r.In)
	b = appendStringField(b, "out", r.Out)
	b = appendStringField(b, "endpoint", r.Endpoint)
	if r.Family != 0 || r.Proto != 0 {
		b = append(b, `,"proto":"`...)
		b = appendProto(b, r.Proto)
		b = append(b, '"')
	}
	b = appendAddrField(b, "src", r.Src)
	b = appendAddrField(b, "dst", r.Dst)
	if r.HasPorts {
		b = appendUintField(b, "sport", uint64(r.SrcPort))
		b = appendUintField(b, "dport", uint64(r.DstPort))
	}
	if r.HasICMP {
		b = appendUintField(b, "icmp_type", uint64(r.ICMPType))
		b = appendUintField(b, "icmp_code", uint64(r.ICMPCode))
	}
	b = appendStringField(b, "ct", r.CT)
	b = append(b, `,"verdict":`...)
	b = appendJSONString(b, r.Verdict)
	b = appendStringField(b, "tier", r.Tier)
	b = appendStringField(b, "policy", r.Policy)
	if r.Rule >= 0 {
		b = append(b, `,"rule":`...)
		b = strconv.AppendInt(b, int64(r.Rule), 10)
	}
	b = appendStringField(b, "reason", r.Reason)
	b = appendUintField(b, "queue", uint64(r.Queue))
	if r.Logged {
		b = append(b, `,"logged":true`...)
	}
	b = appendStringField(b, "note", r.Note)
	return append(b, "}\n"...)
}

// appendReload appends a reload line.
func appendReload(b []byte, ev *ReloadEvent) []byte {
	b = append(b, `{"time":`...)
	b = appendTime(b, ev.Time)
	b = append(b, `,"type":"reload","gen":`...)
	b = strconv.AppendUint(b, ev.Gen, 10)
	b = appendStringField(b, "hash", ev.Hash)
	b = append(b, `,"ok":`...)
	b = strconv.AppendBool(b, ev.OK)
	if len(ev.Errors) > 0 {
		b = append(b, `,"errors":`...)
		b = appendStringArray(b, ev.Errors)
	}
	b = appendUintField(b, "rechecked", uint64(max(ev.Rechecked, 0)))
	b = appendUintField(b, "cut", uint64(max(ev.Cut, 0)))
	if len(ev.Files) > 0 {
		b = append(b, `,"files":`...)
		b = appendStringArray(b, ev.Files)
	}
	if len(ev.Warnings) > 0 {
		b = append(b, `,"degraded":true,"warnings":`...)
		b = appendStringArray(b, ev.Warnings)
	}
	return append(b, "}\n"...)
}

// appendRegion appends a region line.
func appendRegion(b []byte, ev *RegionEvent) []byte {
	b = append(b, `{"time":`...)
	b = appendTime(b, ev.Ended)
	b = append(b, `,"type":"region","installed":`...)
	b = appendTime(b, ev.Installed)
	b = appendStringField(b, "end", ev.End)
	b = appendUintField(b, "gen", ev.Gen)
	b = appendStringField(b, "hash", ev.Hash)
	b = appendStringField(b, "stage", ev.Stage)
	b = appendStringField(b, "in", ev.In)
	b = appendStringField(b, "out", ev.Out)
	b = appendStringField(b, "set", ev.Set)
	b = appendStringField(b, "region", ev.Box)
	b = appendStringField(b, "verdict", ev.Verdict)
	b = appendStringField(b, "endpoint", ev.Endpoint)
	b = appendStringField(b, "tier", ev.Tier)
	b = appendStringField(b, "policy", ev.Policy)
	if ev.Rule >= 0 {
		b = append(b, `,"rule":`...)
		b = strconv.AppendInt(b, int64(ev.Rule), 10)
	}
	b = appendStringField(b, "reason", ev.Reason)
	b = appendUintField(b, "packets", ev.Packets)
	b = appendUintField(b, "bytes", ev.Bytes)
	return append(b, "}\n"...)
}

// appendDropped appends the line reporting n lost records.
func appendDropped(b []byte, t time.Time, n uint64) []byte {
	b = append(b, `{"time":`...)
	b = appendTime(b, t)
	b = append(b, `,"type":"dropped","count":`...)
	b = strconv.AppendUint(b, n, 10)
	return append(b, "}\n"...)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func appendStringField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, v)
}

func appendUintField(b []byte, name string, v uint64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendUint(b, v, 10)
}

func appendAddrField(b []byte, name string, a netip.Addr) []byte {
	if !a.IsValid() {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":"`...)
	b = a.WithZone("").AppendTo(b)
	return append(b, '"')
}

func appendStringArray(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

var protoNames = [256]string{
	1:   "icmp",
	6:   "tcp",
	17:  "udp",
	58:  "icmpv6",
	132: "sctp",
	136: "udplite",
}

func appendProto(b []byte, p uint8) []byte {
	if n := protoNames[p]; n != "" {
		return append(b, n...)
	}
	return strconv.AppendUint(b, uint64(p), 10)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Control characters, quotes
// and backslashes are escaped; invalid UTF-8 becomes U+FFFD, as
// encoding/json does. U+2028 and U+2029 are escaped too, so a line is safe
// to embed in JavaScript.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
