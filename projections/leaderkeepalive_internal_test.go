package projections

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"cqrsgate/internal/pgtest"
)

// TestLeaderSessionKeepaliveIsAccepted: leadWhileLocked has the server
// watch a leader's session over TCP as the gateway watches its end
// (leaderSessionKeepalive), so that a session whose gateway vanished
// silently lets its lock go within about 30 s, where the server's defaults
// held it for 2 hours and more. It ignores the statement's error (a server
// before PostgreSQL 12 has no tcp_user_timeout), so a setting misnamed or
// a value out of range would go unseen: the server must take it. (The test
// cluster listens on a Unix socket only, where the server takes these
// settings and reads them as 0.)
func TestLeaderSessionKeepaliveIsAccepted(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, leaderSessionKeepalive); err != nil {
		t.Fatalf("the server refused the leader session's keepalive settings: %v", err)
	}
}
