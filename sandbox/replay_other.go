//go:build !linux

package sandbox

import "context"

// Replay cannot create a sandbox on this system.
func Replay(ctx context.Context, c ReplayConfig) (int, ReplayOutcome, error) {
	return 0, ReplayOutcome{}, errUnsupported
}
