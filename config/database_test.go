package config

import (
	"strings"
	"testing"
)

// TestStateDatabase: state.database absent keeps SQLite; a postgres:// URL
// (from ${VAR}, as its password should be) is taken; one written with its
// password in the file is taken with a warning.
func TestStateDatabase(t *testing.T) {
	base := readTestdata(t, "valid.yaml")
	c, err := Parse([]byte(base), "bridge.yaml", baseEnv())
	if err != nil {
		t.Fatal(err)
	}
	if !c.Store.Database.IsZero() {
		t.Fatalf("state.database without the key = %q, want empty (SQLite)", c.Store.Database.Value())
	}
	env := baseEnv()
	env.vars["BRIDGE_DB"] = "postgres://bridge:s3cret@db.internal:5432/bridge?sslmode=verify-full"
	c, err = Parse([]byte(base+"state:\n  database: ${BRIDGE_DB}\n"), "bridge.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Store.Database.Value(); got != env.vars["BRIDGE_DB"] {
		t.Fatalf("state.database = %q", got)
	}
	if strings.Contains(c.Store.Database.String(), "s3cret") {
		t.Errorf("the database URL prints its password: %s", c.Store.Database)
	}
	for _, w := range c.Warnings() {
		if strings.Contains(w, "state.database") {
			t.Errorf("warning for a ${VAR} database URL: %v", w)
		}
	}
	c, err = Parse([]byte(base+"state:\n  database: postgres://bridge:s3cret@db.internal/bridge\n"), "bridge.yaml", baseEnv())
	if err != nil {
		t.Fatal(err)
	}
	warned := false
	for _, w := range c.Warnings() {
		warned = warned || strings.Contains(w, "state.database")
	}
	if !warned {
		t.Errorf("no warning for a password written in the file")
	}
}

// TestLeaseTTL: state.lease_ttl defaults to 30 s, takes a duration and
// refuses one under a second with a hint.
func TestLeaseTTL(t *testing.T) {
	base := readTestdata(t, "valid.yaml")
	c, err := Parse([]byte(base), "bridge.yaml", baseEnv())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Store.LeaseTTL, DefaultLeaseTTL; got != want {
		t.Errorf("lease_ttl default = %s, want %s", got, want)
	}
	c, err = Parse([]byte(base+"state:\n  lease_ttl: 3s\n"), "bridge.yaml", baseEnv())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Store.LeaseTTL.String(), "3s"; got != want {
		t.Errorf("lease_ttl = %s, want %s", got, want)
	}
	_, err = Parse([]byte(base+"state:\n  lease_ttl: 100ms\n"), "bridge.yaml", baseEnv())
	if err == nil || !strings.Contains(err.Error(), "state.lease_ttl") || !strings.Contains(err.Error(), "at least 1s") {
		t.Errorf("lease_ttl 100ms: err = %v, want state.lease_ttl must be at least 1s", err)
	}
}
