package etcdstore

import (
	"context"
	"errors"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ApplyFunc receives the prefix's content after each batch of changes, and
// the changes themselves; it is never called without a change. Sync calls
// it from one goroutine, in revision order.
type ApplyFunc func(snap Snapshot, changes []Change)

// Sync keeps the caller's copy of the prefix current until ctx ends. from
// is the copy the caller holds (the zero Snapshot for none): a copy with a
// revision is watched from there, one without is listed first. A watch
// cancelled by compaction (the caller was behind while etcd dropped the
// revisions it needed) is followed by a fresh list: its difference from
// the copy is applied, and the watch resumes after it. A change is applied
// once: an event for a key at or below the revision already applied is
// skipped. While etcd is unreachable or leaderless Sync retries, the copy
// stays as it was, and a periodic probe keeps Health current.
func (s *Store) Sync(ctx context.Context, from Snapshot, apply ApplyFunc) error {
	cur := from.Clone()
	if cur.KVs == nil {
		cur.KVs = map[string]KV{}
	}
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		s.probeLoop(ctx)
	}()
	defer func() { <-probeDone }()

	relist := cur.Revision == 0
	backoff := newBackoff()
	for ctx.Err() == nil {
		if relist {
			snap, err := s.Get(ctx)
			if err != nil {
				backoff.wait(ctx)
				continue
			}
			if changes := diff(cur, snap); len(changes) > 0 {
				cur = snap
				apply(cur.Clone(), changes)
			} else {
				cur = snap
			}
			relist = false
			backoff.reset()
		}
		compacted, err := s.watch(ctx, &cur, apply)
		switch {
		case ctx.Err() != nil:
		case compacted:
			relist = true
			s.log.Info("watch cancelled by compaction: listing again", "prefix", s.prefix, "revision", cur.Revision)
		default:
			s.log.Debug("watch ended: resuming", "prefix", s.prefix, "error", err)
			backoff.wait(ctx)
		}
	}
	return nil
}

// watch applies events from cur.Revision+1 on until the watch ends; it
// reports whether compaction ended it.
func (s *Store) watch(ctx context.Context, cur *Snapshot, apply ApplyFunc) (bool, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(cur.Revision+1), clientv3.WithProgressNotify())
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return true, nil
		}
		if err := resp.Err(); err != nil {
			s.observe(err)
			return false, err
		}
		s.observe(nil)
		var changes []Change
		for _, ev := range resp.Events {
			k := strings.TrimPrefix(string(ev.Kv.Key), s.prefix)
			old, had := cur.KVs[k]
			if had && old.ModRevision >= ev.Kv.ModRevision {
				continue // already applied (from a list)
			}
			if ev.Type == clientv3.EventTypeDelete {
				if !had {
					continue
				}
				delete(cur.KVs, k)
				changes = append(changes, Change{KV: KV{Key: k, ModRevision: ev.Kv.ModRevision}, Deleted: true})
				continue
			}
			kv := KV{Key: k, Value: ev.Kv.Value, CreateRevision: ev.Kv.CreateRevision, ModRevision: ev.Kv.ModRevision}
			cur.KVs[k] = kv
			changes = append(changes, Change{KV: kv})
		}
		if resp.Header.Revision > cur.Revision {
			cur.Revision = resp.Header.Revision
		}
		if len(changes) > 0 {
			apply(cur.Clone(), changes)
		}
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return false, errors.New("watch closed")
}

// diff lists what turns cur into next: keys added or changed (by
// revision), then keys removed.
func diff(cur, next Snapshot) []Change {
	var out []Change
	for k, kv := range next.KVs {
		if old, ok := cur.KVs[k]; !ok || old.ModRevision != kv.ModRevision {
			out = append(out, Change{KV: kv})
		}
	}
	for k := range cur.KVs {
		if _, ok := next.KVs[k]; !ok {
			out = append(out, Change{KV: KV{Key: k, ModRevision: next.Revision}, Deleted: true})
		}
	}
	return out
}

func (s *Store) probeLoop(ctx context.Context) {
	t := time.NewTicker(s.probe)
	defer t.Stop()
	for {
		_ = s.Probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// backoff spaces retries from 50 ms up to 1 s; a successful list starts
// it over.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }

func (b *backoff) reset() { b.d = 50 * time.Millisecond }

func (b *backoff) wait(ctx context.Context) {
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	b.d = min(2*b.d, time.Second)
}
