package topo

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// errNSClosed is what using a namespace after its topology closed gives.
var errNSClosed = errors.New("network namespace already closed")

// nsHandle is a namespace descriptor that Close may release while other
// goroutines still hold the host: net/http finishes a dial it started for a
// request that was cancelled meanwhile, and that dial can run after the
// test's cleanup closed the topology. Users hold the read lock while they
// need the descriptor, so it is never closed, and its number reused for
// another file, under them; afterwards they get errNSClosed.
type nsHandle struct {
	mu sync.RWMutex
	fd netns.NsHandle
}

// use calls fn with the open descriptor.
func (n *nsHandle) use(fn func(netns.NsHandle) error) error {
	if n == nil {
		return errNSClosed
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if !n.fd.IsOpen() {
		return errNSClosed
	}
	return fn(n.fd)
}

// netlink opens a netlink handle in the namespace; it stays usable after
// close.
func (n *nsHandle) netlink() (*netlink.Handle, error) {
	var nl *netlink.Handle
	err := n.use(func(fd netns.NsHandle) (err error) {
		nl, err = netlink.NewHandleAt(fd)
		return err
	})
	return nl, err
}

// close releases the descriptor once no one uses it; later uses fail.
func (n *nsHandle) close() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fd.Close()
}

// inNS runs fn on a locked OS thread that has entered ns, and returns the
// thread to its original namespace. If the return fails the thread stays
// locked, so the runtime destroys it when the goroutine ends instead of
// reusing a thread in the wrong namespace.
func inNS(ns *nsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := ns.use(netns.Set); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		var fnErr error
		func() {
			defer func() {
				if r := recover(); r != nil {
					fnErr = fmt.Errorf("panic in netns: %v", r)
				}
			}()
			fnErr = fn()
		}()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("return to original netns: %w", err))
			return // thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// newNamedNS creates the network namespace /run/netns/<name> without moving
// the caller into it.
func newNamedNS(name string) (*nsHandle, error) {
	var h netns.NsHandle
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		h, err = netns.NewNamed(name)
		// NewNamed has unshared even when it fails later: always go back.
		if rerr := netns.Set(orig); rerr != nil {
			if err == nil {
				h.Close()
			}
			errc <- fmt.Errorf("return to original netns after creating %q: %w", name, rerr)
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			errc <- fmt.Errorf("create netns %q: %w", name, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return &nsHandle{fd: h}, nil
}
