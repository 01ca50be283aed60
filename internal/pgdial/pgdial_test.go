package pgdial_test

import (
	"maps"
	"strings"
	"testing"
	"time"

	"cqrsgate/internal/pgdial"
	"cqrsgate/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m, pgtest.Options{}) }

// TestTakeReadsLibpqParameters: libpq's keepalives, keepalives_idle,
// keepalives_interval, keepalives_count and tcp_user_timeout are read
// (seconds, and milliseconds for tcp_user_timeout; 0 the system's
// setting) and taken out of the parameters, which pgx would have sent the
// server; those left out keep the defaults; a malformed one is refused,
// naming it, and leaves the parameters as they were.
func TestTakeReadsLibpqParameters(t *testing.T) {
	def := pgdial.Defaults()
	if !def.Keepalives || def.KeepalivesIdle != 15*time.Second || def.KeepalivesInterval != 5*time.Second || def.KeepalivesCount != 3 || def.UserTimeout != 30*time.Second {
		t.Fatalf("defaults: %+v", def)
	}
	for _, tc := range []struct {
		params map[string]string
		want   pgdial.Settings
	}{
		{map[string]string{}, def},
		{map[string]string{"application_name": "x"}, def},
		{map[string]string{"keepalives": "0"}, pgdial.Settings{KeepalivesIdle: 15 * time.Second, KeepalivesInterval: 5 * time.Second, KeepalivesCount: 3, UserTimeout: 30 * time.Second}},
		{map[string]string{"keepalives": "1", "keepalives_idle": "60", "keepalives_interval": "10", "keepalives_count": "6", "tcp_user_timeout": "90000"},
			pgdial.Settings{Keepalives: true, KeepalivesIdle: time.Minute, KeepalivesInterval: 10 * time.Second, KeepalivesCount: 6, UserTimeout: 90 * time.Second}},
		// 0: the operating system's setting, as with libpq.
		{map[string]string{"keepalives_idle": "0", "keepalives_interval": "0", "keepalives_count": "0", "tcp_user_timeout": "0"}, pgdial.Settings{Keepalives: true}},
		// Spaces around a number, as libpq allows; the largest values.
		{map[string]string{"keepalives_idle": " 32767 ", "keepalives_interval": "32767", "keepalives_count": "127", "tcp_user_timeout": "2147483647"},
			pgdial.Settings{Keepalives: true, KeepalivesIdle: 32767 * time.Second, KeepalivesInterval: 32767 * time.Second, KeepalivesCount: 127, UserTimeout: 2147483647 * time.Millisecond}},
	} {
		params := maps.Clone(tc.params)
		got, err := pgdial.Take(params)
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v, %v; want %+v", tc.params, got, err, tc.want)
		}
		for k := range params {
			if strings.HasPrefix(k, "keepalives") || k == "tcp_user_timeout" {
				t.Errorf("%v: %s left among the run-time parameters, for the server to refuse", tc.params, k)
			}
		}
		if _, ok := tc.params["application_name"]; ok && params["application_name"] != "x" {
			t.Errorf("%v: another parameter was taken: %v", tc.params, params)
		}
	}

	for _, tc := range []struct{ name, value, want string }{
		{"keepalives", "2", `keepalives must be 1 (on) or 0 (off), got "2"`},
		{"keepalives", "yes", `keepalives must be 1 (on) or 0 (off), got "yes"`},
		{"keepalives_idle", "30s", `keepalives_idle must be a whole number of seconds from 0 (the system's setting) to 32767, got "30s"`},
		{"keepalives_idle", "-1", "keepalives_idle must be"},
		{"keepalives_idle", "32768", "keepalives_idle must be"},
		{"keepalives_interval", "", "keepalives_interval must be"},
		{"keepalives_interval", "1.5", "keepalives_interval must be"},
		{"keepalives_count", "128", `keepalives_count must be a whole number from 0 (the system's setting) to 127, got "128"`},
		{"tcp_user_timeout", "2147483648", "tcp_user_timeout must be a whole number of milliseconds from 0 (the system's setting) to 2147483647"},
		{"tcp_user_timeout", "10s", "tcp_user_timeout must be"},
	} {
		params := map[string]string{tc.name: tc.value, "keepalives_count": "4"}
		if tc.name == "keepalives_count" {
			params = map[string]string{tc.name: tc.value, "keepalives_idle": "4"}
		}
		before := maps.Clone(params)
		_, err := pgdial.Take(params)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: %v, want an error with %q", tc.name, tc.value, err, tc.want)
		}
		if !maps.Equal(params, before) {
			t.Errorf("%s=%q: refused, the parameters changed: %v", tc.name, tc.value, params)
		}
	}
}
