-- PostgreSQL dialect of ../0005_sends.sql: same tables, columns, constraints and
-- indexes; INTEGER -> BIGINT, BLOB -> BYTEA, no STRICT (PostgreSQL types are strict).

-- Outgoing mail (bridge send endpoint): one row per accepted send request.
-- A row is committed before the request is answered 202, and moves
--   queued  -> sending  (the attempt is committed BEFORE the Graph call)
--   sending -> sent     (Graph accepted it; mail.sent queued in the same tx)
--   sending -> failed   (a permanent Graph error or retries exhausted;
--                        mail.send_failed queued in the same tx)
--   sending -> queued   (Graph said the request was not processed: 429/503)
-- A row found in 'sending' may have gone out (a crash or a lost answer
-- after the call): it is re-sent only after the mailbox's Sent Items show no
-- message carrying its id (the X-M365Bridge-Send-Id header).
CREATE TABLE sends (
	id                  TEXT PRIMARY KEY,            -- snd_..., also the X-M365Bridge-Send-Id header
	channel             TEXT NOT NULL,
	idempotency_key     TEXT NOT NULL,
	request_hash        TEXT NOT NULL,               -- SHA-256 of the request body as received
	request             BYTEA NOT NULL,               -- the validated request (JSON)
	state               TEXT NOT NULL DEFAULT 'queued'
	                    CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
	attempts            BIGINT NOT NULL DEFAULT 0,
	next_attempt_at     TEXT NOT NULL,
	attempt_started_at  TEXT NOT NULL DEFAULT '',    -- the last attempt's start (Sent Items search window)
	method              TEXT NOT NULL DEFAULT '',    -- reply | sendMail, of the last attempt
	internet_message_id TEXT NOT NULL DEFAULT '',
	code                TEXT NOT NULL DEFAULT '',    -- Graph error code of a failure
	reason              TEXT NOT NULL DEFAULT '',
	fix                 TEXT NOT NULL DEFAULT '',
	last_error          TEXT NOT NULL DEFAULT '',    -- capped excerpt (~1 KiB)
	created_at          TEXT NOT NULL,
	updated_at          TEXT NOT NULL,
	finished_at         TEXT NOT NULL DEFAULT '',
	UNIQUE (channel, idempotency_key)
);

CREATE INDEX sends_due ON sends (state, next_attempt_at);
