package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/xlbproject/xlb/l4"
	"github.com/xlbproject/xlb/test/bench/benchxdp"
)

// sample is one measurement of one forwarder.
type sample struct {
	kind kind
	load load
	// pps is frames of the kind's class the sink received per second over
	// the measuring interval.
	pps float64
	// delivered is the fraction of all frames sent during the whole
	// sample (warm-up included) that arrived as the kind's class.
	delivered float64
	// cpuNS is CPU nanoseconds per delivered frame over the whole sample:
	// generator threads plus ksoftirqd (see cpu.go).
	cpuNS float64
	// path is the balancer's counters that moved (xlb cases only).
	path string
}

type window struct {
	warmup, interval time.Duration
	chunk            uint32 // frames per live-frame run
}

// measure attaches k, runs the generator on l.threads CPUs with the flows
// shared out as l.split says, and counts what arrives at the sink over
// w.interval after w.warmup; then stops the generator and detaches k.
func (b *bench) measure(ctx context.Context, k kind, l load, w window) (s sample, err error) {
	s = sample{kind: k, load: l}
	parts := l.threads
	if l.split == shared {
		parts = 1
	}
	if err := b.generator.Split(parts); err != nil {
		return s, err
	}
	detach, err := b.attach(k)
	if err != nil {
		return s, err
	}
	defer func() { err = errors.Join(err, detach()) }()
	dp := b.balancer(k)
	var statsBefore l4.Stats
	if dp != nil {
		if statsBefore, err = dp.Stats(); err != nil {
			return s, err
		}
	}
	c0, err := b.counter.Read()
	if err != nil {
		return s, err
	}

	soft0, err := softirqRuntime(b.softirqd)
	if err != nil {
		return s, err
	}

	genCtx, stop := context.WithCancel(ctx)
	defer stop()
	type genResult struct {
		sent uint64
		cpu  time.Duration
		err  error
	}
	done := make(chan genResult, 1)
	started := make(chan struct{})
	go func() {
		n, cpu, err := b.generate(genCtx, l.threads, w.chunk, started)
		done <- genResult{n, cpu, err}
	}()
	wait := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case r := <-done: // the generator stopped early: it failed
			done <- r
			return fmt.Errorf("generator stopped: %w", r.err)
		}
	}
	var c1, c2 benchxdp.Counts
	var t1, t2 time.Time
	select {
	case <-started:
	case <-ctx.Done():
		err = ctx.Err()
	case r := <-done: // failed before every thread had started
		done <- r
		err = fmt.Errorf("generator stopped: %w", r.err)
	}
	if err == nil {
		err = wait(w.warmup)
	}
	if err == nil {
		c1, err = b.counter.Read()
		t1 = time.Now()
	}
	if err == nil {
		err = wait(w.interval)
	}
	if err == nil {
		c2, err = b.counter.Read()
		t2 = time.Now()
	}
	stop()
	r := <-done
	if err = errors.Join(err, r.err); err != nil {
		return s, err
	}
	// Frames still in the veth rings arrive within microseconds; a short
	// pause makes the delivered fraction whole.
	time.Sleep(20 * time.Millisecond)
	c3, err := b.counter.Read()
	if err != nil {
		return s, err
	}
	soft1, err := softirqRuntime(b.softirqd)
	if err != nil {
		return s, err
	}
	cl := k.class()
	s.pps = float64(c2.Sub(c1)[cl]) / t2.Sub(t1).Seconds()
	if n := c3.Sub(c0)[cl]; n > 0 {
		s.delivered = float64(n) / float64(r.sent)
		s.cpuNS = float64(r.cpu+soft1-soft0) / float64(n)
	}
	if dp != nil {
		after, err := dp.Stats()
		if err != nil {
			return s, err
		}
		s.path = xlbPath(statsBefore, after)
	}
	return s, nil
}

// sendOnce sends exactly frames frames from one thread on CPU 0 (for
// tests, which count what arrives: no timing).
func (b *bench) sendOnce(frames uint32) error { return b.sendOn(0, frames) }

// sendOn sends exactly frames frames from one thread on CPU cpu.
func (b *bench) sendOn(cpu int, frames uint32) error {
	return b.gen.Do(func() error {
		return pinned(cpu, func() error { return b.generator.Send(b.wire.A.Ifindex, frames) })
	})
}
