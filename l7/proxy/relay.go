package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// relaySlice bounds how long the relay waits on one read deadline: it
// then notes whether the slice moved bytes (the pair's activity for the
// idle timeout) and sets the next. Short enough to be exact about idle
// time, long enough that its timer costs nothing next to the traffic.
const relaySlice = time.Second

// maxSplice is the most one splice call moves: a pipe's default capacity.
const maxSplice = 64 << 10

// relay moves bytes from src to dst until src ends (nil), either side
// fails, or the pair has had no byte in either direction for idle (a
// timeout error). last is the pair's last activity (UnixNano), shared by
// both directions; count gets the bytes as they move.
//
// Between two unwrapped *net.TCPConn the bytes go socket → pipe → socket
// with splice(2), never through user space (spliceRelay); anything else,
// or a process out of file descriptors for the pipe, takes idleCopy.
func relay(dst, src net.Conn, idle time.Duration, last, count *atomic.Int64) error {
	d, dok := unwrapYield(dst).(*net.TCPConn)
	s, sok := unwrapYield(src).(*net.TCPConn)
	if dok && sok {
		if err := spliceRelay(d, s, idle, last, count); !errors.Is(err, errNoPipe) {
			return err
		}
	}
	if err := idleCopy(dst, src, src, idle, last, count); !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

var errNoPipe = errors.New("no pipe for splice")

// spliceRelay is relay's zero-copy path, built for many small messages
// (a database session's queries and answers) as much as for bulk:
//
//   - Each direction owns its pipe for the connection's life, so a message
//     costs two splice calls and the failed third that parks the reader.
//   - The splice calls are raw system calls: both sockets and the pipe are
//     non-blocking, so a call never blocks, and skipping the runtime's
//     system call bookkeeping (handing off the P, waking sysmon) saves more
//     than the call itself costs for a message of a few hundred bytes.
//   - The read deadline is set once per relaySlice, not per message, and
//     idleness is judged per slice: a pair is closed no earlier than idle
//     after its last byte and at most two slices later.
func spliceRelay(dst, src *net.TCPConn, idle time.Duration, last, count *atomic.Int64) error {
	srcRaw, err := src.SyscallConn()
	if err != nil {
		return errNoPipe
	}
	dstRaw, err := dst.SyscallConn()
	if err != nil {
		return errNoPipe
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return errNoPipe
	}
	sp := &splicer{pr: p[0], pw: p[1]}
	defer unix.Close(sp.pr)
	defer unix.Close(sp.pw)
	// Method values made once: a closure per message would allocate.
	drain, pump := sp.drain, sp.pump

	slice := min(relaySlice, max(idle/4, time.Millisecond))
	if err := src.SetReadDeadline(time.Now().Add(slice)); err != nil {
		return err
	}
	moved := false // in this slice
	for {
		err := srcRaw.Read(drain)
		if err == nil && sp.errno != 0 {
			err = os.NewSyscallError("splice", sp.errno)
		}
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return err
			}
			now := time.Now()
			if moved {
				last.Store(now.UnixNano())
				moved = false
			} else if now.Sub(time.Unix(0, last.Load())) >= idle {
				return err
			}
			if err := src.SetReadDeadline(now.Add(slice)); err != nil {
				return err
			}
			continue
		}
		if sp.inPipe == 0 {
			return nil // src ended
		}
		n := sp.inPipe
		for sp.inPipe > 0 {
			if err := dstRaw.Write(pump); err != nil {
				return err
			}
			if sp.errno != 0 {
				return os.NewSyscallError("splice", sp.errno)
			}
		}
		count.Add(int64(n))
		moved = true
	}
}

// splicer is one direction's pipe and the result of its last splice call,
// read by spliceRelay after the poller has run drain or pump.
type splicer struct {
	pr, pw int // the pipe's read and write ends
	inPipe int // bytes in the pipe
	errno  syscall.Errno
}

// drain moves what the source socket fd has into the empty pipe; false
// (EAGAIN) makes the poller wait until fd is readable.
func (s *splicer) drain(fd uintptr) bool {
	s.inPipe, s.errno = rawSplice(int(fd), s.pw, maxSplice)
	return s.errno != unix.EAGAIN
}

// pump moves bytes from the pipe to the destination socket fd; false
// (EAGAIN: its send buffer is full) makes the poller wait until fd is
// writable.
func (s *splicer) pump(fd uintptr) bool {
	var m int
	m, s.errno = rawSplice(s.pr, int(fd), s.inPipe)
	if s.errno == 0 && m == 0 {
		s.errno = unix.EPIPE // nothing moved from a pipe holding bytes: never retry forever
	}
	s.inPipe -= m
	return s.errno != unix.EAGAIN
}

// rawSplice moves up to n bytes from in to out. EINTR is retried here;
// EAGAIN goes back to the caller, which waits on the poller.
func rawSplice(in, out, n int) (int, syscall.Errno) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n),
			unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), 0
	}
}
