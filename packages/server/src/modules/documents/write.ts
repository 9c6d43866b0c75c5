import { Ajv, type ValidateFunction } from 'ajv';
import type { Queryable } from '../../platform/db/driver.js';
import { AppError, errors } from '../../platform/errors.js';
import { iso } from '../../platform/ids.js';
import type { Entitlements, PlanCatalog } from '../plans/entitlements.js';
import { isPlainObject, mergePatch } from './merge-patch.js';
import { textProblem } from './query.js';

/**
 * The one write path for documents. HTTP writes, batches and sync pushes all come through
 * applyWrite() inside a withTenantWrite transaction, so versioning, validation, quotas and the change
 * feed behave the same whichever door a write came in by.
 */

export type VectorMetric = 'cosine' | 'l2' | 'inner_product';
export interface VectorSettings {
  field: string;
  dimensions: number;
  metric: VectorMetric;
}
export interface CollectionSettings {
  vector?: VectorSettings;
  indexes?: { name: string; path: string }[];
}

export interface Document {
  id: string;
  collection: string;
  version: number;
  deleted: boolean;
  created_at: string;
  updated_at: string;
  data: Record<string, unknown> | null;
}

export interface DocumentRow {
  id: string;
  collection: string;
  version: number;
  deleted: boolean;
  body: Record<string, unknown> | null;
  created_at: Date | string;
  updated_at: Date | string;
}

export const toDocument = (r: DocumentRow): Document => ({
  id: r.id,
  collection: r.collection,
  version: Number(r.version),
  deleted: r.deleted,
  created_at: iso(r.created_at) as string,
  updated_at: iso(r.updated_at) as string,
  data: r.body,
});

export type WriteOp =
  | { op: 'create'; collection: string; id: string; data: unknown }
  | { op: 'put'; collection: string; id: string; data: unknown }
  | { op: 'patch'; collection: string; id: string; patch: unknown }
  | { op: 'delete'; collection: string; id: string };

export interface Preconditions {
  /** HTTP If-Match: the document must exist (and have this version, unless '*'); else 412. */
  ifMatch?: number | '*';
  /** Sync compare-and-set: the stored version (tombstones count; 0 = never written) must equal this; else version_conflict. */
  baseVersion?: number;
}

export interface WriteContext {
  tenantId: string;
  ent: Entitlements;
  plans: PlanCatalog;
  maxDocumentBytes: number;
  origin?: { clientId: string; mutationId: string };
}

export interface WriteResult {
  document: Document;
  created: boolean;
}

interface LoadRow {
  json_schema: object | null;
  settings: CollectionSettings;
  doc_count: number;
  /** Documents plus files: what the storage_bytes quota counts. */
  stored_bytes: number;
  version: number | null;
  body: Record<string, unknown> | null;
  deleted: boolean | null;
  size_bytes: number | null;
  created_at: Date | null;
  updated_at: Date | null;
}

const tenantSchemas = new Ajv({ strict: false, allErrors: true });
const compiled = new Map<string, ValidateFunction>();

function validatorFor(schema: object): ValidateFunction {
  const key = JSON.stringify(schema);
  let validate = compiled.get(key);
  if (!validate) {
    if (compiled.size >= 1000) compiled.clear();
    validate = tenantSchemas.compile(schema);
    compiled.set(key, validate);
  }
  return validate;
}

/** Reads a dotted path ("a.b.0") out of a JSON value. */
export function getPath(value: unknown, path: string): unknown {
  let cur = value;
  for (const seg of path.split('.')) {
    if (Array.isArray(cur) && /^\d+$/.test(seg)) cur = cur[Number(seg)];
    else if (isPlainObject(cur)) cur = cur[seg];
    else return undefined;
  }
  return cur;
}

export const MAX_DOCUMENT_DEPTH = 64;

/**
 * What JSON allows but a stored document cannot hold: numbers outside double range (JSON.parse turns
 * 1e400 into Infinity, which would be stored as null), U+0000 and unpaired surrogates (PostgreSQL's jsonb
 * refuses them), and nesting past MAX_DOCUMENT_DEPTH. Returns the path of the first offender.
 */
function unstorable(value: unknown, path: string, depth: number): { path: string; message: string } | undefined {
  if (typeof value === 'number')
    return Number.isFinite(value) ? undefined : { path, message: 'is not a finite number' };
  if (typeof value === 'string') {
    const problem = textProblem(value);
    return problem ? { path, message: problem } : undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  if (depth > MAX_DOCUMENT_DEPTH) return { path, message: `nests deeper than ${MAX_DOCUMENT_DEPTH} levels` };
  for (const [key, child] of Object.entries(value)) {
    const at = `${path}/${key}`;
    const keyProblem = textProblem(key);
    if (keyProblem) return { path: at, message: `key ${keyProblem}` };
    const found = unstorable(child, at, depth + 1);
    if (found) return found;
  }
  return undefined;
}

function checkDocument(data: unknown, schema: object | null, settings: CollectionSettings, maxBytes: number) {
  if (!isPlainObject(data)) {
    throw new AppError('validation_failed', 'A document must be a JSON object', {
      errors: [{ path: 'data', message: 'must be object' }],
    });
  }
  const bad = unstorable(data, 'data', 1);
  if (bad) throw new AppError('validation_failed', `${bad.path} ${bad.message}`, { errors: [bad] });
  const text = JSON.stringify(data);
  const size = Buffer.byteLength(text);
  if (size > maxBytes) {
    throw new AppError('document_too_large', `The document is ${size} bytes; the limit is ${maxBytes} bytes`, {
      size_bytes: size,
      limit_bytes: maxBytes,
    });
  }
  if (schema) {
    const validate = validatorFor(schema);
    if (!validate(data)) {
      const problems = (validate.errors ?? []).map((e) => ({
        path: `data${e.instancePath}`,
        message: e.message ?? 'is invalid',
      }));
      throw new AppError(
        'validation_failed',
        `The document does not match the collection's schema: ${problems.map((p) => `${p.path} ${p.message}`).join('; ')}`,
        { errors: problems },
      );
    }
  }
  let embedding: number[] | null = null;
  const vector = settings.vector;
  if (vector) {
    const value = getPath(data, vector.field);
    if (value !== undefined && value !== null) {
      const ok =
        Array.isArray(value) &&
        value.length === vector.dimensions &&
        value.every((x) => typeof x === 'number' && Number.isFinite(x));
      if (!ok) {
        const path = `data/${vector.field.replaceAll('.', '/')}`;
        throw new AppError('validation_failed', `${path} must be an array of ${vector.dimensions} finite numbers`, {
          errors: [{ path, message: `must be an array of ${vector.dimensions} numbers` }],
        });
      }
      embedding = value as number[];
    }
  }
  return { text, size, embedding };
}

// The collection, the tenant's counts, and the document locked for the rest of the transaction (when it exists).
const LOAD = `
  SELECT c.json_schema, c.settings, s.doc_count, s.doc_bytes + s.file_bytes AS stored_bytes,
         d.version, d.body, d.deleted, d.size_bytes, d.created_at, d.updated_at
    FROM strata_data.collections c
   CROSS JOIN strata_data.tenant_sequences s
    LEFT JOIN LATERAL (
      SELECT * FROM strata_data.documents
       WHERE tenant_id = c.tenant_id AND collection = c.name AND id = $2
         FOR UPDATE
    ) d ON true
   WHERE c.name = $1`;

/*
 * One statement: the document row and its change-feed entry. The change gets a temporary negative number;
 * the tenant's real sequence number (and the count deltas) are applied as the transaction commits (tenant
 * migration 0005). The upsert only replaces the version it loaded: a document created by a concurrent
 * writer after the load makes it return no row, and the caller loads again.
 */
const WRITE = `
  WITH d AS (
    INSERT INTO strata_data.documents AS doc
           (tenant_id, collection, id, version, body, deleted, embedding, size_bytes)
    VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::double precision[], $8)
    ON CONFLICT (tenant_id, collection, id) DO UPDATE SET
      version = EXCLUDED.version, body = EXCLUDED.body, deleted = EXCLUDED.deleted,
      embedding = EXCLUDED.embedding, size_bytes = EXCLUDED.size_bytes, updated_at = now(),
      created_at = CASE WHEN doc.deleted THEN now() ELSE doc.created_at END
    WHERE doc.version = $4 - 1
    RETURNING id, collection, version, deleted, body, created_at, updated_at
  ), c AS (
    INSERT INTO strata_data.changes
           (tenant_id, seq, collection, doc_id, version, deleted, body, client_id, mutation_id, doc_delta, bytes_delta)
    SELECT $1, -nextval('strata_data.change_placeholders'), $2, $3, $4, $6, $5::jsonb, $11, $12, $9, $10 FROM d
  )
  SELECT * FROM d`;

/** Applies one write inside a withTenantWrite transaction. Throws AppError (and writes nothing) when refused. */
export async function applyWrite(
  tx: Queryable,
  ctx: WriteContext,
  op: WriteOp,
  pre: Preconditions = {},
): Promise<WriteResult> {
  // A document that did not exist at the load can be created by a concurrent writer before our insert;
  // the second attempt then finds it, locked, and decides again.
  for (let attempt = 1; ; attempt++) {
    const result = await attemptWrite(tx, ctx, op, pre);
    if (result) return result;
    if (attempt >= 3) throw new AppError('conflict', `The document "${op.id}" is being created concurrently; retry`);
  }
}

async function attemptWrite(
  tx: Queryable,
  ctx: WriteContext,
  op: WriteOp,
  pre: Preconditions,
): Promise<WriteResult | undefined> {
  const loaded = await tx.query<LoadRow>(LOAD, [op.collection, op.id]);
  const row = loaded.rows[0];
  if (!row) throw errors.notFound('collection');
  const exists = row.version !== null;
  const live = exists && row.deleted === false;
  const current: Document | null = exists
    ? toDocument({
        id: op.id,
        collection: op.collection,
        version: row.version as number,
        deleted: row.deleted as boolean,
        body: row.body,
        created_at: row.created_at as Date,
        updated_at: row.updated_at as Date,
      })
    : null;

  if (pre.baseVersion !== undefined && pre.baseVersion !== (current?.version ?? 0)) {
    throw new AppError(
      'version_conflict',
      `The document is at version ${current?.version ?? 0}, not ${pre.baseVersion}`,
      { current },
    );
  }
  if (pre.ifMatch !== undefined) {
    if (!live || (pre.ifMatch !== '*' && pre.ifMatch !== current?.version)) {
      throw new AppError(
        'precondition_failed',
        live ? `The document is at version ${current?.version}` : 'The document does not exist',
        { current_version: live ? current?.version : null },
      );
    }
  }

  let data: unknown = null;
  switch (op.op) {
    case 'create':
      if (live) throw new AppError('conflict', `A document with id "${op.id}" already exists`);
      data = op.data;
      break;
    case 'put':
      data = op.data;
      break;
    case 'patch':
      if (!live) throw errors.notFound('document');
      data = mergePatch(current?.data, op.patch);
      break;
    case 'delete':
      if (!live && pre.baseVersion === undefined) throw errors.notFound('document');
      break;
  }

  const deleting = op.op === 'delete';
  const checked = deleting ? null : checkDocument(data, row.json_schema, row.settings ?? {}, ctx.maxDocumentBytes);
  const docDelta = (deleting ? 0 : 1) - (live ? 1 : 0);
  const bytesDelta = (checked?.size ?? 0) - (live ? (row.size_bytes ?? 0) : 0);
  if (docDelta > 0) ctx.plans.requireQuota(ctx.ent, 'documents', Number(row.doc_count), docDelta);
  if (bytesDelta > 0) ctx.plans.requireQuota(ctx.ent, 'storage_bytes', Number(row.stored_bytes), bytesDelta);

  const version = (current?.version ?? 0) + 1;
  const written = await tx.query<DocumentRow>(WRITE, [
    ctx.tenantId,
    op.collection,
    op.id,
    version,
    checked?.text ?? null,
    deleting,
    checked?.embedding ?? null,
    checked?.size ?? 0,
    docDelta,
    bytesDelta,
    ctx.origin?.clientId ?? null,
    ctx.origin?.mutationId ?? null,
  ]);
  const out = written.rows[0];
  if (!out) return undefined;
  return { document: toDocument(out), created: !live && !deleting };
}
