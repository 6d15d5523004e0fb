// Package faultproxy is a TCP proxy that injects network faults between a
// client and a server, for the fault-injection suite: it passes bytes on,
// stalls them (a partition), resets connections, or delays what the server
// sends. It never looks into the bytes, so TLS passes through untouched and
// the client sees the server's own certificate.
//
//	p, err := faultproxy.New("127.0.0.1:6443")
//	...
//	defer p.Close()
//	// point the client at p.Addr()
//	p.Blackhole() // existing and new connections stall
//	p.Pass()      // what was held back flows again
//
// A mode applies from the moment it is set, to new connections and to the
// ones already open (HTTP/2 clients such as client-go keep one connection
// for everything): every chunk read from either side consults the current
// mode before it is written to the other side. All methods are safe for
// concurrent use.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what the proxy does with the bytes it reads.
type Mode int

const (
	// Pass forwards every chunk at once, in both directions.
	Pass Mode = iota
	// Blackhole accepts connections and keeps them open but forwards
	// nothing in either direction; what is read is held back, in order, and
	// forwarded when the mode changes to one that lets it through, as a
	// network partition that heals does with TCP's retransmissions.
	Blackhole
	// Reset closes every open connection at once with a TCP reset, and
	// every new one as soon as it is accepted.
	Reset
	// Delay holds each chunk from the server to the client until the delay
	// has passed since it was read; chunks keep their spacing, so the delay
	// adds latency without adding up. The client-to-server direction passes.
	Delay
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Blackhole:
		return "blackhole"
	case Reset:
		return "reset"
	case Delay:
		return "delay"
	default:
		return fmt.Sprintf("Mode(%d)", int(m))
	}
}

// chunkSize is the largest chunk read at once; queueLen the number of chunks
// each direction holds back before it stops reading (TCP's flow control then
// pushes back on the sender).
const (
	chunkSize = 32 << 10
	queueLen  = 64
)

// state is one setting of the proxy. It is immutable; changed is closed when
// a newer state replaces it, which wakes every copy loop waiting on it.
type state struct {
	mode    Mode
	delay   time.Duration
	changed chan struct{}
}

// Proxy forwards TCP connections from its listening address to a target
// address, with the faults its mode asks for. Build it with New and stop it
// with Close.
type Proxy struct {
	ln     net.Listener
	target string
	ctx    context.Context // cancelled by Close: aborts dials in progress
	cancel context.CancelFunc
	state  atomic.Pointer[state]
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	mu     sync.Mutex // guards conns and closed, and orders them with Reset
	conns  map[*pipe]struct{}
	closed bool
}

// New starts a proxy on a free port of 127.0.0.1 that forwards to target
// (host:port), in mode Pass. The caller must call Close.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, target: target, ctx: ctx, cancel: cancel, conns: map[*pipe]struct{}{}}
	p.state.Store(&state{mode: Pass, changed: make(chan struct{})})
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address (host:port) the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Pass forwards everything, including what Blackhole or Delay held back.
func (p *Proxy) Pass() { p.set(Pass, 0) }

// Blackhole stalls every connection, open or new, in both directions.
func (p *Proxy) Blackhole() { p.set(Blackhole, 0) }

// Reset resets every open connection and every new one.
func (p *Proxy) Reset() { p.set(Reset, 0) }

// Delay delays every chunk from the server to the client by d.
func (p *Proxy) Delay(d time.Duration) { p.set(Delay, d) }

// Mode returns the current mode and, for Delay, the delay.
func (p *Proxy) Mode() (Mode, time.Duration) {
	s := p.state.Load()
	return s.mode, s.delay
}

func (p *Proxy) set(m Mode, d time.Duration) {
	p.mu.Lock()
	old := p.state.Swap(&state{mode: m, delay: d, changed: make(chan struct{})})
	close(old.changed)
	var doomed []*pipe
	if m == Reset {
		for c := range p.conns {
			doomed = append(doomed, c)
		}
	}
	p.mu.Unlock()
	for _, c := range doomed {
		c.kill(true)
	}
}

// Close stops listening, closes every connection and waits for every
// goroutine of the proxy to return. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var open []*pipe
	for c := range p.conns {
		open = append(open, c)
	}
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	for _, c := range open {
		c.kill(false)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		p.wg.Add(1)
		go p.serve(conn)
	}
}

// pipe is one proxied connection: the client's side and the server's.
type pipe struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{} // closed by kill
}

// kill closes both sides; with rst, as a TCP reset rather than an orderly
// close.
func (c *pipe) kill(rst bool) {
	c.once.Do(func() {
		if rst {
			abort(c.client)
			abort(c.server)
		}
		_ = c.client.Close()
		_ = c.server.Close()
		close(c.done)
	})
}

// abort makes the next Close of conn send a reset.
func abort(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}

// track registers c, unless the proxy is closed or resetting, and reports
// whether it did. Under p.mu, so that a Reset or Close either sees c or is
// seen by track.
func (p *Proxy) track(c *pipe) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.state.Load().mode == Reset {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c *pipe) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	if p.state.Load().mode == Reset {
		abort(client)
		_ = client.Close()
		return
	}
	// The server is dialled whatever the mode: a blackholed client sees its
	// connection accepted and then nothing, as behind a partition.
	d := net.Dialer{Timeout: 10 * time.Second}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	c := &pipe{client: client, server: server, done: make(chan struct{})}
	if !p.track(c) {
		c.kill(p.state.Load().mode == Reset)
		return
	}
	defer p.untrack(c)
	var wg sync.WaitGroup
	wg.Go(func() { p.forward(c, client, server, false) })
	wg.Go(func() { p.forward(c, server, client, true) })
	wg.Wait()
	c.kill(false)
}

type chunk struct {
	data []byte
	read time.Time
}

// forward copies src to dst chunk by chunk, each when the mode lets it
// through. A reader goroutine keeps reading while the writer holds a chunk
// back, so that Delay keeps the spacing of chunks; the queue between them is
// bounded. When src ends, dst's write side is closed once everything read
// has been written; when either side fails, the whole pipe is closed.
func (p *Proxy) forward(c *pipe, src, dst net.Conn, toClient bool) {
	queue := make(chan chunk, queueLen)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(queue)
		for {
			buf := make([]byte, chunkSize)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case queue <- chunk{data: buf[:n], read: time.Now()}:
				case <-c.done:
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					c.kill(false)
				}
				return
			}
		}
	})
	defer wg.Wait()
	for ch := range queue {
		if !p.hold(c, ch.read, toClient) {
			return
		}
		if _, err := dst.Write(ch.data); err != nil {
			c.kill(false)
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// hold waits until the current mode lets a chunk read at the given time
// through, and reports whether it may be written; false means the pipe is
// being closed.
func (p *Proxy) hold(c *pipe, read time.Time, toClient bool) bool {
	for {
		s := p.state.Load()
		switch s.mode {
		case Pass:
			return true
		case Reset:
			c.kill(true)
			return false
		case Delay:
			left := time.Until(read.Add(s.delay))
			if !toClient || left <= 0 {
				return true
			}
			t := time.NewTimer(left)
			select {
			case <-t.C:
				return true
			case <-s.changed:
				t.Stop()
			case <-c.done:
				t.Stop()
				return false
			}
		default: // Blackhole: wait for the mode to change.
			select {
			case <-s.changed:
			case <-c.done:
				return false
			}
		}
	}
}
