package classify

var classNames = [...]string{OK: "ok", Fragment: "fragment", Malformed: "malformed"}

// String returns a short lower-case name for logs.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "unknown"
}

var reasonNames = [...]string{
	ReasonNone:               "none",
	ReasonEmpty:              "empty",
	ReasonBadVersion:         "bad-version",
	ReasonTruncatedIP:        "truncated-ip",
	ReasonBadIHL:             "bad-ihl",
	ReasonBadLength:          "bad-length",
	ReasonTruncatedExtHeader: "truncated-ext-header",
	ReasonTruncatedL4:        "truncated-l4",
	ReasonBadTCPOffset:       "bad-tcp-offset",
	ReasonNonFirstFragment:   "non-first-fragment",
	ReasonTooManyExtHeaders:  "too-many-ext-headers",
	ReasonBadUDPLength:       "bad-udp-length",
	ReasonDecodeError:        "decode-error",
	ReasonRoutingHeader0:     "routing-header-0",
}

// String returns a short constant name for logs and counters.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}
