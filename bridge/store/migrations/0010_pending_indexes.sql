-- Issue 17: fewer pages written per delivered event. The indexes the
-- dispatcher reads hold pending rows only: delivering a row removes its
-- entries instead of moving each to a 'delivered' part of the index (one
-- page written per index instead of up to two), and they stay as small as
-- the backlog instead of growing with the retained history. Every query
-- that uses them says state = 'pending'.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (endpoint, next_attempt_at) WHERE state = 'pending';
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (endpoint, seq) WHERE state = 'pending';
DROP INDEX outbox_head;
CREATE INDEX outbox_head ON outbox (endpoint, channel, seq) WHERE state = 'pending';
