package fleet

import (
	"context"
	"fmt"
	"time"
)

// Wait calls cond every 50 ms until it returns nil, ctx ends or limit
// passes; the error then names what was awaited and cond's last error.
func Wait(ctx context.Context, limit time.Duration, what string, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s (%v): %w", what, limit, err)
		case <-t.C:
		}
	}
}
