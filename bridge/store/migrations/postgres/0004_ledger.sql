-- PostgreSQL dialect of ../0004_ledger.sql: same tables, columns, constraints and
-- indexes; INTEGER -> BIGINT, BLOB -> BYTEA, no STRICT (PostgreSQL types are strict).

-- The message ledger and per-channel sync state (bridge runners).
--
-- ledger: one row per (channel, immutable Graph message id) the bridge has
-- ever turned into an event (or refused to). It is what makes a resync, a
-- restart or a message moved out and back never deliver twice, and it gates
-- post-import actions: only a 'delivered' row may touch the mailbox.
--   queued    -> the event is in the outbox, not yet acknowledged
--   delivered -> the receiver answered 2xx (committed with the outbox ack)
--   done      -> the after_import action ran (or was keep)
--   rejected  -> the receiver refused it for good, or the mail could not
--                become an event; it stays in the mailbox
--   dead      -> delivery retries exhausted; it stays in the mailbox
CREATE TABLE ledger (
	channel              TEXT NOT NULL,
	message_id           TEXT NOT NULL,             -- immutable Graph id
	internet_message_id  TEXT NOT NULL DEFAULT '',
	event_id             TEXT NOT NULL DEFAULT '',
	state                TEXT NOT NULL
	                     CHECK (state IN ('queued', 'delivered', 'done', 'rejected', 'dead')),
	reason               TEXT NOT NULL DEFAULT '',
	kind                 TEXT NOT NULL CHECK (kind IN ('archived', 'new')),
	received_at          TEXT NOT NULL DEFAULT '',
	created_at           TEXT NOT NULL,
	updated_at           TEXT NOT NULL,
	post_action_attempts BIGINT NOT NULL DEFAULT 0,
	next_action_at       TEXT NOT NULL DEFAULT '',  -- post-action backoff
	last_error           TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (channel, message_id)
);

CREATE INDEX ledger_internet_message_id ON ledger (internet_message_id);
CREATE INDEX ledger_event_id ON ledger (event_id);
CREATE INDEX ledger_channel_state ON ledger (channel, state);

-- sync_state: one row per channel: the resolved folder, the delta cursor
-- (the whole deltaLink or nextLink URL), the archive decision and progress.
CREATE TABLE sync_state (
	channel            TEXT PRIMARY KEY,
	folder_id          TEXT NOT NULL DEFAULT '',
	folder_path        TEXT NOT NULL DEFAULT '',
	delta_link         TEXT NOT NULL DEFAULT '',
	archive_mode       TEXT NOT NULL DEFAULT ''     -- '' = not decided yet
	                   CHECK (archive_mode IN ('', 'on', 'off')),
	archive_cutoff     TEXT NOT NULL DEFAULT '',
	archive_decided_at TEXT NOT NULL DEFAULT '',
	archive_reason     TEXT NOT NULL DEFAULT '',
	last_sync_at       TEXT NOT NULL DEFAULT '',
	initial_done_at    TEXT NOT NULL DEFAULT '',    -- first complete pass
	seen               BIGINT NOT NULL DEFAULT 0,
	archived           BIGINT NOT NULL DEFAULT 0,
	new                BIGINT NOT NULL DEFAULT 0,
	rejected           BIGINT NOT NULL DEFAULT 0,
	resyncs            BIGINT NOT NULL DEFAULT 0,
	progress_total     BIGINT NOT NULL DEFAULT 0,  -- messages in the folder at the first pass
	status             TEXT NOT NULL DEFAULT ''     -- '' | ok | error
	                   CHECK (status IN ('', 'ok', 'error')),
	error_code         TEXT NOT NULL DEFAULT '',
	error_reason       TEXT NOT NULL DEFAULT '',
	error_fix          TEXT NOT NULL DEFAULT '',
	updated_at         TEXT NOT NULL
);
