//go:build !unix

package graph

// socketReadable reports true: without a way to peek at a socket, the
// websocket read itself waits.
func socketReadable(uintptr) bool { return true }
