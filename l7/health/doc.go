// Package health runs active HTTP health checks. Each target is probed on
// its own goroutine (so probes run in parallel and a slow server delays
// nobody else), and a target's state flips only after Rise consecutive
// successes or Fall consecutive failures. The checker knows nothing about
// pools: it reports transitions to a StatusSetter.
package health
