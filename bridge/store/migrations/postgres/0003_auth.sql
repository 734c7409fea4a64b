-- PostgreSQL dialect of ../0003_auth.sql: same tables, columns, constraints and
-- indexes; INTEGER -> BIGINT, BLOB -> BYTEA, no STRICT (PostgreSQL types are strict).

-- Consent and token lifecycle (bridge/entra): one row per configured channel
-- with its auth state and bound account, its tokens (encrypted, AES-256-GCM,
-- the key id in every ciphertext), and pending authorizations (OAuth state,
-- single use, PKCE verifier encrypted).
CREATE TABLE channels (
	name            TEXT PRIMARY KEY,
	state           TEXT NOT NULL DEFAULT 'needs_consent'
	                CHECK (state IN ('needs_consent', 'active', 'reauth_required', 'error')),
	code            TEXT NOT NULL DEFAULT '',  -- e.g. AADSTS700082
	reason          TEXT NOT NULL DEFAULT '',
	fix             TEXT NOT NULL DEFAULT '',
	mailbox_type    TEXT NOT NULL DEFAULT '',  -- user | shared
	mailbox_address TEXT NOT NULL DEFAULT '',
	-- The signed-in account: the mailbox owner (user) or the delegate (shared).
	account_tid     TEXT NOT NULL DEFAULT '',
	account_oid     TEXT NOT NULL DEFAULT '',
	account_upn     TEXT NOT NULL DEFAULT '',
	account_name    TEXT NOT NULL DEFAULT '',
	connected_at    TEXT NOT NULL DEFAULT '',
	token_expiry    TEXT NOT NULL DEFAULT '',
	last_refresh    TEXT NOT NULL DEFAULT '',
	updated_at      TEXT NOT NULL
);

CREATE TABLE tokens (
	channel       TEXT PRIMARY KEY REFERENCES channels (name) ON DELETE CASCADE,
	key_id        TEXT NOT NULL,
	refresh_token BYTEA NOT NULL,
	access_token  BYTEA NOT NULL,
	expiry        TEXT NOT NULL,
	updated_at    TEXT NOT NULL
);

CREATE TABLE auth_requests (
	-- SHA-256 of the OAuth state: the state itself never rests on disk.
	state_hash TEXT PRIMARY KEY,
	channel    TEXT NOT NULL REFERENCES channels (name) ON DELETE CASCADE,
	kind       TEXT NOT NULL CHECK (kind IN ('connect', 'reauth')),
	key_id     TEXT NOT NULL,
	verifier   BYTEA NOT NULL,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	used_at    TEXT NOT NULL DEFAULT ''
);

CREATE INDEX auth_requests_expires ON auth_requests (expires_at);
