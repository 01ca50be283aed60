//go:build unix

package graph

import "syscall"

// socketReadable reports whether the socket fd has data (or an error, or
// the peer's end) to read, without consuming any: false makes the runtime
// wait until it is readable and ask again.
func socketReadable(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}
