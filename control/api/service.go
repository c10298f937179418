package api

import (
	"context"
	"net/netip"

	"github.com/xlbproject/xlb/internal/adminsock"
)

// Service is what the daemon offers its operators. The daemon implements it
// (control/daemon), the HTTP handler serves it, and Client implements it on
// the CLI side.
//
// Every mutating method returns only after the change is persisted, so an
// acknowledged change survives a crash. A change that would cut traffic
// (a VIP on one of the host's own addresses, a loopback backend, leaving a
// VIP without an active backend) is refused with ErrConflict, saying what
// would happen, unless the request's context is forced (WithForce). Errors wrap ErrNotFound, ErrInvalid,
// ErrConflict or ErrUnavailable where one applies; the handler turns those
// into 404, 400, 409 and 503, anything else into 500.
type Service interface {
	ListVIPs(ctx context.Context) ([]VIP, error)
	GetVIP(ctx context.Context, key VIPKey) (VIP, error)
	AddVIP(ctx context.Context, spec VIPSpec) error
	DeleteVIP(ctx context.Context, key VIPKey) error

	AddBackend(ctx context.Context, vip VIPKey, spec BackendSpec) error
	DeleteBackend(ctx context.Context, vip VIPKey, backend netip.Addr) error
	// SetBackendState drains (drain=true) or undrains a backend.
	SetBackendState(ctx context.Context, vip VIPKey, backend netip.Addr, drain bool) error
	SetBackendWeight(ctx context.Context, vip VIPKey, backend netip.Addr, weight uint32) error

	Status(ctx context.Context) (Status, error)
	Stats(ctx context.Context) (Stats, error)
	Flow(ctx context.Context, q FlowQuery) (FlowAnswer, error)
	// Reload re-reads the config file and applies the difference; a bad
	// config returns ErrInvalid and leaves the running state unchanged.
	Reload(ctx context.Context) error
}

// Sentinel errors shared by the daemon, the handler and the client. Tag an
// error with one through Errorf, which keeps the sentinel's text out of the
// message: Errorf(ErrNotFound, "vip %s not found", key).
var (
	ErrNotFound    = adminsock.ErrNotFound
	ErrInvalid     = adminsock.ErrInvalid
	ErrConflict    = adminsock.ErrConflict
	ErrUnavailable = adminsock.ErrUnavailable
)

// Errorf formats an error of the given kind (ErrNotFound, ErrInvalid, ...):
// errors.Is matches kind, and so the handler's status code, but the message
// is the formatted text alone. The operator reads "vip 10.0.0.1:80/tcp:
// backend 10.0.1.1 already exists", not "...: conflict: ...". %w wraps as in
// fmt.Errorf.
func Errorf(kind error, format string, a ...any) error {
	return adminsock.Errorf(kind, format, a...)
}
