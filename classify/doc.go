// Package classify decodes the first bytes of an IP packet into a fixed-size
// Packet value for policy evaluation. It knows nothing about rules.
//
// Allocation contract: Decoder.Decode allocates nothing and returns no error.
// Malformed, truncated or unsupported input is reported through Packet.Class
// and Packet.Reason, so every packet gets a defined verdict downstream.
// Decode never panics and never reads outside the buffer it is given.
//
// # Input
//
// Decode takes a raw IP packet as NFQUEUE delivers it: starting at the IP
// header, with no link layer, possibly cut short by the queue's copy range.
// Packet.Length is the length the IP header states; decoding uses only the
// bytes that are both present and inside that stated length.
//
// Checksums (IPv4 header, TCP, UDP, SCTP, ICMP) are not verified: the kernel
// verifies them, and a verdict does not depend on them.
//
// # Decoding with gopacket, without allocating
//
// Headers are decoded by github.com/google/gopacket DecodingLayers (IPv4,
// IPv6, IPv6ExtensionSkipper, TCP, UDP, SCTP, ICMPv4, ICMPv6) held in the
// Decoder and reused for every packet. In gopacket v1.1.19 these layers
// allocate on some paths, measured and avoided as follows:
//
//   - Every error return allocates (fmt.Errorf, errors.New). Decode checks the
//     bounds of each header by hand before calling DecodeFromBytes, so the
//     layers only ever take their success path. Class and Reason come from
//     those checks, not from gopacket errors. If a layer still returned an
//     error, the packet would be Malformed with ReasonDecodeError; FuzzDecode
//     asserts that never happens.
//   - IPv4 options and TCP options are parsed into slices that grow, and
//     malformed options are errors; IPv6 hop-by-hop options (decoded inside
//     layers.IPv6) allocate one object per option, and IPv6Destination also
//     appends its options to a slice it never resets; a zero IPv6 payload
//     length is an error unless a jumbogram option is present. Policy needs
//     none of this. So the IPv4,
//     IPv6, TCP and UDP fixed headers are decoded from a copy in the Decoder
//     whose length and next-header fields are normalised to "nothing follows"
//     (IPv4 IHL 5 and total length 20, IPv6 next header 59 and payload length
//     1, TCP data offset 5, UDP length 8). Decode reads those fields from the
//     original bytes itself. Options are skipped unread, whatever they hold.
//   - gopacket v1.1.19 has no DecodingLayer for the IPv6 fragment header, the
//     authentication header (AH) or UDP-Lite (their decoders allocate a new
//     layer per packet). These are read by a short hand-written walk: fragment
//     header fields at fixed offsets, AH length as (len+2)*4 bytes, UDP-Lite
//     ports from the first four bytes. Hop-by-hop, routing and destination
//     options headers are skipped with IPv6ExtensionSkipper.
//
// TestNoAllocs proves zero allocations for every fixture kind, malformed ones
// included, and BenchmarkDecode reports allocs/op per kind.
//
// # Semantics
//
// IPv4: version 4, IHL at least 5, total length at least the header length,
// header present in the buffer. Options are skipped. A fragment with a non-zero
// offset is Class Fragment; a first fragment (offset 0, More Fragments set) is
// decoded like a whole packet and is Malformed if it is too short to hold the
// transport header.
//
// IPv6: the extension header chain is walked to the upper-layer protocol:
// hop-by-hop (0), routing (43), destination options (60) and AH (51) are
// skipped; a fragment header (44) with offset 0 is skipped, one with a non-zero
// offset makes the packet a Fragment whose Proto is the fragment header's next
// header. At most MaxExtHeaders extension headers are walked. ESP (50), no next
// header (59) and any other protocol end the walk: Proto is set, Class is OK,
// and there are no ports. Length is 40 plus the payload length, saturating at
// 65535; a payload length of 0 after a hop-by-hop header (a jumbogram) gives
// Length 40 and decoding uses the bytes present. Addresses are kept as 16-byte
// IPv6 addresses, IPv4-mapped ones included.
//
// Transport: TCP, UDP, UDP-Lite and SCTP give ports; TCP also gives TCPFlags
// (the byte holding CWR..FIN, see TCPFlagSYN and friends). ICMP (in IPv4 only)
// and ICMPv6 (in IPv6 only) give type and code; for ICMP errors these are the
// outer type and code, and the quoted inner packet is not decoded. Any other
// protocol is OK with Proto set and nothing else. A TCP header whose options
// are cut off by the copy range is OK: ports and flags are in the fixed part.
//
// Src, Dst, Family and, where it was reached, Proto are filled for every packet
// whose fixed IP header is present, whatever its Class. Decode leaves
// Packet.CT as the caller set it and resets every other field.
//
// # Class and Reason
//
// Every decoded packet has exactly one of these outcomes. The engine gives
// each a defined verdict.
//
//	Class      Reason                    Meaning
//	OK         ReasonNone                Decoded. Ports are valid for TCP/UDP/UDP-Lite/SCTP,
//	                                     ICMP type/code for ICMP/ICMPv6; other protocols
//	                                     (ESP, GRE, no next header...) carry only Proto.
//	Fragment   ReasonNonFirstFragment    Non-first IPv4 or IPv6 fragment. Family, Src, Dst
//	                                     and Proto are valid; there are no ports or ICMP fields.
//	Malformed  ReasonEmpty               Zero-length buffer. Nothing is valid.
//	Malformed  ReasonBadVersion          IP version is neither 4 nor 6. Nothing is valid.
//	Malformed  ReasonTruncatedIP         Buffer shorter than the fixed IP header (20 or 40
//	                                     bytes) or than the IPv4 header length (IHL).
//	                                     Family valid; addresses valid if 20/40 bytes present.
//	Malformed  ReasonBadIHL              IPv4 IHL below 5. Family, addresses, Proto valid.
//	Malformed  ReasonBadLength           IPv4 total length below the header length.
//	                                     Family, addresses, Proto valid.
//	Malformed  ReasonTruncatedExtHeader  IPv6 extension header chain cut short. Family and
//	                                     addresses valid; Proto is the next header where
//	                                     the walk stopped.
//	Malformed  ReasonTooManyExtHeaders   More than MaxExtHeaders IPv6 extension headers.
//	                                     As for ReasonTruncatedExtHeader.
//	Malformed  ReasonTruncatedL4         The transport header needed for matching is not
//	                                     present (TCP 20, UDP/UDP-Lite 8, SCTP 12, ICMP 8,
//	                                     ICMPv6 4 bytes). IP fields valid, no ports.
//	Malformed  ReasonBadTCPOffset        TCP data offset below 5. IP fields, ports and
//	                                     TCPFlags are filled (for logs); HasPorts is false.
//	Malformed  ReasonBadUDPLength        UDP length field 1..7. IP fields and ports filled.
//	Malformed  ReasonDecodeError         gopacket rejected a header that passed the bounds
//	                                     checks. Should be impossible (fuzzed); IP fields
//	                                     decoded so far are valid.
package classify
