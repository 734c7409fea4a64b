package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// TestMigrationMovesBodiesKeepingRows is issue 17 item 1: a state
// directory of schema 6 (bodies inside the outbox rows) opens at the new
// schema with every row, state, id and body as it was, and delivers and
// lists as before.
func TestMigrationMovesBodiesKeepingRows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	var old []migration
	for _, m := range ms {
		if m.version <= 6 {
			old = append(old, m)
		}
	}
	raw, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		t.Fatal(err)
	}
	v6 := &DB{path: path, write: raw, read: raw, Now: time.Now}
	if err := v6.applyMigrations(ctx, old); err != nil {
		t.Fatal(err)
	}
	ts := timeText(testEpoch(t))
	for _, r := range []struct{ id, state, body string }{
		{"ev-pending", "pending", `{"n":1}`}, {"ev-delivered", "delivered", `{"n":2}`}, {"ev-dead", "dead", `{"n":3}`},
	} {
		if _, err := raw.Exec(`INSERT INTO outbox (event_id, endpoint, channel, type, body, state, next_attempt_at, created_at)
			VALUES (?, 'helpdesk', 'c', 'mail.received', ?, ?, ?, ?)`, r.id, []byte(r.body), r.state, ts, ts); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open at the new schema: %v", err)
	}
	defer db.Close()
	if v, _ := db.SchemaVersion(ctx); v < 7 {
		t.Fatalf("schema version %d, want >= 7", v)
	}
	rows, err := db.Outbox().List(ctx, deliver.Filter{WithBody: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r.EventID+" "+string(r.State)] = string(r.Body)
	}
	want := map[string]string{"ev-pending pending": `{"n":1}`, "ev-delivered delivered": `{"n":2}`, "ev-dead dead": `{"n":3}`}
	if len(got) != len(want) {
		t.Fatalf("rows after migration = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: body %q, want %q", k, got[k], v)
		}
	}
	due, err := db.Outbox().Due(ctx, "helpdesk", testEpoch(t).Add(time.Hour), 10, false)
	if err != nil || len(due) != 1 || string(due[0].Body) != `{"n":1}` {
		t.Fatalf("Due = %+v, %v; want the pending row with its body", due, err)
	}
	var cols int
	db.Reader().QueryRow(`SELECT COUNT(*) FROM pragma_table_info('outbox') WHERE name = 'body'`).Scan(&cols)
	if cols != 0 {
		t.Error("outbox still has a body column: every state change would rewrite the body")
	}
}

// TestTrimBodiesDropsDeliveredOnly: past the budget, delivered bodies go
// oldest delivery first; pending and dead bodies stay whatever the budget;
// the rows and ids stay; retiring a row takes its body with it.
func TestTrimBodiesDropsDeliveredOnly(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db, now := b.openOutbox(t)
		body := func(id string) []byte { return []byte(`{"id":"` + id + `","pad":"0123456789"}`) }
		for _, id := range []string{"a", "b", "c", "d"} {
			if err := db.Enqueue(ctx, OutboxEvent{EventID: id, Endpoint: "helpdesk", Channel: "c", Type: "mail.received", Body: body(id)}); err != nil {
				t.Fatal(err)
			}
		}
		q := db.Outbox()
		all, _ := q.List(ctx, deliver.Filter{})
		// a and b delivered (a first), c dead, d pending.
		for i, at := range []time.Duration{time.Minute, 2 * time.Minute} {
			if err := q.MarkDelivered(ctx, all[i].Seq, 200, now.Add(at)); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.MarkDead(ctx, all[2].Seq, 500, "x"); err != nil {
			t.Fatal(err)
		}
		size := int64(len(body("a")))
		dropped, freed, err := db.TrimBodies(ctx, 3*size) // one body over
		if err != nil || dropped != 1 || freed != size {
			t.Fatalf("TrimBodies(3 bodies) = %d, %d, %v; want 1 body of %d bytes", dropped, freed, err, size)
		}
		rows, _ := q.List(ctx, deliver.Filter{WithBody: true})
		if len(rows) != 4 {
			t.Fatalf("%d rows after trimming, want all 4 (only bodies go)", len(rows))
		}
		if rows[0].Body != nil || rows[1].Body == nil {
			t.Errorf("after trimming one: a body %q, b body %q; want the oldest delivery (a) dropped first", rows[0].Body, rows[1].Body)
		}
		if _, _, err := db.TrimBodies(ctx, 0); err != nil {
			t.Fatal(err)
		}
		rows, _ = q.List(ctx, deliver.Filter{WithBody: true})
		if rows[1].Body != nil || rows[2].Body == nil || rows[3].Body == nil {
			t.Errorf("budget 0: bodies b=%q c=%q d=%q; want delivered dropped, dead and pending kept", rows[1].Body, rows[2].Body, rows[3].Body)
		}
		if st, _ := db.EventBodies(ctx); st.Bodies != 2 {
			t.Errorf("%d bodies stored, want 2 (dead and pending)", st.Bodies)
		}
		// Retention: a retired row takes its body (foreign key cascade).
		if err := q.MarkDelivered(ctx, all[3].Seq, 200, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		db.SetBodyBudget(-1)
		if n, err := q.Retire(ctx, "helpdesk", now.Add(time.Hour)); err != nil || n != 3 {
			t.Fatalf("Retire = %d, %v; want 3", n, err)
		}
		if st, _ := db.EventBodies(ctx); st.Bodies != 1 {
			t.Errorf("%d bodies after retiring, want 1 (the dead row's): bodies outlived their rows", st.Bodies)
		}
	})
}
