package eventstore_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// everyQueryMode is each of pgx's query modes, the default first.
var everyQueryMode = []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec,
	pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol}

// poolPerQueryMode opens a pool on the database at url for each of
// everyQueryMode, in its order.
func poolPerQueryMode(t *testing.T, url string) []*pgxpool.Pool {
	t.Helper()
	pools := make([]*pgxpool.Pool, len(everyQueryMode))
	for i, mode := range everyQueryMode {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ConnConfig.DefaultQueryExecMode = mode
		if pools[i], err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pools[i].Close)
	}
	return pools
}
