-- PostgreSQL dialect of ../0007_event_bodies.sql: same tables, columns, constraints and
-- indexes; INTEGER -> BIGINT, BLOB -> BYTEA, no STRICT (PostgreSQL types are strict).

-- Event bodies move out of the outbox into a table of their own, written
-- once at enqueue. The outbox row changes state on every attempt and on
-- delivery; with the body inside it SQLite rewrote the whole (often
-- megabytes of base64) row each time, into the WAL and again at checkpoint
-- (issue 17: about 6x write amplification). Now those updates touch only
-- the small metadata row.
--
-- Every existing row keeps its body (same seq). A body may later be
-- dropped for a delivered row only (Outbox.Retire, within the state budget):
-- the row, its event id and its history stay; a delivered row is never
-- replayed (Replay refuses it), so no send ever needs a dropped body.
CREATE TABLE event_bodies (
	seq  BIGINT PRIMARY KEY REFERENCES outbox (seq) ON DELETE CASCADE,
	body BYTEA NOT NULL -- the event JSON
);

INSERT INTO event_bodies (seq, body) SELECT seq, body FROM outbox;

ALTER TABLE outbox DROP COLUMN body;

-- Delivered rows in delivery order: which bodies to drop first.
CREATE INDEX outbox_delivered ON outbox (state, delivered_at);
