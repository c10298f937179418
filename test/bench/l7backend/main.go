// Command l7backend is the minimal raw HTTP/1.1 app server the L7 benchmark
// (test/bench/l7.sh) puts behind xlb proxy, HAProxy and nginx. It parses just
// enough HTTP/1.1 to frame keep-alive and pipelined requests (request line,
// headers, Content-Length bodies) and answers each with one fixed small
// response, so that the proxy, not the app server, is what the benchmark
// measures. It is a benchmark tool, not an HTTP server to reuse.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "l7backend:", err)
		os.Exit(1)
	}
}

func run() error {
	addrs := flag.String("addr", "127.0.0.1:9001", "comma-separated listen addresses (one app server each)")
	bodySize := flag.Int("body", 64, "response body size in bytes")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var wg sync.WaitGroup
	var lns []net.Listener
	for _, a := range strings.Split(*addrs, ",") {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("listen on %q: %w", a, err)
		}
		lns = append(lns, ln)
		resp := response(*bodySize, ln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			accept(ln, resp)
		}()
	}
	<-ctx.Done()
	for _, ln := range lns {
		_ = ln.Close()
	}
	wg.Wait()
	return nil
}

// response builds the one response every request gets; the X-Server header
// lets a human check by curl which app server answered.
func response(bodySize int, name string) []byte {
	body := bytes.Repeat([]byte("x"), bodySize)
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Server: %s\r\nContent-Length: %d\r\n\r\n", name, bodySize)
	b.Write(body)
	return b.Bytes()
}

func accept(ln net.Listener, resp []byte) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go serve(c, resp)
	}
}

var (
	headerEnd = []byte("\r\n\r\n")
	clName    = []byte("\ncontent-length:")
)

// serve answers every complete request found in the read buffer with one
// write, which keeps pipelined load cheap.
func serve(c net.Conn, resp []byte) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	out := make([]byte, 0, 16*len(resp))
	n := 0
	for {
		m, err := c.Read(buf[n:])
		if m == 0 && err != nil {
			return
		}
		n += m
		start := 0
		for {
			reqLen, ok := frame(buf[start:n])
			if reqLen < 0 {
				return // malformed framing: drop the connection
			}
			if !ok {
				break
			}
			start += reqLen
			out = append(out, resp...)
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
		n = copy(buf, buf[start:n])
		if n == len(buf) {
			return // a request larger than the buffer: not a benchmark request
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return
		}
	}
}

// frame returns the length of the first complete request in b and whether
// there is one; -1 means the request cannot be framed.
func frame(b []byte) (int, bool) {
	end := bytes.Index(b, headerEnd)
	if end < 0 {
		return 0, false
	}
	head := b[:end+2]
	body := 0
	if i := indexFold(head, clName); i >= 0 {
		v := head[i+len(clName):]
		if j := bytes.IndexByte(v, '\r'); j >= 0 {
			v = v[:j]
		}
		cl, err := strconv.Atoi(string(bytes.TrimSpace(v)))
		if err != nil || cl < 0 {
			return -1, false
		}
		body = cl
	}
	total := end + len(headerEnd) + body
	if total > len(b) {
		return 0, false
	}
	return total, true
}

// indexFold is a case-insensitive bytes.Index for an ASCII lower-case needle.
func indexFold(s, lowerNeedle []byte) int {
	for i := 0; i+len(lowerNeedle) <= len(s); i++ {
		match := true
		for j := 0; j < len(lowerNeedle); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lowerNeedle[j] {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}
