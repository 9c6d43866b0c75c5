-- Tenant files. A row holds a file's metadata; its bytes are a content-addressed blob in the tenant's
-- object store (tenants/<tenant_id>/blobs/<sha256>), shared by every file of the tenant with the same
-- content. Blobs no row references any more are removed by the orphan sweep, never by the write itself.
--
-- Keys compare byte by byte (COLLATE "C") whatever the database's locale, so listing order and cursors are
-- the same on every datastore.

-- The bytes of the tenant's files, kept beside doc_bytes: the storage_bytes quota counts both.
ALTER TABLE strata_data.tenant_sequences ADD COLUMN file_bytes bigint NOT NULL DEFAULT 0;

CREATE TABLE strata_data.files (
  tenant_id uuid NOT NULL,
  key text COLLATE "C" NOT NULL CHECK (octet_length(key) BETWEEN 1 AND 1024),
  size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
  content_type text NOT NULL,
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  version integer NOT NULL CHECK (version > 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, key)
);
-- Which blobs are still referenced (the orphan sweep asks for the ones it found).
CREATE INDEX files_by_blob ON strata_data.files (tenant_id, sha256);
ALTER TABLE strata_data.files ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata_data.files FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON strata_data.files TO strata_app
  USING (tenant_id = strata_data.current_tenant_id()) WITH CHECK (tenant_id = strata_data.current_tenant_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON strata_data.files TO strata_app;
