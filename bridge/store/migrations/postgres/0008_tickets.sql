-- The ticket map of delivery recipes (issue 16): which helpdesk ticket
-- each delivered mail belongs to, per webhook (helpdesk) and channel. A
-- recipe records a row as soon as a step told it the mail's ticket (the
-- create answer, a lookup, or the ticket of the mail it answers), and
-- resolves a new mail's ticket from its In-Reply-To and References (by
-- message_id) or its Graph conversation (by conversation_id).
-- Plain SQL on purpose: the same file serves PostgreSQL.
CREATE TABLE tickets (
	webhook         TEXT NOT NULL,
	channel         TEXT NOT NULL,
	message_id      TEXT NOT NULL,               -- the mail's Internet Message-ID, as in the event
	conversation_id TEXT NOT NULL DEFAULT '',    -- Graph conversationId, '' if none
	ticket_id       TEXT NOT NULL,               -- the helpdesk's ticket id, as its API returned it
	event_id        TEXT NOT NULL,               -- the event that recorded it
	recorded_at     TEXT NOT NULL,
	PRIMARY KEY (webhook, channel, message_id)
);

CREATE INDEX tickets_conversation ON tickets (webhook, channel, conversation_id, recorded_at);
-- Retention: rows older than the recipe's ticket_map_retention are deleted.
CREATE INDEX tickets_recorded ON tickets (webhook, recorded_at);
