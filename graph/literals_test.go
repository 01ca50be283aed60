package graph

import "testing"

func TestInexactFloat(t *testing.T) {
	for _, raw := range []string{"0.1", "1.50", "1.0", "-0.0", "0.0", "1e10", "1E+10", "2.5e-3", "123456.789", "-1.7976931348623157e308",
		"5e-324", "9007199254740992.0", "0.30000000000000004", "100e-2", "0e2000000", "0.0e-2000000", "-0E9999999", "000.000"} {
		if why := inexactFloat(raw); why != "" {
			t.Errorf("%s: %s", raw, why)
		}
	}
	for _, raw := range []string{"0.30000000000000001", "9007199254740993.0", "1e400", "-1e400", "1e-400", "2.4703282292062328e-324",
		"1.00000000000000000001", "1e99999999999999999999", "12345678901234567.89"} {
		if why := inexactFloat(raw); why == "" {
			t.Errorf("%s was taken as exact", raw)
		}
	}
}
