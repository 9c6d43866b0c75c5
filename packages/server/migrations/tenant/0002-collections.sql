-- Collections: a tenant's named sets of documents, with optional JSON Schema validation and room for
-- settings later capabilities add (encrypted fields, PII policy, retention, vector fields).
CREATE TABLE strata_data.collections (
  tenant_id uuid NOT NULL,
  name text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
  json_schema jsonb,
  settings jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name)
);
ALTER TABLE strata_data.collections ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata_data.collections FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON strata_data.collections TO strata_app
  USING (tenant_id = strata_data.current_tenant_id()) WITH CHECK (tenant_id = strata_data.current_tenant_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON strata_data.collections TO strata_app;
