package schemaregistry_test

import (
	"context"
	"strings"
	"testing"

	"cqrsgate/internal/jsonvalue"
	"cqrsgate/internal/pgtest"
)

// TestStoredNumbersAreWhatPostgreSQLGivesBack: the append check migrates
// an event's data with its numbers spelled by jsonvalue.StoredNumber, as
// every read migrates them after jsonb stored them; the two spellings
// must be the same, for every spelling the server takes, and a spelling it
// refuses must be refused.
func TestStoredNumbersAreWhatPostgreSQLGivesBack(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	spellings := []string{
		"-0", "-0.0", "-0.0e+3", "-0.00e-2", "0.000", "123456789012345678901234567890", "1e00000000000000000000001", "1e+0001",
		"-12.5E2", "9.99e2", "0.001E3", "0.0001e4", "150e-1", "-1.5e-3",
		"1e1001", "1e-1001", "0e1001", "0e-1001", "1e131071", "0.5e131072", "1e-16383", "0e-16383", "0.00001e-16378",
		"1e131072", "0.1e131073", "1e-16384", "0e-16384", "10e-16384", "1.0e-16383", "1e2147483648", "0e2147483648", "1e-1073741823",
	}
	for _, m := range []string{"0", "1", "7", "10", "100", "0.0", "0.5", "0.10", "1.50", "12.34", "0.001", "99.990", "120.0"} {
		for _, e := range []string{"", "e0", "e1", "E+2", "e-1", "e-3", "e5", "E-0", "e+00", "e-5", "e17", "e-20"} {
			spellings = append(spellings, m+e, "-"+m+e)
		}
	}
	for _, s := range spellings {
		var server string
		serverErr := pool.QueryRow(ctx, `SELECT $1::jsonb::text`, s).Scan(&server)
		got, err := jsonvalue.StoredNumber(s)
		switch {
		case serverErr != nil && err == nil:
			t.Errorf("StoredNumber(%s) = %.40s; PostgreSQL refuses it: %v", s, got, serverErr)
		case serverErr == nil && (err != nil || got != server):
			t.Errorf("StoredNumber(%s) = %.40s, %v; PostgreSQL gives %.40s", s, got, err, server)
		}
		if serverErr != nil && !strings.Contains(serverErr.Error(), "overflows numeric format") {
			t.Errorf("%s: %v", s, serverErr)
		}
	}
}
