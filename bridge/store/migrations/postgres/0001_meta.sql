-- PostgreSQL dialect of ../0001_meta.sql: same tables, columns, constraints and
-- indexes; INTEGER -> BIGINT, BLOB -> BYTEA, no STRICT (PostgreSQL types are strict).

-- Facts about this state directory that outlive a process: the instance id,
-- when it was created. Later migrations add tokens, channels, ledger, outbox.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
