package domain

// IdempotentEventID is the id of the i-th event a command with an
// idempotency key writes (tests write events as older versions did).
var IdempotentEventID = idempotentEventID
