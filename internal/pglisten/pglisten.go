// Package pglisten opens the dedicated connections that LISTEN for
// PostgreSQL notifications: the event store's commits (eventstore.Listener)
// and the schema registry's changes (schemaregistry.Registry.Run).
package pglisten

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Open connects with cfg and LISTENs on channel (a plain lower-case name,
// written as it is), which must answer within
// timeout (on a connection that died without the network saying so a
// statement with no deadline waits for ever). closeConn ends the
// connection, within a second whatever ctx, and with it the LISTEN; it is
// nil when err is not.
func Open(ctx context.Context, cfg *pgx.ConnConfig, channel string, timeout time.Duration) (conn *pgx.Conn, closeConn func(), err error) {
	conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	closeConn = func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}
	listenCtx, cancel := context.WithTimeout(ctx, timeout)
	_, err = conn.Exec(listenCtx, "LISTEN "+channel) // a constant, a plain lower-case name
	cancel()
	if err != nil {
		closeConn()
		return nil, nil, err
	}
	return conn, closeConn, nil
}
