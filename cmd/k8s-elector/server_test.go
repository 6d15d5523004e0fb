package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// TestServerLimitsHostileClients serves a trivial handler with the binary's
// server settings: a huge header is refused with 431 and the handler never
// runs, and a client that stops in the middle of its headers is
// disconnected.
func TestServerLimitsHostileClients(t *testing.T) {
	var called atomic.Bool
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called.Store(true) }), logr.Discard())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Fatalf("server without limits: %+v", srv)
	}
	srv.ReadHeaderTimeout = 500 * time.Millisecond // the behaviour, not the value, is under test
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
	req.Header.Set("X-Huge", strings.Repeat("a", 2*srv.MaxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || called.Load() {
		t.Errorf("huge header: status %d, handler called %v; want 431 and not called", resp.StatusCode, called.Load())
	}

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a hang fails, it does not block the suite
	if _, err := bufio.NewReader(conn).ReadString('\n'); err == nil {
		// The server may answer 408 before closing; either way it must close.
		if _, err := io.ReadAll(conn); err != nil {
			t.Errorf("a slow client was not disconnected: %v", err)
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("a client that stopped in its headers was not disconnected")
	}
	if called.Load() {
		t.Error("the handler ran for an incomplete request")
	}
}

// TestShutdownEndsWatchStreams stops the binary while a client follows
// GET /watch: the stream must not hold the HTTP server's shutdown until its
// timeout.
func TestShutdownEndsWatchStreams(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, _, errOut := runCLI(ctx, "-kubeconfig="+kubeconfig(t, "https://127.0.0.1:1"),
			"-election=example", "-id=pod-a", "-ttl=3s", "-http="+addr)
		done <- result{code, errOut}
	}()
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; {
		if resp, err = http.Get("http://" + addr + "/watch"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /watch: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatalf("reading the first event: %v", err)
	}
	cancel()
	r := <-done
	if r.code != exitOK {
		t.Errorf("exit code %d, want 0:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "did not shut down cleanly") {
		t.Errorf("a /watch stream held the shutdown until its timeout:\n%s", r.stderr)
	}
}
