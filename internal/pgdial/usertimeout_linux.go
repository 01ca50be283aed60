package pgdial

import (
	"os"
	"strings"
	"syscall"
	"time"
)

// tcpUserTimeout is TCP_USER_TIMEOUT (linux/tcp.h), which package syscall
// does not name.
const tcpUserTimeout = 0x12

// userTimeoutControl sets TCP_USER_TIMEOUT to d on a TCP socket before it
// connects. A kernel that refuses it fails the connection, as libpq does.
func userTimeoutControl(d time.Duration) func(network, address string, c syscall.RawConn) error {
	ms := int(d.Milliseconds())
	return func(network, _ string, c syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return nil
		}
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, ms)
		}); err != nil {
			return err
		}
		if serr != nil {
			return os.NewSyscallError("setsockopt TCP_USER_TIMEOUT", serr)
		}
		return nil
	}
}
