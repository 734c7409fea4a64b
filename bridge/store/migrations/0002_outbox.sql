-- The webhook outbox: one row per (event, endpoint). A row is written in the
-- same transaction as the ledger row and cursor that produced it, and moves
--   pending -> delivered   (2xx; the ledger ack commits in that transaction)
--   pending -> rejected    (a permanent 4xx, or the body cannot be rendered)
--   pending -> dead        (attempts or age exhausted)
-- rejected and dead rows keep the event and go back to pending on replay,
-- with the same event id. attempts and next_attempt_at are committed before
-- each POST, so a crash mid-POST retries on schedule and never loses a row.
CREATE TABLE outbox (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,  -- enqueue order
	event_id        TEXT NOT NULL,                      -- = webhook-id, never changes
	endpoint        TEXT NOT NULL,
	channel         TEXT NOT NULL DEFAULT '',
	type            TEXT NOT NULL,
	body            BLOB NOT NULL,                      -- the event JSON
	state           TEXT NOT NULL DEFAULT 'pending'
	                CHECK (state IN ('pending', 'delivered', 'dead', 'rejected')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at TEXT NOT NULL,
	created_at      TEXT NOT NULL,
	replayed_at     TEXT NOT NULL DEFAULT '',
	last_attempt_at TEXT NOT NULL DEFAULT '',
	last_status     INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',           -- capped excerpt (~1 KiB)
	delivered_at    TEXT NOT NULL DEFAULT '',
	UNIQUE (event_id, endpoint)
) STRICT;

CREATE INDEX outbox_due ON outbox (endpoint, state, next_attempt_at);     -- next wake-up
CREATE INDEX outbox_pending ON outbox (endpoint, state, seq);            -- unordered due rows
CREATE INDEX outbox_head ON outbox (endpoint, state, channel, seq);      -- each channel's oldest
CREATE INDEX outbox_created ON outbox (created_at);

-- Endpoint state that must survive a restart: paused by an operator, or
-- disabled after a 410 Gone. No row means active.
CREATE TABLE webhook_endpoints (
	name       TEXT PRIMARY KEY,
	state      TEXT NOT NULL CHECK (state IN ('active', 'paused', 'disabled')),
	reason     TEXT NOT NULL DEFAULT '',
	changed_at TEXT NOT NULL
) STRICT;
