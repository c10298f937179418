package shopload

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

type runner struct {
	cfg  Config
	base string
	rec  *recorder
	log  *slog.Logger
}

// Run plays cfg until its user count or duration is reached and every user
// has finished (or been cut after Grace), and returns what the users saw.
// Cancelling ctx ends the run early; the summary covers what happened.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	r := &runner{cfg: cfg, base: strings.TrimRight(cfg.Target, "/"), rec: newRecorder(), log: slog.Default()}
	rng := rand.New(rand.NewPCG(seed, 0x5ec0))

	start := time.Now()
	// Users run under their own context so that the end of arrivals does
	// not cut them; only the hard end (Duration + Grace) or ctx does.
	userCtx, cancelUsers := context.WithCancel(ctx)
	defer cancelUsers()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		userCtx, cancel = context.WithDeadline(userCtx, start.Add(cfg.Duration+cfg.Grace))
		defer cancel()
	}

	stopProgress := r.progress(start)
	var wg sync.WaitGroup
	launch := func(id int, done func()) {
		urng := rand.New(rand.NewPCG(rng.Uint64(), uint64(id)))
		r.rec.userStarted()
		wg.Go(func() {
			defer done()
			r.user(userCtx, id, urng)
		})
	}
	if cfg.Rate > 0 {
		r.openLoop(ctx, start, rng, launch)
	} else {
		r.closedLoop(ctx, start, launch)
	}
	arrivals := time.Since(start)
	wg.Wait()
	stopProgress()
	return r.rec.summary(time.Since(start), arrivals, cfg), nil
}

// openLoop starts users as a Poisson process whose rate follows the ramps:
// candidates arrive at the peak rate and each is kept with probability
// rate(t)/peak (thinning), which gives exact non-homogeneous arrivals.
// Arrivals do not wait for users to finish.
func (r *runner) openLoop(ctx context.Context, start time.Time, rng *rand.Rand, launch func(int, func())) {
	peak := r.cfg.Rate
	var at time.Duration
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for id := 0; r.cfg.Users == 0 || id < r.cfg.Users; {
		at += time.Duration(rng.ExpFloat64() / peak * float64(time.Second))
		if r.cfg.Duration > 0 && at >= r.cfg.Duration {
			return
		}
		timer.Reset(time.Until(start.Add(at)))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if rng.Float64()*peak > r.cfg.rateAt(at) {
			continue
		}
		if r.rec.activeUsers() >= r.cfg.MaxActive {
			r.rec.userDropped()
			continue
		}
		launch(id, func() {})
		id++
	}
}

// closedLoop keeps Concurrency users running: a slot freed by a finished
// user is taken by a new one at once.
func (r *runner) closedLoop(ctx context.Context, start time.Time, launch func(int, func())) {
	slots := make(chan struct{}, r.cfg.Concurrency)
	var end <-chan time.Time
	if r.cfg.Duration > 0 {
		t := time.NewTimer(time.Until(start.Add(r.cfg.Duration)))
		defer t.Stop()
		end = t.C
	}
	for id := 0; r.cfg.Users == 0 || id < r.cfg.Users; id++ {
		select {
		case <-ctx.Done():
			return
		case <-end:
			return
		case slots <- struct{}{}:
		}
		launch(id, func() { <-slots })
	}
}

// progress calls Config.Progress once a second until the returned stop.
func (r *runner) progress(start time.Time) (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				r.cfg.Progress(r.rec.snapshot(now.Sub(start), now.Sub(last)))
				last = now
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
