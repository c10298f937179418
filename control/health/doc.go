// Package health actively checks the L7 hosts: a TCP connect or an HTTP GET
// (for `xlb proxy`, its admin `/ready`, which answers 200 only while the
// proxy's app pools can serve), per target, in parallel, with jitter so that
// a fleet of edge hosts does not probe in lock step.
//
// A target goes down after Fall consecutive failures and up after Rise
// consecutive successes; its first result sets its state directly, so a
// freshly started (or restarted) daemon knows every host's state after one
// round instead of assuming one.
package health
