package api

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
)

// call is one method invocation seen by recorder.
type call struct {
	Method string
	Args   []any
}

// recorder is a Service that records what it is asked and answers with
// canned values, or with err when set.
type recorder struct {
	mu    sync.Mutex
	calls []call
	err   error

	vips   []VIP
	status Status
	stats  Stats
	flow   FlowAnswer
}

var _ Service = (*recorder)(nil)

func (r *recorder) record(method string, args ...any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{Method: method, Args: args})
	return r.err
}

func (r *recorder) Calls() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

func (r *recorder) ListVIPs(context.Context) ([]VIP, error) {
	return r.vips, r.record("ListVIPs")
}

func (r *recorder) GetVIP(_ context.Context, k VIPKey) (VIP, error) {
	if err := r.record("GetVIP", k); err != nil {
		return VIP{}, err
	}
	for _, v := range r.vips {
		if v.Key == k {
			return v, nil
		}
	}
	return VIP{}, fmt.Errorf("vip %s: %w", k, ErrNotFound)
}

func (r *recorder) AddVIP(_ context.Context, s VIPSpec) error { return r.record("AddVIP", s) }
func (r *recorder) DeleteVIP(_ context.Context, k VIPKey) error {
	return r.record("DeleteVIP", k)
}

func (r *recorder) AddBackend(_ context.Context, k VIPKey, s BackendSpec) error {
	return r.record("AddBackend", k, s)
}

func (r *recorder) DeleteBackend(_ context.Context, k VIPKey, b netip.Addr) error {
	return r.record("DeleteBackend", k, b)
}

func (r *recorder) SetBackendState(_ context.Context, k VIPKey, b netip.Addr, drain bool) error {
	return r.record("SetBackendState", k, b, drain)
}

func (r *recorder) SetBackendWeight(_ context.Context, k VIPKey, b netip.Addr, w uint32) error {
	return r.record("SetBackendWeight", k, b, w)
}

func (r *recorder) Status(context.Context) (Status, error) { return r.status, r.record("Status") }
func (r *recorder) Stats(context.Context) (Stats, error)   { return r.stats, r.record("Stats") }
func (r *recorder) Flow(_ context.Context, q FlowQuery) (FlowAnswer, error) {
	return r.flow, r.record("Flow", q)
}
func (r *recorder) Reload(context.Context) error { return r.record("Reload") }
