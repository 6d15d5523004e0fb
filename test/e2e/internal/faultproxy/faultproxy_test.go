package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes every connection, counts the bytes it receives, and
// hands the test the server side of each connection so that it can also
// send unasked.
type echoServer struct {
	ln       net.Listener
	conns    chan net.Conn
	received atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	open     []net.Conn
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln, conns: make(chan net.Conn, 16)}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.open = append(s.open, conn)
			s.mu.Unlock()
			select {
			case s.conns <- conn:
			default:
			}
			s.wg.Go(func() {
				buf := make([]byte, 4096)
				for {
					n, err := conn.Read(buf)
					s.received.Add(int64(n))
					if n > 0 {
						if _, err := conn.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.open {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func newProxy(t *testing.T, s *echoServer) *Proxy {
	t.Helper()
	p, err := New(s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readFull reads len(want) bytes within limit and compares them with want.
func readFull(t *testing.T, c net.Conn, want string, limit time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(limit))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading %q: %v", want, err)
	}
	if string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// readNothing checks that nothing arrives on c within d.
func readNothing(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1)
	n, err := c.Read(buf)
	if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %q, %v; want nothing until the deadline", buf[:n], err)
	}
}

// readFails checks that reading c fails, with EOF or a reset, within limit.
func readFails(t *testing.T, c net.Conn, limit time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(limit))
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the connection is still open after %s", limit)
		}
		if err != nil {
			return
		}
		if n > 0 {
			t.Fatalf("read %q from a connection that should be closed", buf[:n])
		}
	}
}

const quiet = 300 * time.Millisecond // how long "nothing arrives" is watched

func TestPass(t *testing.T) {
	p := newProxy(t, newEchoServer(t))
	c := dial(t, p)
	write(t, c, "hello")
	readFull(t, c, "hello", 5*time.Second)
	if m, _ := p.Mode(); m != Pass {
		t.Errorf("Mode() = %v, want pass", m)
	}
}

func TestBlackholeStallsOpenAndNewConnectionsUntilPass(t *testing.T) {
	s := newEchoServer(t)
	p := newProxy(t, s)
	open := dial(t, p)
	write(t, open, "warm")
	readFull(t, open, "warm", 5*time.Second)
	before := s.received.Load()

	p.Blackhole()
	write(t, open, "held")
	fresh := dial(t, p) // accepted, as behind a partition
	write(t, fresh, "new")
	readNothing(t, open, quiet)
	readNothing(t, fresh, quiet)
	if got := s.received.Load(); got != before {
		t.Fatalf("the server received %d bytes through a blackhole", got-before)
	}

	p.Pass()
	readFull(t, open, "held", 5*time.Second)
	readFull(t, fresh, "new", 5*time.Second)
}

func TestBlackholeStallsServerToClient(t *testing.T) {
	s := newEchoServer(t)
	p := newProxy(t, s)
	c := dial(t, p)
	write(t, c, "hi")
	readFull(t, c, "hi", 5*time.Second)
	srv := <-s.conns

	p.Blackhole()
	if _, err := srv.Write([]byte("push")); err != nil {
		t.Fatal(err)
	}
	readNothing(t, c, quiet)
	p.Pass()
	readFull(t, c, "push", 5*time.Second)
}

func TestResetClosesOpenAndNewConnections(t *testing.T) {
	p := newProxy(t, newEchoServer(t))
	open := dial(t, p)
	write(t, open, "hi")
	readFull(t, open, "hi", 5*time.Second)

	p.Reset()
	readFails(t, open, 5*time.Second)
	// A new connection is reset too: the dial itself may already be refused
	// (the proxy resets it as it is accepted), or the first read fails.
	if c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second); err == nil {
		t.Cleanup(func() { _ = c.Close() })
		readFails(t, c, 5*time.Second)
	} else if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial through a resetting proxy: %v, want a reset, or a connection whose read fails", err)
	}

	p.Pass()
	c := dial(t, p)
	write(t, c, "back")
	readFull(t, c, "back", 5*time.Second)
}

func TestResetClosesBlackholedConnections(t *testing.T) {
	p := newProxy(t, newEchoServer(t))
	c := dial(t, p)
	p.Blackhole()
	write(t, c, "held")
	readNothing(t, c, quiet)
	p.Reset()
	readFails(t, c, 5*time.Second)
}

func TestDelayDelaysServerToClientOnly(t *testing.T) {
	s := newEchoServer(t)
	p := newProxy(t, s)
	c := dial(t, p)
	write(t, c, "warm")
	readFull(t, c, "warm", 5*time.Second)

	const d = 2 * time.Second
	p.Delay(d)
	if m, got := p.Mode(); m != Delay || got != d {
		t.Errorf("Mode() = %v, %s; want delay, %s", m, got, d)
	}
	begin := time.Now()
	before := s.received.Load()
	write(t, c, "ping")
	// The request reaches the server long before the delay is over.
	for s.received.Load() == before {
		if time.Since(begin) > d/2 {
			t.Fatalf("the server had not received the request after %s: the client-to-server direction was delayed", d/2)
		}
		time.Sleep(5 * time.Millisecond)
	}
	readFull(t, c, "ping", 10*time.Second)
	if took := time.Since(begin); took < d {
		t.Errorf("the reply arrived after %s, want at least the delay %s", took, d)
	}
}

// Chunks keep their spacing: five replies sent 100ms apart through a 500ms
// delay arrive in about 900ms, not in 2.5s as a per-chunk sleep would have it.
func TestDelayDoesNotAddUp(t *testing.T) {
	p := newProxy(t, newEchoServer(t))
	c := dial(t, p)
	const d = 500 * time.Millisecond
	p.Delay(d)
	begin := time.Now()
	done := make(chan error, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 5)
		_, err := io.ReadFull(c, buf)
		if err == nil && string(buf) != "abcde" {
			err = errors.New("read " + string(buf))
		}
		done <- err
	}()
	for _, b := range "abcde" {
		write(t, c, string(b))
		time.Sleep(100 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	if took < d {
		t.Errorf("five replies arrived after %s, want at least the delay %s", took, d)
	}
	if limit := 5 * d; took >= limit {
		t.Errorf("five replies arrived after %s: the delays added up (%s)", took, limit)
	}
}

func TestPassReleasesDelayedChunksAtOnce(t *testing.T) {
	p := newProxy(t, newEchoServer(t))
	c := dial(t, p)
	p.Delay(time.Hour)
	write(t, c, "late")
	readNothing(t, c, quiet)
	p.Pass()
	readFull(t, c, "late", 5*time.Second)
}

// Modes changing under traffic never lose, duplicate or reorder bytes.
func TestModeChangesKeepStreamsIntact(t *testing.T) {
	p := newProxy(t, newEchoServer(t))
	stop := make(chan struct{})
	var flipper sync.WaitGroup
	flipper.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				p.Pass()
				return
			case <-time.After(3 * time.Millisecond):
			}
			switch i % 3 {
			case 0:
				p.Blackhole()
			case 1:
				p.Delay(time.Duration(rand.IntN(5)) * time.Millisecond)
			default:
				p.Pass()
			}
		}
	})
	var clients sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		c := dial(t, p)
		clients.Go(func() {
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			want := make([]byte, 0, 64<<10)
			got := make([]byte, 0, 64<<10)
			buf := make([]byte, 4096)
			for range 200 {
				msg := make([]byte, 1+rand.IntN(300))
				for i := range msg {
					msg[i] = byte(rand.IntN(256))
				}
				want = append(want, msg...)
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				for len(got) < len(want) {
					n, err := c.Read(buf)
					got = append(got, buf[:n]...)
					if err != nil {
						errs <- err
						return
					}
				}
			}
			if !bytes.Equal(got, want) {
				errs <- errors.New("the echoed stream differs from what was sent")
			}
		})
	}
	clients.Wait()
	close(stop)
	flipper.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCloseEndsEveryConnection(t *testing.T) {
	s := newEchoServer(t)
	p, err := New(s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, b := dial(t, p), dial(t, p)
	write(t, a, "x")
	readFull(t, a, "x", 5*time.Second)
	p.Blackhole()
	write(t, b, "held")
	readNothing(t, b, quiet)
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	readFails(t, a, 5*time.Second)
	readFails(t, b, 5*time.Second)
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("the proxy still accepts connections after Close")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
