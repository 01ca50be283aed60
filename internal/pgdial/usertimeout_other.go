//go:build !linux

package pgdial

import (
	"syscall"
	"time"
)

// userTimeoutControl does nothing: TCP_USER_TIMEOUT is Linux's (libpq
// ignores tcp_user_timeout elsewhere too).
func userTimeoutControl(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
