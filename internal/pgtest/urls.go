package pgtest

import (
	"fmt"
	"net/url"
	"strings"
)

// withDatabase returns base with its database replaced by database. base
// is a postgres:// (or postgresql://) URL, whose path, or dbname query
// parameter when it has one, is replaced and everything else kept; or a
// keyword/value connection string, to which dbname is appended (the last
// setting wins).
func withDatabase(base, database string) (string, error) {
	u, ok, err := parseURL(base)
	if err != nil {
		return "", err
	}
	if !ok {
		return strings.TrimSpace(base) + " dbname=" + quoteValue(database), nil
	}
	q := u.Query()
	if q.Has("dbname") {
		q.Set("dbname", database)
		u.RawQuery = q.Encode()
	} else {
		u.Path, u.RawPath = "/"+database, ""
	}
	return u.String(), nil
}

// adminURL returns the URL on which to create and drop databases: base
// itself, or its "postgres" database when base names none.
func adminURL(base string) (string, error) {
	u, ok, err := parseURL(base)
	if err != nil {
		return "", err
	}
	if ok && strings.Trim(u.Path, "/") == "" && !u.Query().Has("dbname") {
		return withDatabase(base, "postgres")
	}
	return base, nil
}

// parseURL parses base when it is a URL (ok) rather than a keyword/value
// connection string.
func parseURL(base string) (u *url.URL, ok bool, err error) {
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return nil, false, nil
	}
	u, err = url.Parse(base)
	if err != nil {
		return nil, false, fmt.Errorf("database URL: %w", redactErr(err))
	}
	return u, true, nil
}

// quoteValue quotes a keyword/value connection string value.
func quoteValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// redact hides a URL's password for messages.
func redact(raw string) string {
	u, ok, err := parseURL(raw)
	if err != nil || !ok {
		return "(connection string)"
	}
	return u.Redacted()
}

// redactErr drops the URL, which may hold a password, from a url.Parse error.
func redactErr(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
