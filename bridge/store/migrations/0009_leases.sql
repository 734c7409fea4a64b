-- Several daemons on one database (issue 18). On SQLite there is one daemon:
-- leases are granted at once, but the tables and the API are the same, so
-- the daemon has one code path.
--
-- channel_leases: which daemon owns a channel until when. token is the
-- fencing token: it grows by one every time the channel changes hands, never
-- goes back, and every write of the channel's ledger, cursor or outbox rows
-- checks it in its own transaction (store.ErrLeaseLost otherwise).
CREATE TABLE channel_leases (
	channel     TEXT PRIMARY KEY,
	owner       TEXT NOT NULL,
	token       INTEGER NOT NULL,
	expires_at  TEXT NOT NULL,
	acquired_at TEXT NOT NULL,
	renewed_at  TEXT NOT NULL
) STRICT;

-- cluster_members: the daemons alive on this database (heartbeats), from
-- which each computes the same balanced assignment (store.Assign).
CREATE TABLE cluster_members (
	id           TEXT PRIMARY KEY,
	address      TEXT NOT NULL DEFAULT '',
	started_at   TEXT NOT NULL,
	heartbeat_at TEXT NOT NULL
) STRICT;

-- Outbox claims: a daemon delivering a row holds it until claim_until
-- (visibility timeout); an expired claim may be taken by another daemon.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN claim_until TEXT NOT NULL DEFAULT '';
