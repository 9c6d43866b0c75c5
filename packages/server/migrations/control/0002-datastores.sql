-- Datastores that belong to one tenant (today: a tenant's own database, "bring your own database").
-- Shared datastores come from configuration (one per region) and are not listed here.
-- Operator-side registry: the request role has no access; connection settings are envelope-encrypted
-- (the keyring, context "datastore:<id>") and never returned by the API.
CREATE TABLE strata.datastores (
  id uuid PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('dedicated', 'byod')),
  owner_tenant uuid NOT NULL REFERENCES strata.tenants (id) ON DELETE CASCADE,
  region text NOT NULL,
  config_ciphertext text NOT NULL,
  -- the URL with its password replaced by ***, for the operator and the tenant to recognise it
  display_url text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE strata.datastores ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata.datastores FORCE ROW LEVEL SECURITY;
CREATE POLICY system_all ON strata.datastores TO strata_system USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON strata.datastores TO strata_system;

-- Where the tenant's data lives; null means the shared datastore of its data region.
ALTER TABLE strata.tenants ADD COLUMN datastore_id uuid REFERENCES strata.datastores (id);
