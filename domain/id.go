package domain

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// NewID returns a new random UUID (version 7: time-ordered, 74 random bits)
// in its canonical textual form. It is used for event ids and aggregate ids.
func NewID() string { return newUUIDv7(time.Now()) }

func newUUIDv7(now time.Time) string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails on supported platforms
	ms := uint64(now.UnixMilli())
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(u[0:6], ts[2:8])
	u[6] = (u[6] & 0x0f) | 0x70 // version 7
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return string(s[:])
}

// ValidID reports whether s is a UUID in canonical form
// (8-4-4-4-12 hexadecimal digits, either case).
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// ReservedEventID reports whether id is a UUID of version 8, which the
// command service derives for the events of commands with an idempotency
// key (from the stream and the key). A client that chose such an id for an
// event of its own could make a command's events look written, or keep
// them from being written: clients may not.
func ReservedEventID(id string) bool {
	return ValidID(id) && id[14] == '8'
}
