-- PostgreSQL dialect of ../0006_send_requests.sql: same tables, columns, constraints and
-- indexes; INTEGER -> BIGINT, BLOB -> BYTEA, no STRICT (PostgreSQL types are strict).

-- The signed send requests answered (their webhook-id), for replay
-- protection. The signature covers webhook-id, webhook-timestamp and the
-- body, but not the Idempotency-Key header nor the URL: without this table
-- a captured request could be sent again, within the signature's 5-minute
-- tolerance, under a new key or to another channel with the same secret.
-- Every request answered with a send row (accepted, or answered as an
-- idempotent retry) records its webhook-id here; a request whose id is
-- known is answered as the row it names and sends nothing. Rows are kept
-- for a day (store.SendRequestRetention), far longer than a signature is
-- valid, then deleted.
CREATE TABLE send_requests (
	webhook_id TEXT PRIMARY KEY,                        -- unique across channels
	send_id    TEXT NOT NULL REFERENCES sends (id) ON DELETE CASCADE,
	seen_at    TEXT NOT NULL
);

CREATE INDEX send_requests_seen ON send_requests (seen_at);
