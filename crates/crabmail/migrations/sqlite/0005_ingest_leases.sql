-- Ingest jobs are leased like queue recipients, so another node (or this one, after a stall)
-- takes over a job whose worker died. lease_until NULL: held by the node that accepted the
-- message until created_at plus the lease (on a store several nodes share). node: who accepted or
-- last claimed the job, so a restarted node resumes its own jobs at once.
ALTER TABLE ingest_jobs ADD COLUMN lease_until INTEGER;
ALTER TABLE ingest_jobs ADD COLUMN node TEXT;
-- Who holds a recipient's lease, so a restarted node frees its own leases at once.
ALTER TABLE recipients ADD COLUMN lease_node TEXT;
