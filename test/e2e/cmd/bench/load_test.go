package main

import (
	"bufio"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	// 1 ms … n ms, shuffled.
	upTo := func(n int) []time.Duration {
		var d []time.Duration
		for i := range n {
			d = append(d, ms(i+1))
		}
		r := rand.New(rand.NewPCG(1, 2))
		r.Shuffle(len(d), func(i, j int) { d[i], d[j] = d[j], d[i] })
		return d
	}
	// A quantile q is the latency at index ⌊q·n⌋ of the sorted n: of 100
	// requests, p50 is the 51st and p99 the slowest.
	for _, tc := range []struct {
		name string
		all  []time.Duration
		d    time.Duration
		want loadResult
	}{
		{"one", []time.Duration{ms(5)}, time.Second, loadResult{RPS: 1, P50: ms(5), P99: ms(5), Max: ms(5)}},
		{"four", []time.Duration{ms(4), ms(1), ms(3), ms(2)}, 2 * time.Second, loadResult{RPS: 2, P50: ms(3), P99: ms(4), Max: ms(4)}},
		{"100", upTo(100), 10 * time.Second, loadResult{RPS: 10, P50: ms(51), P99: ms(100), Max: ms(100)}},
		{"200", upTo(200), 400 * time.Millisecond, loadResult{RPS: 500, P50: ms(101), P99: ms(199), Max: ms(200)}},
		{"1000", upTo(1000), 4 * time.Second, loadResult{RPS: 250, P50: ms(501), P99: ms(991), Max: ms(1000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, summarize(tc.all, tc.d)); diff != "" {
				t.Errorf("summarize (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadResponse(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello"
	for _, tc := range []struct {
		name    string
		in      string
		answers int // read without an error
		wantErr string
	}{
		{"two on one connection, then the end", ok + ok, 2, io.EOF.Error()},
		{"header names in any case", "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", 1, io.EOF.Error()},
		{"no body", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" + ok, 2, io.EOF.Error()},
		{"not a 200", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", 0, `answer "HTTP/1.1 503 Service Unavailable", want HTTP/1.1 200`},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0, `answer "HTTP/1.0 200 OK", want HTTP/1.1 200`},
		{"no length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, "answer without Content-Length"},
		{"a bad length", "HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\nhello", 0, `bad Content-Length "five"`},
		{"a short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", 0, io.EOF.Error()},
		{"cut in the headers", "HTTP/1.1 200 OK\r\nContent-Len", 0, io.EOF.Error()},
		{"nothing", "", 0, io.EOF.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			n := 0
			var err error
			for ; n < 10; n++ {
				if err = readResponse(br); err != nil {
					break
				}
			}
			if n != tc.answers {
				t.Errorf("answers read: got %d, want %d", n, tc.answers)
			}
			if got := errString(err); got != tc.wantErr {
				t.Errorf("error: got %q, want %q", got, tc.wantErr)
			}
			if tc.wantErr == io.EOF.Error() && !errors.Is(err, io.EOF) {
				t.Errorf("error: got %v, want io.EOF", err)
			}
		})
	}
}

func TestPinningString(t *testing.T) {
	for _, tc := range []struct {
		p    pinning
		want string
	}{
		{pinning{}, "not pinned: the load generator shares the CPUs with the elector"},
		{pinning{elector: []string{"taskset", "-c", "1"}, gen: []string{"taskset", "-c", "0"}},
			"the elector is pinned to CPU 1 (so GOMAXPROCS=1) and the load generator, a process of its own, to CPU 0"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%#v: got %q, want %q", tc.p, got, tc.want)
		}
	}
}
