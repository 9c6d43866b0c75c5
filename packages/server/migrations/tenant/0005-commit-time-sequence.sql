-- Change sequence numbers are assigned at commit time.
--
-- Until now every write transaction locked its tenant's row in tenant_sequences first and held it to the
-- end, so a tenant's writes ran one at a time, network round trips included. Now a write inserts its
-- change rows with a temporary negative number, and a deferred constraint trigger, which runs as the
-- transaction commits, takes the tenant's sequence row, numbers the changes and applies the document and
-- byte counts. The lock is held only from that moment to the end of the commit, so writers of one tenant
-- overlap in everything but their commits, and sequence order is still commit order: the next committer
-- can take the row only after this one's commit is visible.
CREATE SEQUENCE strata_data.change_placeholders;
GRANT USAGE ON SEQUENCE strata_data.change_placeholders TO strata_app;

ALTER TABLE strata_data.changes
  ADD COLUMN doc_delta integer NOT NULL DEFAULT 0,
  ADD COLUMN bytes_delta bigint NOT NULL DEFAULT 0;
GRANT UPDATE (seq) ON strata_data.changes TO strata_app;

CREATE FUNCTION strata_data.number_change() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
DECLARE
  assigned bigint;
BEGIN
  UPDATE strata_data.tenant_sequences
     SET last_seq = last_seq + 1, doc_count = doc_count + NEW.doc_delta, doc_bytes = doc_bytes + NEW.bytes_delta
   WHERE tenant_id = NEW.tenant_id
  RETURNING last_seq INTO assigned;
  IF assigned IS NULL THEN
    RAISE EXCEPTION 'strata: tenant % has no sequence row', NEW.tenant_id;
  END IF;
  UPDATE strata_data.changes SET seq = assigned WHERE tenant_id = NEW.tenant_id AND seq = NEW.seq;
  RETURN NULL;
END $$;
GRANT EXECUTE ON FUNCTION strata_data.number_change() TO strata_app;

CREATE CONSTRAINT TRIGGER number_change AFTER INSERT ON strata_data.changes
  DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW WHEN (NEW.seq < 0) EXECUTE FUNCTION strata_data.number_change();
