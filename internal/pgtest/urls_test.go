package pgtest

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestWithDatabase(t *testing.T) {
	tests := []struct {
		base, want string
	}{
		{"postgres://u:p@h:5433/app?sslmode=require&application_name=x", "postgres://u:p@h:5433/other?sslmode=require&application_name=x"},
		{"postgresql://u@h", "postgresql://u@h/other"},
		{"postgres://postgres@/cqrsgate?host=%2Ftmp%2Fs&port=5432&sslmode=disable", "postgres://postgres@/other?host=%2Ftmp%2Fs&port=5432&sslmode=disable"},
		{"postgres://u@h/app?dbname=app2&sslmode=disable", "postgres://u@h/app?dbname=other&sslmode=disable"},
		{"host=h user=u dbname=app", "host=h user=u dbname=app dbname='other'"},
	}
	for _, tt := range tests {
		got, err := withDatabase(tt.base, "other")
		if err != nil {
			t.Fatalf("%s: %v", tt.base, err)
		}
		if got != tt.want {
			t.Errorf("withDatabase(%s) = %s, want %s", tt.base, got, tt.want)
		}
		cfg, err := pgconn.ParseConfig(got)
		if err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		if cfg.Database != "other" {
			t.Errorf("%s connects to %s", got, cfg.Database)
		}
	}
}

func TestAdminURL(t *testing.T) {
	for base, want := range map[string]string{
		"postgres://u@h:5432?sslmode=disable": "postgres://u@h:5432/postgres?sslmode=disable",
		"postgres://u@h/app":                  "postgres://u@h/app",
		"host=h":                              "host=h",
	} {
		if got, err := adminURL(base); err != nil || got != want {
			t.Errorf("adminURL(%s) = %s, %v; want %s", base, got, err, want)
		}
	}
}
