-- PostgreSQL dialect of ../0009_leases.sql. The lease, heartbeat and claim
-- times are timestamptz here: they are compared with the database's clock
-- (now()), the one clock every daemon shares (see lease.go).

-- channel_leases: which daemon owns a channel until when. token is the
-- fencing token: it grows by one every time the channel changes hands, never
-- goes back, and every write of the channel's ledger, cursor or outbox rows
-- checks it in its own transaction (store.ErrLeaseLost otherwise).
CREATE TABLE channel_leases (
	channel     TEXT PRIMARY KEY,
	owner       TEXT NOT NULL,
	token       BIGINT NOT NULL,
	expires_at  TIMESTAMPTZ NOT NULL,
	acquired_at TIMESTAMPTZ NOT NULL,
	renewed_at  TIMESTAMPTZ NOT NULL
);

-- cluster_members: the daemons alive on this database (heartbeats), from
-- which each computes the same balanced assignment (store.Assign).
CREATE TABLE cluster_members (
	id           TEXT PRIMARY KEY,
	address      TEXT NOT NULL DEFAULT '',
	started_at   TIMESTAMPTZ NOT NULL,
	heartbeat_at TIMESTAMPTZ NOT NULL
);

-- Outbox claims: a daemon delivering a row holds it until claim_until
-- (visibility timeout); an expired claim may be taken by another daemon.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN claim_until TIMESTAMPTZ;
