package health

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xlbproject/xlb/l7/proxyproto"
)

// PostgresStatus is one PostgreSQL check's view of a server, reported
// after every probe (not only on transitions: a server can leave recovery
// without ever going down).
type PostgresStatus struct {
	// Up is the rise/fall verdict over the probes.
	Up bool
	// InRecovery and Lag are from the last successful probe.
	InRecovery bool
	Lag        time.Duration
	// Err is the last probe's failure, empty on success.
	Err string
}

// PostgresSetter receives the status of PostgreSQL targets. A StatusSetter
// that also implements it gets SetPostgres instead of SetStatus for them.
type PostgresSetter interface {
	SetPostgres(name string, st PostgresStatus)
}

// lagQuery asks whether the server is a standby and how far its replay
// is behind. A standby that has replayed everything it received has no
// lag, however old its last replayed transaction: on a quiet primary
// nothing new arrives.
const lagQuery = `SELECT pg_is_in_recovery(),
  CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
       ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8`

// probePostgres opens a session to t.Addr with t.Postgres's credentials
// (pgx does every authentication method the server asks for, SCRAM
// included), runs lagQuery and closes the session. The whole exchange,
// the startup message's answer included, is bounded by t.Timeout.
func probePostgres(ctx context.Context, t Target) (inRecovery bool, lag time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	cfg, err := pgx.ParseConfig(t.Postgres)
	if err != nil {
		// The message of a parse error may quote the connection string.
		return false, 0, fmt.Errorf("postgres probe %s: credentials do not parse", t.Addr)
	}
	host, port, err := net.SplitHostPort(t.Addr)
	if err != nil {
		return false, 0, fmt.Errorf("postgres probe %s: %w", t.Addr, err)
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return false, 0, fmt.Errorf("postgres probe %s: port: %w", t.Addr, err)
	}
	cfg.Host, cfg.Port = host, uint16(pn)
	cfg.Fallbacks = nil
	cfg.ConnectTimeout = t.Timeout
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "xlb-health"
	if t.ProxyV2 {
		dial := cfg.DialFunc
		cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if dl, ok := ctx.Deadline(); ok {
				_ = c.SetWriteDeadline(dl)
			}
			if _, err := c.Write(proxyproto.Local()); err != nil {
				_ = c.Close()
				return nil, fmt.Errorf("send proxy protocol header: %w", err)
			}
			_ = c.SetWriteDeadline(time.Time{})
			return c, nil
		}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, 0, fmt.Errorf("postgres probe %s: connect: %w", t.Addr, err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		defer ccancel()
		_ = conn.Close(cctx)
	}()
	var secs float64
	if err := conn.QueryRow(ctx, lagQuery).Scan(&inRecovery, &secs); err != nil {
		return false, 0, fmt.Errorf("postgres probe %s: query: %w", t.Addr, err)
	}
	return inRecovery, time.Duration(secs * float64(time.Second)), nil
}
