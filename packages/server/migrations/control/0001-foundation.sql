-- Control plane foundation: roles, plans, tenants, users, memberships, invitations, credentials.

-- Roles are cluster-wide; concurrent creators may race, so both errors mean "already there".
DO $$ BEGIN
  CREATE ROLE strata_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN
  CREATE ROLE strata_system NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
GRANT strata_app TO CURRENT_USER;
GRANT strata_system TO CURRENT_USER;

GRANT USAGE ON SCHEMA strata TO strata_app, strata_system;

-- The tenant id of the current transaction, or NULL when none is set (never "all tenants").
CREATE FUNCTION strata.current_tenant_id() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('strata.tenant_id', true), '')::uuid $$;
GRANT EXECUTE ON FUNCTION strata.current_tenant_id() TO strata_app, strata_system;

-- Plans are a reference table, written from the plans config at boot.
CREATE TABLE strata.plans (
  id text PRIMARY KEY,
  definition jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON strata.plans TO strata_app, strata_system;

CREATE TABLE strata.tenants (
  id uuid PRIMARY KEY,
  slug text NOT NULL UNIQUE,
  name text NOT NULL,
  plan_id text NOT NULL REFERENCES strata.plans (id),
  plan_overrides jsonb NOT NULL DEFAULT '{}',
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'deleted')),
  data_region text NOT NULL,
  allowed_regions text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  suspended_at timestamptz,
  deleted_at timestamptz,
  purge_after timestamptz,
  CHECK (data_region = ANY (allowed_regions))
);
-- Tenants are the operator's registry; a tenant sees only its own row.
ALTER TABLE strata.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata.tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_self ON strata.tenants TO strata_app USING (id = strata.current_tenant_id());
CREATE POLICY system_all ON strata.tenants TO strata_system USING (true);
-- Tenant-side credentials may rename their tenant; plan, status and regions change only through the operator.
GRANT SELECT, UPDATE (name, updated_at) ON strata.tenants TO strata_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON strata.tenants TO strata_system;

CREATE TABLE strata.users (
  id uuid PRIMARY KEY,
  email text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT ON strata.users TO strata_app, strata_system;

CREATE TABLE strata.memberships (
  tenant_id uuid NOT NULL REFERENCES strata.tenants (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES strata.users (id) ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'analyst', 'viewer')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON strata.memberships (user_id);

CREATE TABLE strata.invitations (
  tenant_id uuid NOT NULL REFERENCES strata.tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL,
  email text NOT NULL,
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'analyst', 'viewer')),
  token_hash text NOT NULL UNIQUE,
  expires_at timestamptz NOT NULL,
  accepted_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE strata.api_keys (
  tenant_id uuid NOT NULL REFERENCES strata.tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL,
  public_id text NOT NULL UNIQUE,
  name text NOT NULL,
  secret_hash text NOT NULL,
  scopes text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz,
  PRIMARY KEY (tenant_id, id)
);

-- Every control table keyed by tenant: forced RLS, a tenant policy for the app role, and a
-- policy for the control role that resolves credentials and serves operator listings.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['memberships', 'invitations', 'api_keys'] LOOP
    EXECUTE format('ALTER TABLE strata.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE strata.%I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON strata.%I TO strata_app USING (tenant_id = strata.current_tenant_id()) WITH CHECK (tenant_id = strata.current_tenant_id())', t);
    EXECUTE format('CREATE POLICY system_all ON strata.%I TO strata_system USING (true)', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON strata.%I TO strata_app, strata_system', t);
  END LOOP;
END $$;

CREATE TABLE strata.operator_keys (
  id uuid PRIMARY KEY,
  public_id text NOT NULL UNIQUE,
  name text NOT NULL,
  secret_hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  last_used_at timestamptz
);
GRANT SELECT, INSERT, UPDATE ON strata.operator_keys TO strata_system;

-- Portal sessions and one-time login tokens belong to users, not tenants.
CREATE TABLE strata.sessions (
  id uuid PRIMARY KEY,
  public_id text NOT NULL UNIQUE,
  user_id uuid NOT NULL REFERENCES strata.users (id) ON DELETE CASCADE,
  secret_hash text NOT NULL,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE strata.login_tokens (
  token_hash text PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES strata.users (id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL,
  used_at timestamptz
);
GRANT SELECT, INSERT, UPDATE ON strata.sessions, strata.login_tokens TO strata_system;
