//go:build linux

package netbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// udpFlows is a raw-socket UDP sender in the client namespace: every
// packet is a new flow (source address rotates over the client's extra
// addresses, source port over 1024-65535), so 516,096 distinct flows exist
// before one repeats. Bounded by count and time.
type udpFlows struct {
	fd   int
	next uint32 // flow counter, continues across runs
	src  srcMode
}

// srcMode is how a generator picks each packet's source.
type srcMode uint8

const (
	// srcRotate: the client's extra addresses in turn, a new source port
	// every nSources packets (the allowed generator).
	srcRotate srcMode = iota
	// srcOnePort: one source address (the client's own), a new source
	// port per packet (flood a).
	srcOnePort
	// srcSpoof: a random source address in 198.19.0.0/16 and a random
	// source port per packet (flood b: spoofed sources).
	srcSpoof
)

func (l *Lab) newUDPFlows() (*udpFlows, error) {
	var fd int
	err := l.Do(nsClient, func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		return
	})
	if err != nil {
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	return &udpFlows{fd: fd}, nil
}

func (u *udpFlows) Close() { unix.Close(u.fd) }

// run sends up to max packets to dport for at most d, at most rate packets
// per second (0: as fast as the sender goes). It returns packets sent and
// the time taken.
func (u *udpFlows) run(dport uint16, max int, d time.Duration, rate float64, stop *atomic.Bool) (int, time.Duration) {
	var pkt [20 + 8 + 18]byte
	ip := pkt[:20]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(pkt)))
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	copy(ip[16:20], net.ParseIP(ServerIP).To4())
	udp := pkt[20:]
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], "netbench new flow")
	to := &unix.SockaddrInet4{Addr: [4]byte(net.ParseIP(ServerIP).To4())}
	start := time.Now()
	end := start.Add(d)
	sent := 0
	for sent < max {
		if sent&63 == 0 {
			now := time.Now()
			if now.After(end) || (stop != nil && stop.Load()) {
				break
			}
			if rate > 0 {
				if ahead := time.Duration(float64(sent)/rate*1e9) - now.Sub(start); ahead > 0 {
					time.Sleep(ahead)
				}
			}
		}
		n := u.next
		u.next++
		switch u.src {
		case srcOnePort:
			ip[12], ip[13], ip[14], ip[15] = 198, 18, 1, 2 // ClientIP
			binary.BigEndian.PutUint16(udp[0:], uint16(1024+n%64512))
		case srcSpoof:
			h := n * 2654435761 // Knuth's multiplicative hash: a permutation
			ip[12], ip[13], ip[14], ip[15] = 198, 19, byte(h>>24), byte(h>>16)
			binary.BigEndian.PutUint16(udp[0:], uint16(1024+h%64512))
		default:
			src := n % nSources
			sport := 1024 + (n/nSources)%64512
			ip[12], ip[13], ip[14], ip[15] = 198, 18, 1, byte(firstExtra+src)
			binary.BigEndian.PutUint16(udp[0:], uint16(sport))
		}
		// IP checksum and id are filled in by the kernel (IP_HDRINCL);
		// a zero UDP checksum means none.
		if err := unix.Sendto(u.fd, pkt[:], 0, to); err != nil {
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
				time.Sleep(50 * time.Microsecond)
				continue
			}
			break
		}
		sent++
	}
	return sent, time.Since(start)
}

// tcpServer accepts connections on port and closes them at once.
func (l *Lab) tcpServer(port int) {
	ln := l.Listen(nsServer, "tcp", fmt.Sprintf(":%d", port))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// tcpConnects opens and resets connections to dport from conc workers in
// the client namespace, up to max connections or for d. It returns the
// successful connections, the time taken, and the connect times.
func (l *Lab) tcpConnects(dport int, conc, max int, d time.Duration) (int, time.Duration, []time.Duration) {
	var ok atomic.Int64
	var issued atomic.Int64
	var mu sync.Mutex
	var times []time.Duration
	start := time.Now()
	end := start.Add(d)
	addr := net.JoinHostPort(ServerIP, fmt.Sprint(dport))
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			l.Do(nsClient, func() error {
				dl := net.Dialer{Timeout: 2 * time.Second}
				for time.Now().Before(end) && issued.Add(1) <= int64(max) {
					t0 := time.Now()
					c, err := dl.Dial("tcp", addr)
					if err != nil {
						continue
					}
					local = append(local, time.Since(t0))
					c.(*net.TCPConn).SetLinger(0) // RST: no TIME_WAIT on the client
					c.Close()
					ok.Add(1)
				}
				return nil
			})
			mu.Lock()
			times = append(times, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return int(ok.Load()), time.Since(start), times
}

// udpLatency sends n request/response pairs to the UDP echo on dport, each
// from a new socket (a new flow), one at a time, for at most d. It returns
// the round-trip times of answered requests and the number lost.
func (l *Lab) udpLatency(dport int, n int, d time.Duration) (rtts []time.Duration, lost int) {
	addr := &net.UDPAddr{IP: net.ParseIP(ServerIP), Port: dport}
	end := time.Now().Add(d)
	buf := make([]byte, 64)
	msg := []byte("netbench latency probe")
	l.Do(nsClient, func() error {
		for i := 0; i < n && time.Now().Before(end); i++ {
			c, err := net.DialUDP("udp", nil, addr)
			if err != nil {
				lost++
				continue
			}
			c.SetDeadline(time.Now().Add(300 * time.Millisecond))
			t0 := time.Now()
			if _, err := c.Write(msg); err == nil {
				if _, err := c.Read(buf); err == nil {
					rtts = append(rtts, time.Since(t0))
					c.Close()
					continue
				}
			}
			lost++
			c.Close()
		}
		return nil
	})
	return rtts, lost
}

// stallProbe keeps an established TCP connection to the echo server on
// dport exchanging a small message every 10 ms until stop is closed.
type stallProbe struct {
	mu     sync.Mutex
	times  []time.Time // completed round trips
	err    error
	done   chan struct{}
	stopCh chan struct{}
}

func (l *Lab) startStallProbe(dport int) (*stallProbe, error) {
	c, err := l.Dial(nsClient, "tcp", fmt.Sprintf("%s:%d", ServerIP, dport), 2*time.Second)
	if err != nil {
		return nil, err
	}
	greet := make([]byte, 6)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(c, greet); err != nil {
		c.Close()
		return nil, err
	}
	p := &stallProbe{done: make(chan struct{}), stopCh: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer c.Close()
		msg := []byte("10ms-probe")
		buf := make([]byte, len(msg))
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stopCh:
				return
			case <-tick.C:
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(msg); err != nil {
				p.fail(err)
				return
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				p.fail(err)
				return
			}
			p.mu.Lock()
			p.times = append(p.times, time.Now())
			p.mu.Unlock()
		}
	}()
	return p, nil
}

func (p *stallProbe) fail(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

// stop ends the probe and returns the longest gap between consecutive
// round trips completed within [from, to], and the error that ended it
// early (a lost flow).
func (p *stallProbe) stop(from, to time.Time) (time.Duration, error) {
	close(p.stopCh)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	var gap time.Duration
	prev := from
	for _, t := range p.times {
		if t.Before(from) {
			continue
		}
		if t.After(to) {
			gap = max(gap, t.Sub(prev))
			break
		}
		gap = max(gap, t.Sub(prev))
		prev = t
	}
	return gap, p.err
}

// percentile returns the p-th percentile (0-100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}
