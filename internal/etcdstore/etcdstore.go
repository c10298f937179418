// Package etcdstore is a small watchable key-value store over etcd's v3
// API, shared by the control daemon (the fleet's desired state) and the L7
// proxy (the fleet's runtime pool membership).
//
// A Store works under one key prefix. Get reads every key under it with the
// revision it was read at; Commit writes a set of puts and deletes as one
// transaction that succeeds only if every key written still has the
// revision it was read with (compare-and-set), and returns once etcd has
// committed it. Sync keeps a caller's copy of the prefix up to date: it
// lists, then watches from the listed revision, and when the watch is
// cancelled because etcd compacted the revisions it needed, it lists again,
// applies the difference and watches again, so the caller misses no change
// and sees none twice. Every request carries WithRequireLeader: a member cut
// off from its cluster answers "no leader" instead of stalling silently.
//
// The store also says whether etcd is usable (Health): a probe and every
// request update it, and callers refuse changes while it is down instead of
// waiting out a timeout for each.
package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Defaults.
const (
	DefaultDialTimeout    = 2 * time.Second
	DefaultRequestTimeout = 2 * time.Second
	DefaultProbeInterval  = 500 * time.Millisecond
)

// ErrConflict says a Commit lost its compare-and-set: a key it writes was
// changed since it was read. Read again and retry.
var ErrConflict = errors.New("changed concurrently")

// ErrUnavailable wraps every failure to reach etcd or to get an answer
// from a member with a leader.
var ErrUnavailable = errors.New("desired-state store unreachable")

// Config says how to reach etcd.
type Config struct {
	Endpoints []string
	// CertFile and KeyFile are the client certificate; CAFile verifies the
	// servers. TLS is used when any is set.
	CertFile, KeyFile, CAFile string
	// Prefix is prepended to every key; the store sees nothing outside it.
	Prefix         string
	DialTimeout    time.Duration
	RequestTimeout time.Duration
	ProbeInterval  time.Duration
	Log            *slog.Logger
}

// KV is one key (relative to the prefix) with its value and the
// revisions of its creation and of its last change.
type KV struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
}

// Snapshot is the prefix's content as of Revision. Keys are relative to
// the prefix.
type Snapshot struct {
	Revision int64
	KVs      map[string]KV
}

// Clone returns a copy that shares no map with s.
func (s Snapshot) Clone() Snapshot {
	return Snapshot{Revision: s.Revision, KVs: maps.Clone(s.KVs)}
}

// Change is one key's change as Sync applies it. Deleted is set for a
// removed key (KV then holds the key alone).
type Change struct {
	KV
	Deleted bool
}

// Op is one write of a Commit. ExpectRevision is the ModRevision the key
// had when read; 0 means it must not exist.
type Op struct {
	Key            string
	Value          []byte
	Delete         bool
	ExpectRevision int64
}

// Health says whether etcd answers with a leader, and since when not.
type Health struct {
	Up bool
	// Since is when the current state began (the first failure when down).
	Since time.Time
	// Err is the last failure while down.
	Err string
}

// Store is a client of one etcd cluster under one prefix.
type Store struct {
	cli     *clientv3.Client
	prefix  string
	timeout time.Duration
	dial    time.Duration
	probe   time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	health Health
}

// Open connects to etcd. It does not wait for a connection: a store whose
// cluster is down opens, reports itself down and recovers when it comes.
func Open(cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd store: no endpoints")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cc := clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cmpOr(cfg.DialTimeout, DefaultDialTimeout),
		// The client's own zap logger is noisy on every reconnect; the
		// store logs the transitions that matter.
		Logger: zap.NewNop(),
		// Keepalives find a dead connection while the watch is idle.
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" || cfg.CAFile != "" {
		ti := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CAFile}
		tc, err := ti.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd store: tls: %w", err)
		}
		cc.TLS = tc
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd store: connect to %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	return &Store{
		cli: cli, prefix: cfg.Prefix, log: log,
		timeout: cmpOr(cfg.RequestTimeout, DefaultRequestTimeout),
		dial:    cc.DialTimeout,
		probe:   cmpOr(cfg.ProbeInterval, DefaultProbeInterval),
		// Unknown until the first answer: down, since now.
		health: Health{Since: time.Now(), Err: "not connected yet"},
	}, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Close closes the connection.
func (s *Store) Close() error { return s.cli.Close() }

// Prefix is the store's key prefix.
func (s *Store) Prefix() string { return s.prefix }

// Health is the store's view of etcd as of its last request or probe.
func (s *Store) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.health
}

// Unavailable returns a nil error while etcd is up, else an error wrapping
// ErrUnavailable that says since when and why: what callers return instead
// of a change while the store is down.
func (s *Store) Unavailable() error {
	h := s.Health()
	if h.Up {
		return nil
	}
	return fmt.Errorf("%w since %s: %s", ErrUnavailable, h.Since.UTC().Format(time.RFC3339), h.Err)
}

// observe records the outcome of a request; only transport-level and
// leader failures count as the store being down.
func (s *Store) observe(err error) {
	down := err != nil && unavailable(err)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil || !down:
		if !s.health.Up {
			s.log.Info("desired-state store reachable", "down_for", time.Since(s.health.Since).Round(time.Millisecond).String())
			s.health = Health{Up: true, Since: time.Now()}
		}
	case s.health.Up:
		s.log.Warn("desired-state store unreachable: changes are refused, the data path keeps its last state", "error", err)
		s.health = Health{Since: time.Now(), Err: err.Error()}
	default:
		s.health.Err = err.Error()
	}
}

// unavailable tells a failure to reach a usable cluster from a request
// that etcd answered and refused.
func unavailable(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		// Answered by a member: only a missing leader or a stopping
		// member makes the cluster unusable.
		return errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrGRPCNoLeader) ||
			errors.Is(err, rpctypes.ErrStopped) || errors.Is(err, rpctypes.ErrTimeout) ||
			errors.Is(err, rpctypes.ErrLeaderChanged)
	}
	return true
}

func (s *Store) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(parent, s.timeout)
	return clientv3.WithRequireLeader(ctx), cancel
}

// wrap turns a request's failure into ErrUnavailable where it is one.
func (s *Store) wrap(what string, err error) error {
	s.observe(err)
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Get reads every key under the prefix, linearizably (a member without a
// leader refuses).
func (s *Store) Get(ctx context.Context) (Snapshot, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.prefix, clientv3.WithPrefix())
	if err := s.wrap("read "+s.prefix, err); err != nil {
		return Snapshot{}, err
	}
	snap := Snapshot{Revision: resp.Header.Revision, KVs: make(map[string]KV, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		k := strings.TrimPrefix(string(kv.Key), s.prefix)
		snap.KVs[k] = KV{Key: k, Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision}
	}
	return snap, nil
}

// Commit writes ops as one transaction, on the condition that every key
// still has its ExpectRevision. It returns the revision the transaction
// committed at, ErrConflict if a condition failed (nothing is written), or
// an error wrapping ErrUnavailable when etcd could not be asked; when the
// outcome is unknown (a timeout after the request left) the error says so.
func (s *Store) Commit(ctx context.Context, ops []Op) (int64, error) {
	if len(ops) == 0 {
		return 0, errors.New("commit: nothing to write")
	}
	var cmps []clientv3.Cmp
	var writes []clientv3.Op
	for _, op := range ops {
		k := s.prefix + op.Key
		if op.ExpectRevision == 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", op.ExpectRevision))
		}
		if op.Delete {
			writes = append(writes, clientv3.OpDelete(k))
		} else {
			writes = append(writes, clientv3.OpPut(k, string(op.Value)))
		}
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(cctx).If(cmps...).Then(writes...).Commit()
	if errors.Is(err, context.DeadlineExceeded) {
		s.observe(err)
		return 0, fmt.Errorf("commit under %s: %w: no answer within %s, the change may or may not have been committed: %w", s.prefix, ErrUnavailable, s.timeout, err)
	}
	if err := s.wrap("commit under "+s.prefix, err); err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("commit under %s: %w", s.prefix, ErrConflict)
	}
	return resp.Header.Revision, nil
}

// Compact compacts etcd's history up to rev (tests and operators; etcd's
// own auto-compaction does the same in production).
func (s *Store) Compact(ctx context.Context, rev int64) error {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.cli.Compact(cctx, rev, clientv3.WithCompactPhysical())
	return s.wrap("compact", err)
}

// Probe asks etcd, linearizably, for the prefix's revision; its outcome
// updates Health.
func (s *Store) Probe(ctx context.Context) error {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.cli.Get(cctx, s.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	return s.wrap("probe", err)
}

// Timeouts is how long a caller should give one connection and request:
// the dial timeout plus the request timeout.
func (s *Store) Timeouts() time.Duration { return s.dial + s.timeout }
