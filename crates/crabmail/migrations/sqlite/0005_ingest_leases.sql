-- Ingest jobs are leased like queue recipients, so another node (or this one, after a stall)
-- takes over a job whose worker died. NULL: held by the node that accepted the message until
-- created_at plus the lease.
ALTER TABLE ingest_jobs ADD COLUMN lease_until INTEGER;
