-- A tenant that has moved to another datastore leaves its sequence row here marked `moved`: a write that
-- still reaches this datastore (a node whose placement cache is a few seconds old) fails at commit with
-- SQLSTATE 55P03, which the API answers with 503 and Retry-After, and the client's retry goes to the new
-- datastore. Nothing can commit here after the move's final copy.
ALTER TABLE strata_data.tenant_sequences ADD COLUMN moved boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION strata_data.number_change() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
DECLARE
  assigned bigint;
  gone boolean;
BEGIN
  UPDATE strata_data.tenant_sequences
     SET last_seq = last_seq + 1, doc_count = doc_count + NEW.doc_delta, doc_bytes = doc_bytes + NEW.bytes_delta
   WHERE tenant_id = NEW.tenant_id
  RETURNING last_seq, moved INTO assigned, gone;
  IF assigned IS NULL THEN
    RAISE EXCEPTION 'strata: tenant % has no sequence row', NEW.tenant_id;
  END IF;
  IF gone THEN
    RAISE EXCEPTION 'strata: tenant % has moved to another datastore', NEW.tenant_id USING ERRCODE = '55P03';
  END IF;
  UPDATE strata_data.changes SET seq = assigned WHERE tenant_id = NEW.tenant_id AND seq = NEW.seq;
  RETURN NULL;
END $$;
