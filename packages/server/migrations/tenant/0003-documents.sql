-- Documents, the change feed, and retry bookkeeping.
--
-- Every write transaction of a tenant first locks that tenant's row in tenant_sequences (see
-- withTenantWrite), so a tenant's writes commit one after another: the sequence numbers a tenant's
-- changes get are gapless and in commit order, which is what makes the change feed simple to read
-- correctly (a reader that has seen seq N can never later find a committed change below N).

ALTER TABLE strata_data.tenant_sequences
  ADD COLUMN doc_count bigint NOT NULL DEFAULT 0,
  ADD COLUMN doc_bytes bigint NOT NULL DEFAULT 0;

CREATE TABLE strata_data.documents (
  tenant_id uuid NOT NULL,
  collection text NOT NULL,
  id text NOT NULL CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
  version bigint NOT NULL CHECK (version > 0),
  -- null for a tombstone (a deleted document kept so sync clients learn of the delete)
  body jsonb,
  deleted boolean NOT NULL DEFAULT false,
  -- the collection's vector field, extracted at write time when the collection declares one
  embedding double precision[],
  size_bytes integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, collection, id),
  FOREIGN KEY (tenant_id, collection) REFERENCES strata_data.collections (tenant_id, name) ON DELETE CASCADE,
  CHECK (deleted = (body IS NULL))
);
ALTER TABLE strata_data.documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata_data.documents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON strata_data.documents TO strata_app
  USING (tenant_id = strata_data.current_tenant_id()) WITH CHECK (tenant_id = strata_data.current_tenant_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON strata_data.documents TO strata_app;

-- The change feed: one row per committed change, tombstones included, numbered per tenant.
CREATE TABLE strata_data.changes (
  tenant_id uuid NOT NULL,
  seq bigint NOT NULL,
  collection text NOT NULL,
  doc_id text NOT NULL,
  version bigint NOT NULL,
  deleted boolean NOT NULL,
  body jsonb,
  at timestamptz NOT NULL DEFAULT now(),
  client_id text,
  mutation_id text,
  PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX changes_by_collection ON strata_data.changes (tenant_id, collection, seq);
ALTER TABLE strata_data.changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata_data.changes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON strata_data.changes TO strata_app
  USING (tenant_id = strata_data.current_tenant_id()) WITH CHECK (tenant_id = strata_data.current_tenant_id());
GRANT SELECT, INSERT, DELETE ON strata_data.changes TO strata_app;

-- Responses remembered for retries: HTTP Idempotency-Key (scope 'http') and sync mutations
-- (scope 'sync:<client_id>', key = mutation_id).
CREATE TABLE strata_data.idempotency (
  tenant_id uuid NOT NULL,
  scope text NOT NULL,
  key text NOT NULL,
  fingerprint text NOT NULL,
  status integer NOT NULL,
  response jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, scope, key)
);
CREATE INDEX idempotency_by_age ON strata_data.idempotency (tenant_id, created_at);
ALTER TABLE strata_data.idempotency ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata_data.idempotency FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON strata_data.idempotency TO strata_app
  USING (tenant_id = strata_data.current_tenant_id()) WITH CHECK (tenant_id = strata_data.current_tenant_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON strata_data.idempotency TO strata_app;

-- Exact vector distances in plain SQL, for datastores without pgvector. They match pgvector's
-- operators: <-> (L2), <=> (cosine distance), <#> (negative inner product).
CREATE FUNCTION strata_data.l2_distance(a double precision[], b double precision[]) RETURNS double precision
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT sqrt(sum((x - y) * (x - y))) FROM unnest(a, b) AS t(x, y) $$;
CREATE FUNCTION strata_data.cosine_distance(a double precision[], b double precision[]) RETURNS double precision
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT 1 - sum(x * y) / nullif(sqrt(sum(x * x)) * sqrt(sum(y * y)), 0) FROM unnest(a, b) AS t(x, y) $$;
CREATE FUNCTION strata_data.negative_inner_product(a double precision[], b double precision[]) RETURNS double precision
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT -sum(x * y) FROM unnest(a, b) AS t(x, y) $$;
GRANT EXECUTE ON FUNCTION strata_data.l2_distance(double precision[], double precision[]) TO strata_app;
GRANT EXECUTE ON FUNCTION strata_data.cosine_distance(double precision[], double precision[]) TO strata_app;
GRANT EXECUTE ON FUNCTION strata_data.negative_inner_product(double precision[], double precision[]) TO strata_app;

-- pgvector where the datastore has it (embedded PGlite ships it); the router picks the search path.
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
    CREATE EXTENSION IF NOT EXISTS vector;
  END IF;
END $$;
