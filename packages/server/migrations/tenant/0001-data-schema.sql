-- Tenant datastore foundation: the schema tenant data lives in. Collections, documents and the
-- change feed arrive in later migrations; every table here is keyed by tenant_id with forced RLS
-- and, unlike control tables, has no policy for the control role.
-- A tenant datastore may be a database of its own (dedicated, BYOD), so it brings its own role
-- and context function rather than relying on the control plane's.
DO $$ BEGIN
  CREATE ROLE strata_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
GRANT strata_app TO CURRENT_USER;

CREATE SCHEMA IF NOT EXISTS strata_data;
GRANT USAGE ON SCHEMA strata_data TO strata_app;

CREATE FUNCTION strata_data.current_tenant_id() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('strata.tenant_id', true), '')::uuid $$;
GRANT EXECUTE ON FUNCTION strata_data.current_tenant_id() TO strata_app;

CREATE TABLE strata_data.tenant_sequences (
  tenant_id uuid PRIMARY KEY,
  epoch integer NOT NULL DEFAULT 1,
  last_seq bigint NOT NULL DEFAULT 0
);
ALTER TABLE strata_data.tenant_sequences ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata_data.tenant_sequences FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON strata_data.tenant_sequences TO strata_app
  USING (tenant_id = strata_data.current_tenant_id()) WITH CHECK (tenant_id = strata_data.current_tenant_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON strata_data.tenant_sequences TO strata_app;
