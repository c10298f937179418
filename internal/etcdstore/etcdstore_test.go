package etcdstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/etcdstore"
	"github.com/xlbproject/xlb/internal/etcdstore/etcdtest"
)

func open(t *testing.T, endpoints []string, prefix string) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.Open(etcdstore.Config{Endpoints: endpoints, Prefix: prefix, DialTimeout: time.Second,
		RequestTimeout: time.Second, ProbeInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func put(t *testing.T, s *etcdstore.Store, key, value string, expect int64) int64 {
	t.Helper()
	rev, err := s.Commit(context.Background(), []etcdstore.Op{{Key: key, Value: []byte(value), ExpectRevision: expect}})
	require.NoError(t, err)
	return rev
}

func del(t *testing.T, s *etcdstore.Store, key string, expect int64) int64 {
	t.Helper()
	rev, err := s.Commit(context.Background(), []etcdstore.Op{{Key: key, Delete: true, ExpectRevision: expect}})
	require.NoError(t, err)
	return rev
}

// recorder is an ApplyFunc that keeps every change it was given.
type recorder struct {
	mu      sync.Mutex
	snap    etcdstore.Snapshot
	changes []etcdstore.Change
	calls   int
}

func (r *recorder) apply(snap etcdstore.Snapshot, ch []etcdstore.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snap, r.calls = snap, r.calls+1
	r.changes = append(r.changes, ch...)
}

func (r *recorder) revision() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snap.Revision
}

// values is the recorded copy as key -> value.
func (r *recorder) values() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return values(r.snap)
}

// perKey counts the recorded changes by key and revision: a change seen
// twice counts 2.
func (r *recorder) perKey() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, c := range r.changes {
		out[fmt.Sprintf("%s@%d", c.Key, c.ModRevision)]++
	}
	return out
}

func values(s etcdstore.Snapshot) map[string]string {
	out := map[string]string{}
	for k, kv := range s.KVs {
		out[k] = string(kv.Value)
	}
	return out
}

func runSync(t *testing.T, s *etcdstore.Store, from etcdstore.Snapshot, r *recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Sync(ctx, from, r.apply)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func TestCommitIsCompareAndSet(t *testing.T) {
	c := etcdtest.Start(t)
	s := open(t, c.Endpoints(), "/t/")
	ctx := context.Background()

	rev1 := put(t, s, "a", "1", 0)
	_, err := s.Commit(ctx, []etcdstore.Op{{Key: "a", Value: []byte("again"), ExpectRevision: 0}})
	assert.ErrorIs(t, err, etcdstore.ErrConflict, "creating an existing key")

	rev2 := put(t, s, "a", "2", rev1)
	assert.Greater(t, rev2, rev1)
	_, err = s.Commit(ctx, []etcdstore.Op{{Key: "a", Value: []byte("stale"), ExpectRevision: rev1}})
	assert.ErrorIs(t, err, etcdstore.ErrConflict, "writing on a stale revision")

	// Several keys commit together or not at all.
	_, err = s.Commit(ctx, []etcdstore.Op{{Key: "b", Value: []byte("x")}, {Key: "a", Value: []byte("y"), ExpectRevision: rev1}})
	assert.ErrorIs(t, err, etcdstore.ErrConflict)

	snap, err := s.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "2"}, values(snap), "a lost compare-and-set writes nothing")
	assert.Equal(t, rev2, snap.KVs["a"].ModRevision)
	assert.GreaterOrEqual(t, snap.Revision, rev2)

	// Keys outside the prefix are invisible.
	other := open(t, c.Endpoints(), "/other/")
	put(t, other, "a", "elsewhere", 0)
	snap, err = s.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "2"}, values(snap))

	rev3 := del(t, s, "a", rev2)
	snap, err = s.Get(ctx)
	require.NoError(t, err)
	assert.Empty(t, snap.KVs)
	assert.GreaterOrEqual(t, snap.Revision, rev3)
	assert.True(t, s.Health().Up)
}

func TestSyncAppliesEveryChangeOnce(t *testing.T) {
	c := etcdtest.Start(t)
	s := open(t, c.Endpoints(), "/t/")
	seed := put(t, s, "seed", "0", 0)

	r := &recorder{}
	runSync(t, s, etcdstore.Snapshot{}, r)
	require.Eventually(t, func() bool { return r.revision() >= seed }, 30*time.Second, 5*time.Millisecond)

	writer := open(t, c.Endpoints(), "/t/")
	want := map[string]int{fmt.Sprintf("seed@%d", seed): 1}
	var last int64
	revs := map[string]int64{}
	for i := range 50 {
		k := fmt.Sprintf("k%d", i%7)
		if revs[k] != 0 && i%3 == 0 {
			last = del(t, writer, k, revs[k])
			delete(revs, k)
		} else {
			last = put(t, writer, k, fmt.Sprint(i), revs[k])
			revs[k] = last
		}
		want[fmt.Sprintf("%s@%d", k, last)] = 1
	}
	require.Eventually(t, func() bool { return r.revision() >= last }, 30*time.Second, 5*time.Millisecond)
	snap, err := s.Get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, values(snap), r.values())
	assert.Equal(t, want, r.perKey(), "every change applied exactly once")
}

// The copy is behind (it was listed, then etcd moved on and compacted the
// revisions in between): the watch from the copy's revision is cancelled by
// compaction, Sync lists again and applies exactly the difference.
func TestSyncRelistsAfterCompaction(t *testing.T) {
	c := etcdtest.Start(t)
	s := open(t, c.Endpoints(), "/t/")
	ra := put(t, s, "a", "1", 0)
	rb := put(t, s, "b", "1", 0)
	rc := put(t, s, "c", "1", 0)
	old, err := s.Get(context.Background())
	require.NoError(t, err)

	rb2 := put(t, s, "b", "2", rb)
	del(t, s, "c", rc)
	rd := put(t, s, "d", "1", 0)
	require.NoError(t, s.Compact(context.Background(), rd))

	r := &recorder{}
	runSync(t, s, old, r)
	require.Eventually(t, func() bool { return r.revision() >= rd }, 30*time.Second, 5*time.Millisecond)
	assert.Equal(t, map[string]string{"a": "1", "b": "2", "d": "1"}, r.values())
	per := r.perKey()
	assert.Equal(t, 1, per[fmt.Sprintf("b@%d", rb2)])
	assert.Equal(t, 1, per[fmt.Sprintf("d@%d", rd)])
	assert.Len(t, per, 3, "b changed, c deleted, d added; a untouched: %v", per)
	assert.Zero(t, per[fmt.Sprintf("a@%d", ra)], "an unchanged key is not applied again")

	// And it keeps watching after the re-list.
	re := put(t, s, "e", "1", 0)
	require.Eventually(t, func() bool { return r.revision() >= re }, 30*time.Second, 5*time.Millisecond)
	assert.Equal(t, "1", r.values()["e"])
}

// A three-member cluster; the watching client talks to member 0 only.
// Member 0 stops while the others take writes and compact: when it comes
// back, the resumed watch is cancelled by compaction and Sync re-lists.
// Then the two others stop: member 0 has no leader, the store says so and
// refuses writes, and it converges once they return.
func TestSyncCompactionDuringWatchAndLeaderLoss(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	s := open(t, []string{c.Endpoint(0)}, "/t/")
	writer := open(t, []string{c.Endpoint(1), c.Endpoint(2)}, "/t/")
	ra := put(t, writer, "a", "1", 0)
	rb := put(t, writer, "b", "1", 0)

	r := &recorder{}
	runSync(t, s, etcdstore.Snapshot{}, r)
	require.Eventually(t, func() bool { return r.revision() >= rb }, 30*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return s.Health().Up }, 30*time.Second, 5*time.Millisecond)

	c.Stop(0)
	require.Eventually(t, func() bool { return !s.Health().Up }, 30*time.Second, 5*time.Millisecond)
	down := s.Unavailable()
	require.ErrorIs(t, down, etcdstore.ErrUnavailable)
	assert.Contains(t, down.Error(), "desired-state store unreachable since ")
	_, err := s.Commit(context.Background(), []etcdstore.Op{{Key: "x", Value: []byte("1")}})
	assert.ErrorIs(t, err, etcdstore.ErrUnavailable)

	ra2 := put(t, writer, "a", "2", ra)
	del(t, writer, "b", rb)
	rc := put(t, writer, "c", "1", 0)
	require.NoError(t, writer.Compact(context.Background(), rc))
	c.Restart(0)
	require.Eventually(t, func() bool { return r.revision() >= rc }, 20*time.Second, 5*time.Millisecond)
	assert.Equal(t, map[string]string{"a": "2", "c": "1"}, r.values())
	per := r.perKey()
	assert.Equal(t, 1, per[fmt.Sprintf("a@%d", ra2)])
	assert.Equal(t, 1, per[fmt.Sprintf("c@%d", rc)])
	assert.Len(t, per, 5, "a, b at first; then a changed, b deleted, c added, each once: %v", per)
	require.Eventually(t, func() bool { return s.Health().Up }, 30*time.Second, 5*time.Millisecond)

	// Leader loss: member 0 runs, its peers do not.
	c.Stop(1, 2)
	require.Eventually(t, func() bool { return !s.Health().Up }, 20*time.Second, 5*time.Millisecond)
	// The member answers, without a leader (at first a read may time out
	// before it notices).
	assert.Eventually(t, func() bool { return strings.Contains(s.Health().Err, "no leader") }, 20*time.Second, 5*time.Millisecond,
		"the store says why: %s", s.Health().Err)
	_, err = s.Commit(context.Background(), []etcdstore.Op{{Key: "x", Value: []byte("1")}})
	assert.ErrorIs(t, err, etcdstore.ErrUnavailable)
	before := r.values()

	c.Restart(1, 2)
	require.Eventually(t, func() bool { return s.Health().Up }, 20*time.Second, 5*time.Millisecond)
	rx := put(t, s, "x", "1", 0)
	require.Eventually(t, func() bool { return r.revision() >= rx }, 30*time.Second, 5*time.Millisecond)
	before["x"] = "1"
	assert.Equal(t, before, r.values())
}

// TLS with a client certificate: the store's files are used, and a client
// without a certificate is refused (and says the store is unreachable).
func TestTLS(t *testing.T) {
	c, files := etcdtest.StartTLS(t)
	s, err := etcdstore.Open(etcdstore.Config{Endpoints: c.Endpoints(), Prefix: "/t/", CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA,
		DialTimeout: time.Second, RequestTimeout: time.Second})
	require.NoError(t, err)
	defer s.Close()
	rev := put(t, s, "a", "1", 0)
	snap, err := s.Get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, rev, snap.KVs["a"].ModRevision)

	anon, err := etcdstore.Open(etcdstore.Config{Endpoints: c.Endpoints(), Prefix: "/t/", CAFile: files.CA,
		DialTimeout: time.Second, RequestTimeout: time.Second})
	require.NoError(t, err)
	defer anon.Close()
	_, err = anon.Get(context.Background())
	assert.ErrorIs(t, err, etcdstore.ErrUnavailable, "no client certificate")
	assert.False(t, anon.Health().Up)

	_, err = etcdstore.Open(etcdstore.Config{Endpoints: c.Endpoints(), CertFile: files.Cert, KeyFile: "/nonexistent/key.pem", CAFile: files.CA})
	assert.ErrorContains(t, err, "etcd store: tls")
}
