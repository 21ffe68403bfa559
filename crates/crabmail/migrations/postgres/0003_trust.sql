-- Trust: hosted domains (the shared one and accounts' custom ones), their DKIM keys, and what
-- inbound verification found.

-- account_id is NULL for the server's shared domain. Several accounts may claim a name while it
-- is pending; only one can have it verified.
CREATE TABLE domains (
    id           TEXT PRIMARY KEY,
    account_id   TEXT,
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    verified_at  BIGINT
);
CREATE UNIQUE INDEX domains_claim ON domains(account_id, name);
CREATE UNIQUE INDEX domains_verified ON domains(name) WHERE verified_at IS NOT NULL;
CREATE INDEX domains_account ON domains(account_id);

-- Keys belong to a domain row, not a name: a second claimant never sees the owner's keys.
-- retired_at is NULL while the key signs; retired keys stay listed until removed from DNS.
CREATE TABLE dkim_keys (
    domain_id    TEXT NOT NULL REFERENCES domains(id),
    selector     TEXT NOT NULL,
    algorithm    TEXT NOT NULL,
    private_key  BYTEA NOT NULL,
    public_key   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    retired_at   BIGINT,
    PRIMARY KEY (domain_id, selector)
);

ALTER TABLE messages ADD COLUMN auth TEXT;
ALTER TABLE messages ADD COLUMN quarantined BOOLEAN NOT NULL DEFAULT FALSE;
