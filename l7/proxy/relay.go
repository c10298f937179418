package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// relaySlice bounds how long the relay waits on one read deadline: it
// then notes whether the slice moved bytes (the pair's activity for the
// idle timeout) and sets the next. Short enough to be exact about idle
// time, long enough that its timer costs nothing next to the traffic.
const relaySlice = time.Second

// maxSplice is the most one splice call moves: a pipe's default capacity.
const maxSplice = 64 << 10

// copyBuf is each direction's buffer for messages moved by read and
// write: a database session's queries and answers fit in it many times.
const copyBuf = 16 << 10

// bulkAfter is how many reads in a row that fill copyBuf turn a direction
// to splice(2): a stream (a COPY, a dump) then moves socket → pipe →
// socket without passing through user space.
const bulkAfter = 4

// relay moves bytes from src to dst until src ends (nil), either side
// fails, or the pair has had no byte in either direction for idle (a
// timeout error). last is the pair's last activity (UnixNano), shared by
// both directions; count gets the bytes as they move.
//
// Between two unwrapped *net.TCPConn the bytes go through sockRelay's raw
// non-blocking calls; anything else takes idleCopy.
func relay(dst, src net.Conn, idle time.Duration, last, count *atomic.Int64) error {
	d, dok := dst.(*net.TCPConn)
	s, sok := src.(*net.TCPConn)
	if dok && sok {
		if err := sockRelay(d, s, idle, last, count); !errors.Is(err, errNoRaw) {
			return err
		}
	}
	if err := idleCopy(dst, src, src, idle, last, count); !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

var errNoRaw = errors.New("no raw access to the sockets")

// sockRelay is relay between two TCP sockets, built for many small
// messages (a database session's queries and answers) as much as for
// bulk:
//
//   - A message costs a read and a write, the write made from inside the
//     read's poller callback, and the read that finds the socket empty
//     (EAGAIN) before the direction waits on the poller. That last read
//     cannot be skipped after a read that returned less than the buffer:
//     a FIN (or RST) right behind the data is only seen by a further
//     read, and the poller does not signal it again.
//   - A direction whose reads keep filling the buffer (bulkAfter in a
//     row) turns to splice(2) through a pipe of its own, opened then; a
//     splice that moves less than copyBuf turns it back.
//   - The calls are raw system calls: the sockets and the pipe are
//     non-blocking, so a call never blocks, and skipping the runtime's
//     system call bookkeeping (handing off the P, waking sysmon) saves more
//     than the call itself costs for a message of a few hundred bytes.
//   - The read deadline is set once per relaySlice, not per message, and
//     idleness is judged per slice: a pair is closed no earlier than idle
//     after its last byte and at most two slices later.
func sockRelay(dst, src *net.TCPConn, idle time.Duration, last, count *atomic.Int64) error {
	srcRaw, err := src.SyscallConn()
	if err != nil {
		return errNoRaw
	}
	dstRaw, err := dst.SyscallConn()
	if err != nil {
		return errNoRaw
	}
	m := newMover(dstRaw, count)
	defer m.closePipe()
	return m.run(src, srcRaw, idle, min(relaySlice, max(idle/4, time.Millisecond)), last)
}

func newMover(dst syscall.RawConn, count *atomic.Int64) *mover {
	m := &mover{dst: dst, count: count, buf: make([]byte, copyBuf), pr: -1, pw: -1}
	m.tryWrite = m.tryOut
	return m
}

// run is sockRelay's loop over src, with a read deadline every slice.
func (m *mover) run(src *net.TCPConn, srcRaw syscall.RawConn, idle, slice time.Duration, last *atomic.Int64) error {
	// Method values made once: a closure per message would allocate.
	read, drain, write, pump := m.read, m.drain, m.write, m.pump
	dstRaw := m.dst

	if err := src.SetReadDeadline(time.Now().Add(slice)); err != nil {
		return err
	}
	for {
		var err error
		if m.bulk {
			err = srcRaw.Read(drain)
		} else {
			err = srcRaw.Read(read)
		}
		if err == nil {
			err = m.err()
		}
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return err
			}
			now := time.Now()
			if m.moved {
				last.Store(now.UnixNano())
				m.moved = false
			} else if now.Sub(time.Unix(0, last.Load())) >= idle {
				return err
			}
			if err := src.SetReadDeadline(now.Add(slice)); err != nil {
				return err
			}
			continue
		}
		if m.eof {
			return nil // src ended
		}
		// What the read could not hand on at once: a message left in
		// the buffer by a full send buffer, or a splice's bytes in the
		// pipe. These writes may wait for dst, outside src's read.
		for len(m.pending) > 0 {
			if err := dstRaw.Write(write); err != nil {
				return err
			}
			if err := m.err(); err != nil {
				return err
			}
		}
		for m.inPipe > 0 {
			if err := dstRaw.Write(pump); err != nil {
				return err
			}
			if err := m.err(); err != nil {
				return err
			}
		}
	}
}

// mover is one direction of sockRelay: its buffer, its pipe once it
// splices, and the outcome of the last callback, read by sockRelay after
// the poller has run one.
type mover struct {
	dst      syscall.RawConn
	tryWrite func(uintptr) bool // m.tryOut, made once: a method value per message would allocate
	count    *atomic.Int64

	buf     []byte
	pending []byte // read from src, not yet written to dst
	full    int    // reads in a row that filled buf

	bulk   bool // reading by splice
	pr, pw int  // the pipe's read and write ends; -1 until bulk
	inPipe int  // bytes in the pipe

	moved bool // bytes moved since sockRelay last looked
	eof   bool // src ended
	op    string
	errno syscall.Errno
	werr  error // dst refused the nested write (closed)
}

func (m *mover) err() error {
	if m.werr != nil {
		return m.werr
	}
	if m.errno != 0 {
		return os.NewSyscallError(m.op, m.errno)
	}
	return nil
}

func (m *mover) fail(op string, e syscall.Errno) bool {
	m.op, m.errno = op, e
	return true
}

// read runs as src's RawConn.Read callback: it reads a message and
// writes it to dst right away, until a read finds the socket empty
// (EAGAIN; false: the poller waits for more). It returns true to hand back to
// sockRelay: src ended or failed, dst could not take everything without
// waiting, or the direction turns to splice.
func (m *mover) read(fd uintptr) bool {
	for {
		n, e := rawIO(unix.SYS_READ, int(fd), m.buf)
		switch {
		case e == unix.EAGAIN:
			return false
		case e != 0:
			return m.fail("read", e)
		case n == 0:
			m.eof = true
			return true
		}
		m.moved = true
		m.pending = m.buf[:n]
		// Never a wait here: a goroutine waiting on dst while it holds
		// src would make src's Close wait for it.
		if err := m.dst.Write(m.tryWrite); err != nil {
			m.werr = err
			return true
		}
		if m.errno != 0 || len(m.pending) > 0 {
			return true
		}
		if n < len(m.buf) {
			m.full = 0
			continue
		}
		if m.full++; m.full >= bulkAfter && m.openPipe() {
			m.bulk = true
			return true
		}
	}
}

// tryOut writes what it can of pending to dst without waiting.
func (m *mover) tryOut(fd uintptr) bool {
	m.writeOut(fd)
	return true
}

// write is the waiting form of tryOut: false (dst's send buffer is
// full) makes the poller wait until fd is writable.
func (m *mover) write(fd uintptr) bool {
	return !m.writeOut(fd)
}

// writeOut writes pending to fd until it is all out, fd would block
// (true) or fails.
func (m *mover) writeOut(fd uintptr) (wouldBlock bool) {
	for len(m.pending) > 0 {
		n, e := rawIO(unix.SYS_WRITE, int(fd), m.pending)
		if e == unix.EAGAIN {
			return true
		}
		if e == 0 && n == 0 {
			e = unix.EPIPE // nothing written of a non-empty buffer: never retry forever
		}
		if e != 0 {
			m.pending = nil
			m.fail("write", e)
			return false
		}
		m.count.Add(int64(n))
		m.pending = m.pending[n:]
	}
	return false
}

func (m *mover) openPipe() bool {
	if m.pr >= 0 {
		return true
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		m.full = 0 // out of descriptors: keep copying
		return false
	}
	m.pr, m.pw = p[0], p[1]
	return true
}

func (m *mover) closePipe() {
	if m.pr >= 0 {
		_ = unix.Close(m.pr)
		_ = unix.Close(m.pw)
	}
}

// drain runs as src's RawConn.Read callback in bulk mode: it moves what
// the socket fd has into the empty pipe; false (EAGAIN) makes the poller
// wait until fd is readable. A short splice turns the direction back to
// read and write.
func (m *mover) drain(fd uintptr) bool {
	n, e := rawSplice(int(fd), m.pw, maxSplice)
	switch {
	case e == unix.EAGAIN:
		return false
	case e != 0:
		return m.fail("splice", e)
	case n == 0:
		m.eof = true
		return true
	}
	m.moved = true
	m.inPipe = n
	if n < copyBuf {
		m.bulk, m.full = false, 0
	}
	return true
}

// pump moves bytes from the pipe to the destination socket fd; false
// (EAGAIN: its send buffer is full) makes the poller wait until fd is
// writable.
func (m *mover) pump(fd uintptr) bool {
	n, e := rawSplice(m.pr, int(fd), m.inPipe)
	if e == unix.EAGAIN {
		return false
	}
	if e == 0 && n == 0 {
		e = unix.EPIPE // nothing moved from a pipe holding bytes: never retry forever
	}
	if e != 0 {
		m.inPipe = 0
		return m.fail("splice", e)
	}
	m.count.Add(int64(n))
	m.inPipe -= n
	return true
}

// rawIO is read(2) or write(2) (trap) of b on a non-blocking fd. EINTR is
// retried here; EAGAIN goes back to the caller, which waits on the poller.
func rawIO(trap uintptr, fd int, b []byte) (int, syscall.Errno) {
	for {
		r, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), 0
	}
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
