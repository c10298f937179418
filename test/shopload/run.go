package shopload

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type runner struct {
	cfg   Config
	base  string
	rec   *recorder
	log   *slog.Logger
	level level
}

// level is the share of Config.Rate offered, moved linearly by SetLevel.
type level struct {
	mu         sync.Mutex
	from, to   float64
	start, end time.Time
}

func (v *level) set(to float64, over time.Duration, now time.Time) {
	if to <= 0 || to > 1 {
		to = min(max(to, 0), 1)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.from = v.atLocked(now)
	v.to, v.start, v.end = to, now, now.Add(over)
}

func (v *level) at(now time.Time) float64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.atLocked(now)
}

func (v *level) atLocked(now time.Time) float64 {
	if v.start.IsZero() || !now.Before(v.end) {
		return v.to
	}
	f := float64(now.Sub(v.start)) / float64(v.end.Sub(v.start))
	return v.from + (v.to-v.from)*f
}

// Run plays cfg until its user count or duration is reached and every user
// has finished (or been cut after Grace), and returns what the users saw.
// Cancelling ctx ends the run early; the summary covers what happened.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	l, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return l.Wait(), nil
}

// Load is a run in progress, started by Start: its offered rate can be
// changed while it goes (SetLevel), its running totals read (Totals), and
// its arrivals ended early (Stop).
type Load struct {
	r       *runner
	stopArr context.CancelFunc
	stopped atomic.Bool
	done    chan struct{}
	sum     *Summary
}

// Start begins the run cfg describes and returns at once; Wait returns its
// summary. The run is bounded as Run's is.
func Start(ctx context.Context, cfg Config) (*Load, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	r := &runner{cfg: cfg, base: strings.TrimRight(cfg.Target, "/"), rec: newRecorder(), log: slog.Default()}
	r.level.set(cfg.Level, 0, time.Now())
	rng := rand.New(rand.NewPCG(seed, 0x5ec0))
	arrCtx, stopArr := context.WithCancel(ctx)
	l := &Load{r: r, stopArr: stopArr, done: make(chan struct{})}

	start := time.Now()
	r.rec.start = start
	// Users run under their own context so that the end of arrivals does
	// not cut them; only the hard end (Duration + Grace) or ctx does.
	userCtx, cancelUsers := context.WithCancel(ctx)
	var cancelDeadline context.CancelFunc = func() {}
	if cfg.Duration > 0 {
		userCtx, cancelDeadline = context.WithDeadline(userCtx, start.Add(cfg.Duration+cfg.Grace))
	}
	go func() {
		defer close(l.done)
		defer stopArr()
		defer cancelUsers()
		defer cancelDeadline()
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
			r.openLoop(arrCtx, start, rng, launch)
		} else {
			r.closedLoop(arrCtx, start, launch)
		}
		arrivals := time.Since(start)
		// Arrivals ended by Stop give the running users Grace from now.
		if l.stopped.Load() {
			t := time.AfterFunc(cfg.Grace, cancelUsers)
			defer t.Stop()
		}
		wg.Wait()
		stopProgress()
		l.sum = r.rec.summary(time.Since(start), arrivals, cfg)
	}()
	return l, nil
}

// SetLevel moves the open-loop arrival rate to level × Config.Rate
// (0 ≤ level ≤ 1), linearly over the given time from wherever it is now.
// The ramps of Config still apply on top. Closed loop ignores it.
func (l *Load) SetLevel(level float64, over time.Duration) {
	l.r.level.set(level, over, time.Now())
}

// Stop ends the arrivals now, as the end of Duration does: running users
// get Grace to finish. Wait returns once they have.
func (l *Load) Stop() {
	l.stopped.Store(true)
	l.stopArr()
}

// Wait blocks until the run has ended and returns its summary.
func (l *Load) Wait() *Summary {
	<-l.done
	return l.sum
}

// Totals are the run's counts so far.
func (l *Load) Totals() Totals { return l.r.rec.totals() }

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
		if rng.Float64()*peak > r.cfg.rateAt(at)*r.level.at(start.Add(at)) {
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
