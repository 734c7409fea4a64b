// Package storetest gives tests a real PostgreSQL database of their own: a
// fresh schema on the server M365BRIDGE_TEST_POSTGRES names, dropped when
// the test ends, so that tests (and packages) run in parallel on one server.
//
// .ci/run starts that server with .ci/install-postgres. Outside CI, without
// the variable, the PostgreSQL tests skip and say how to run them; with CI
// set and the variable missing they fail: CI must not pass by skipping.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// Env is the variable that holds the test server's DSN.
const Env = "M365BRIDGE_TEST_POSTGRES"

// ServerDSN is the DSN of the test server, or skips (outside CI) or fails
// (CI set) t when there is none.
func ServerDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Env)
	if dsn != "" {
		return dsn
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set but %s is not: .ci/run starts PostgreSQL with .ci/install-postgres and exports it", Env)
	}
	t.Skipf("PostgreSQL tests skipped: %s is not set. Run them with: bash .ci/install-postgres /tmp/pg.env && set -a && . /tmp/pg.env && set +a && go test ./bridge/store/...", Env)
	return ""
}

// Postgres creates a fresh schema on the test server and returns a DSN whose
// search_path is that schema; the schema is dropped after the test.
func Postgres(t testing.TB) string {
	t.Helper()
	server := ServerDSN(t)
	admin, err := sql.Open("pgx", server)
	if err != nil {
		t.Fatalf("open %s: %v", Env, err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema on the test server (%s): %v", Env, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", Env, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
