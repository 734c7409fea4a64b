-- Issue 17: on SQLite, event bodies move out of the database into
-- append-only segment files beside it (<database>.bodies/NNNNNN.seg,
-- spool.go), written once instead of twice (WAL, then checkpoint). A row
-- of event_bodies then holds only where its body is: segment, offset,
-- size and the body's CRC-32C; its body column is empty.
--
-- Rows written before keep their body here (segment NULL) and are read
-- from here. size is the body's bytes on every row written from now on,
-- on both backends (PostgreSQL keeps its bodies in the table): the sums
-- of stored and pending body bytes read COALESCE(size, length(body)),
-- never the bodies.
ALTER TABLE event_bodies ADD COLUMN segment INTEGER;
ALTER TABLE event_bodies ADD COLUMN seg_offset INTEGER;
ALTER TABLE event_bodies ADD COLUMN size INTEGER;
ALTER TABLE event_bodies ADD COLUMN crc32c INTEGER;

-- Which segments are still referenced, and by how many bytes
-- (reclaimSegments, compactSegments): an index-only scan.
CREATE INDEX event_bodies_segment ON event_bodies (segment, size) WHERE segment IS NOT NULL;
