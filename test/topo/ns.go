package topo

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// inNS runs fn on a locked OS thread that has entered ns, and returns the
// thread to its original namespace. If the return fails the thread stays
// locked, so the runtime destroys it when the goroutine ends instead of
// reusing a thread in the wrong namespace.
func inNS(ns netns.NsHandle, fn func() error) error {
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
		if err := netns.Set(ns); err != nil {
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
func newNamedNS(name string) (netns.NsHandle, error) {
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
		return netns.None(), err
	}
	return h, nil
}
