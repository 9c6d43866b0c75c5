-- Tenant moves between datastores: one row per move, its phase and progress, so a restarted node can
-- finish or undo a move that was under way (see modules/placement/move.ts).
CREATE TABLE strata.moves (
  id uuid PRIMARY KEY,
  owner_tenant uuid NOT NULL REFERENCES strata.tenants (id) ON DELETE CASCADE,
  source_region text NOT NULL,
  source_datastore uuid,
  target_region text NOT NULL,
  phase text NOT NULL CHECK (phase IN ('copying', 'fenced', 'switched', 'finished', 'failed')),
  documents_total bigint NOT NULL DEFAULT 0,
  documents_copied bigint NOT NULL DEFAULT 0,
  pause_ms integer,
  error text,
  started_at timestamptz NOT NULL DEFAULT now(),
  switched_at timestamptz,
  finished_at timestamptz
);
CREATE INDEX moves_by_tenant ON strata.moves (owner_tenant, started_at);
ALTER TABLE strata.moves ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata.moves FORCE ROW LEVEL SECURITY;
CREATE POLICY system_all ON strata.moves TO strata_system USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON strata.moves TO strata_system;
