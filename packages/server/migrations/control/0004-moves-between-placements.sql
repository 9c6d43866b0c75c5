-- Moves between any two placements (shared, dedicated, the tenant's own database), not only regions:
-- which kind of datastore the move left and went to, and the registered datastore it went to (null: the
-- target region's shared datastore). A target datastore is registered before the copy starts; a move that
-- fails or is undone discards it.
ALTER TABLE strata.moves
  ADD COLUMN source_kind text NOT NULL DEFAULT 'shared' CHECK (source_kind IN ('shared', 'dedicated', 'byod')),
  ADD COLUMN target_kind text NOT NULL DEFAULT 'shared' CHECK (target_kind IN ('shared', 'dedicated', 'byod')),
  ADD COLUMN target_datastore uuid;

-- A switched move can be rolled back while its source copy is kept: a move back to that same placement
-- (the same registered datastore), recorded in rolls_back; when it switches, the first move is rolled_back.
ALTER TABLE strata.moves ADD COLUMN rolls_back uuid REFERENCES strata.moves (id) ON DELETE SET NULL;
ALTER TABLE strata.moves DROP CONSTRAINT moves_phase_check;
ALTER TABLE strata.moves ADD CONSTRAINT moves_phase_check
  CHECK (phase IN ('copying', 'fenced', 'switched', 'finished', 'failed', 'rolled_back'));
