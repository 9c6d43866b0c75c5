-- Per-tenant snapshots: one row per snapshot, its state and what it holds. The snapshot itself (a manifest,
-- the tenant's rows as gzip-compressed JSON lines, and a copy of every blob its files reference) is in the
-- object store of the tenant's placement when it was taken (its region's store, or the bucket it brought
-- with its own database: store_datastore), under tenants/<tenant>/snapshots/<id>/.
CREATE TABLE strata.snapshots (
  id uuid PRIMARY KEY,
  owner_tenant uuid NOT NULL REFERENCES strata.tenants (id) ON DELETE CASCADE,
  status text NOT NULL CHECK (status IN ('running', 'complete', 'failed')),
  store_region text NOT NULL,
  store_datastore uuid,
  epoch integer,
  last_seq bigint,
  collections integer NOT NULL DEFAULT 0,
  documents bigint NOT NULL DEFAULT 0,
  files bigint NOT NULL DEFAULT 0,
  bytes bigint NOT NULL DEFAULT 0,
  -- md5 over every collection, document (id, version, body) and file (key, version, sha256) of the tenant
  content_checksum text,
  error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
);
CREATE INDEX snapshots_by_tenant ON strata.snapshots (owner_tenant, created_at);
ALTER TABLE strata.snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata.snapshots FORCE ROW LEVEL SECURITY;
CREATE POLICY system_all ON strata.snapshots TO strata_system USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON strata.snapshots TO strata_system;
