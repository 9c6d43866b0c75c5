import type { Platform } from '../../platform/context.js';
import type { Queryable } from '../../platform/db/driver.js';
import { sqlLiteral } from '../../platform/db/driver.js';
import { readInTenant, withTenant } from '../../platform/db/tenant-context.js';
import { AppError, errors } from '../../platform/errors.js';
import { newId } from '../../platform/ids.js';
import type { TenantAccess } from '../auth/credentials.js';
import type { ChangeNotifier } from '../changes/notifier.js';
import type { IndexManager } from '../collections/indexes.js';
import { claim, fingerprint, remember } from './idempotency.js';
import { checkFields, compileFilter, compileQuery, encodeQueryCursor, Params, project } from './query.js';
import {
  applyWrite,
  type Document,
  type DocumentRow,
  type Preconditions,
  toDocument,
  type VectorMetric,
  type VectorSettings,
  type WriteContext,
  type WriteOp,
  type WriteResult,
} from './write.js';

export interface SearchInput {
  vector: number[];
  k?: number;
  metric?: VectorMetric;
  filter?: unknown;
  fields?: unknown;
  /** Skip the approximate index and compute every distance (the path datastores without pgvector always take). */
  exact?: boolean;
}

const PGVECTOR_OP: Record<VectorMetric, string> = { cosine: '<=>', l2: '<->', inner_product: '<#>' };
const EXACT_FN: Record<VectorMetric, string> = {
  cosine: 'strata_data.cosine_distance',
  l2: 'strata_data.l2_distance',
  inner_product: 'strata_data.negative_inner_product',
};

export interface QueryInput {
  filter?: unknown;
  sort?: unknown;
  fields?: unknown;
  limit?: number;
  cursor?: string;
  count?: boolean;
}

export interface QueryResult {
  data: Document[];
  next_cursor: string | null;
  count?: number;
}

export interface BatchOperation {
  op: 'create' | 'put' | 'patch' | 'delete';
  collection: string;
  id?: string;
  data?: Record<string, unknown>;
  if_version?: number;
}

export interface Checkpoint {
  epoch: number;
  seq: number;
}

export class DocumentService {
  constructor(
    private readonly platform: Platform,
    private readonly notifier: ChangeNotifier,
    private readonly indexes: IndexManager,
  ) {}

  /** What applyWrite needs to know about the caller: its tenant, its plan's limits, where a sync write came from. */
  writeContext(access: TenantAccess, origin?: WriteContext['origin']): WriteContext {
    return {
      tenantId: access.tenantId,
      ent: this.platform.plans.entitlements(access.plan.id, access.plan.overrides),
      plans: this.platform.plans,
      maxDocumentBytes: this.platform.config.maxDocumentBytes,
      ...(origin ? { origin } : {}),
    };
  }

  /**
   * Runs writes in one tenant-write transaction and wakes change streams once it has committed. Writers
   * that lock the same documents in opposite orders (two batches, say) can deadlock; PostgreSQL aborts one,
   * and it is run again.
   */
  async write<T>(tenantId: string, fn: (tx: Queryable) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.platform.router.withTenantWrite(tenantId, fn);
        this.notifier.notify(tenantId);
        return result;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (attempt >= 3 || (code !== '40P01' && code !== '40001')) throw err;
      }
    }
  }

  /**
   * The sequence numbers the tenant's changes got when they committed (they are assigned at commit), and
   * the tenant's checkpoint after them. Looked up by (collection, id, version), which names one change.
   */
  async committed(
    tenantId: string,
    docs: Pick<Document, 'collection' | 'id' | 'version'>[],
  ): Promise<{ seqs: Map<string, number>; checkpoint: Checkpoint }> {
    return this.platform.router.withTenant(tenantId, async (tx) => {
      const { rows } = await tx.query<{ collection: string; doc_id: string; version: number; seq: number }>(
        `SELECT c.collection, c.doc_id, c.version, max(c.seq) AS seq
           FROM strata_data.changes c
           JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS k(collection, id, version)
             ON c.collection = k.collection AND c.doc_id = k.id AND c.version = k.version
          GROUP BY 1, 2, 3`,
        [docs.map((d) => d.collection), docs.map((d) => d.id), docs.map((d) => d.version)],
      );
      const seqs = new Map(rows.map((r) => [changeKey(r.collection, r.doc_id, r.version), Number(r.seq)]));
      // Read after the commit: at or above every change of this write (others may have committed since).
      return { seqs, checkpoint: await readCheckpoint(tx) };
    });
  }

  async #single(access: TenantAccess, op: WriteOp, pre: Preconditions = {}): Promise<WriteResult> {
    const ctx = this.writeContext(access);
    return this.write(access.tenantId, (tx) => applyWrite(tx, ctx, op, pre));
  }

  /** POST: creates with a server id unless one is given. With an Idempotency-Key a retry returns the first response. */
  async create(
    access: TenantAccess,
    collection: string,
    input: { id?: string; data: Record<string, unknown> },
    idempotencyKey?: string,
  ): Promise<{ status: number; document: Document; replayed: boolean }> {
    const ctx = this.writeContext(access);
    const id = input.id ?? newId();
    const out = await this.write(access.tenantId, async (tx) => {
      if (idempotencyKey) {
        const print = fingerprint(['create', collection, input]);
        const before = await claim(tx, access.tenantId, 'http', 'http', idempotencyKey, print);
        if (before) return { replayed: before };
      }
      const result = await applyWrite(tx, ctx, { op: 'create', collection, id, data: input.data });
      if (idempotencyKey) await remember(tx, 'http', idempotencyKey, { status: 201, response: result.document });
      return { result };
    });
    if ('replayed' in out && out.replayed) {
      return { status: out.replayed.status, document: out.replayed.response as Document, replayed: true };
    }
    return { status: 201, document: (out as { result: WriteResult }).result.document, replayed: false };
  }

  /** One round trip: collection and id are checked against strict patterns by the route, and again by sqlLiteral. */
  async get(tenantId: string, collection: string, id: string): Promise<Document> {
    const { rows } = await readInTenant<DocumentRow>(
      await this.platform.router.forTenant(tenantId),
      tenantId,
      `SELECT id, collection, version, deleted, body, created_at, updated_at FROM strata_data.documents
        WHERE collection = ${sqlLiteral(collection)} AND id = ${sqlLiteral(id)} AND NOT deleted`,
    );
    const row = rows[0];
    if (!row) throw errors.notFound('document');
    return toDocument(row);
  }

  put(access: TenantAccess, collection: string, id: string, data: Record<string, unknown>, ifMatch?: number | '*') {
    return this.#single(access, { op: 'put', collection, id, data }, ifMatch === undefined ? {} : { ifMatch });
  }

  patch(access: TenantAccess, collection: string, id: string, patch: unknown, ifMatch?: number | '*') {
    return this.#single(access, { op: 'patch', collection, id, patch }, ifMatch === undefined ? {} : { ifMatch });
  }

  remove(access: TenantAccess, collection: string, id: string, ifMatch?: number | '*') {
    return this.#single(access, { op: 'delete', collection, id }, ifMatch === undefined ? {} : { ifMatch });
  }

  /** All or nothing: the first operation that fails rolls back the batch and is named in the error. */
  async batch(
    access: TenantAccess,
    operations: BatchOperation[],
  ): Promise<{ results: { op: string; document: Document }[]; checkpoint: Checkpoint }> {
    const ctx = this.writeContext(access);
    const results = await this.write(access.tenantId, async (tx) => {
      const results: { op: string; document: Document }[] = [];
      for (const [index, o] of operations.entries()) {
        const id = o.id ?? (o.op === 'create' ? newId() : undefined);
        try {
          if (!id) throw new AppError('validation_failed', `operations/${index}/id is required for ${o.op}`);
          const op: WriteOp =
            o.op === 'patch'
              ? { op: 'patch', collection: o.collection, id, patch: o.data ?? {} }
              : o.op === 'delete'
                ? { op: 'delete', collection: o.collection, id }
                : { op: o.op, collection: o.collection, id, data: o.data };
          const done = await applyWrite(tx, ctx, op, o.if_version === undefined ? {} : { ifMatch: o.if_version });
          results.push({ op: o.op, document: done.document });
        } catch (err) {
          if (!(err instanceof AppError)) throw err;
          throw new AppError('batch_failed', `Operation ${index} (${o.op}) failed: ${err.message}`, {
            index,
            error: { code: err.code, status: err.status, detail: err.message, ...err.extra },
          });
        }
      }
      return results;
    });
    const { checkpoint } = await this.committed(
      access.tenantId,
      results.map((r) => r.document),
    );
    return { results, checkpoint };
  }

  async query(tenantId: string, collection: string, input: QueryInput): Promise<QueryResult> {
    const q = compileQuery(tenantId, collection, input);
    const { rows, count, exists } = await this.platform.router.withTenant(tenantId, async (tx) => {
      const r = await tx.query<DocumentRow & Record<string, unknown>>(q.sql, q.params);
      const n = input.count ? (await tx.query<{ n: number }>(q.countSql, q.countParams)).rows[0]?.n : undefined;
      const found =
        r.rows.length > 0 ||
        (await tx.query('SELECT 1 FROM strata_data.collections WHERE name = $1', [collection])).rows.length > 0;
      return { rows: r.rows, count: n, exists: found };
    });
    if (!exists) throw errors.notFound('collection');
    const more = rows.length > q.limit;
    const pageRows = more ? rows.slice(0, q.limit) : rows;
    const last = pageRows[pageRows.length - 1];
    const data = pageRows.map((r) => {
      const doc = toDocument(r);
      return q.fields && doc.data ? { ...doc, data: project(doc.data, q.fields) } : doc;
    });
    const nextCursor =
      more && last
        ? encodeQueryCursor(
            q.sort.select.map((_, i) => last[`s${i}`]),
            q.fingerprint,
          )
        : null;
    return { data, next_cursor: nextCursor, ...(count === undefined ? {} : { count }) };
  }

  /** The plan PostgreSQL chooses for a query's page statement, as the tenant, with the same parameters. */
  async explainQuery(tenantId: string, collection: string, input: QueryInput): Promise<string> {
    const q = compileQuery(tenantId, collection, input);
    const plan = await this.platform.router.withTenant(tenantId, (tx) =>
      tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${q.sql}`, q.params),
    );
    return plan.rows.map((r) => r['QUERY PLAN']).join('\n');
  }

  /** Nearest neighbours by the collection's vector field: HNSW through pgvector where present, exact SQL otherwise. */
  async search(
    tenantId: string,
    collection: string,
    input: SearchInput,
  ): Promise<{ data: { distance: number; document: Document }[]; exact: boolean }> {
    const fields = checkFields(input.fields);
    const k = input.k ?? 10;
    const db = await this.platform.router.forTenant(tenantId);
    const pgvector = !input.exact && (await this.indexes.hasPgvector(db));
    return withTenant(db, tenantId, async (tx) => {
      const found = await tx.query<{ settings: { vector?: VectorSettings } }>(
        'SELECT settings FROM strata_data.collections WHERE name = $1',
        [collection],
      );
      const row = found.rows[0];
      if (!row) throw errors.notFound('collection');
      const vector = row.settings?.vector;
      if (!vector) throw new AppError('bad_request', `The collection "${collection}" declares no vector field`);
      if (input.vector.length !== vector.dimensions) {
        throw new AppError('validation_failed', `vector must have ${vector.dimensions} numbers`, {
          errors: [{ path: 'body/vector', message: `must have ${vector.dimensions} items` }],
        });
      }
      const metric = input.metric ?? vector.metric;
      const p = new Params();
      const base = `d.tenant_id = ${p.add(tenantId)}::uuid AND d.collection = ${p.add(collection)} AND NOT d.deleted
                    AND d.embedding IS NOT NULL AND ${compileFilter(p, input.filter)}`;
      const dims = Number(vector.dimensions);
      let distance: string;
      if (pgvector) {
        // Iterative scans keep returning neighbours until k rows pass the filter (pgvector 0.8).
        await tx.query(
          "SELECT set_config('hnsw.iterative_scan', 'strict_order', true), set_config('hnsw.ef_search', $1, true)",
          [String(Math.max(40, k * 2))],
        );
        distance = `(d.embedding::vector(${dims}) ${PGVECTOR_OP[metric]} ${p.add(JSON.stringify(input.vector))}::vector(${dims}))`;
      } else {
        distance = `${EXACT_FN[metric]}(d.embedding, ${p.add(input.vector)}::double precision[])`;
      }
      const r = await tx.query<DocumentRow & { distance: number }>(
        `SELECT d.id, d.collection, d.version, d.deleted, d.body, d.created_at, d.updated_at, ${distance} AS distance
           FROM strata_data.documents d WHERE ${base}
          ORDER BY ${distance}${pgvector ? '' : ', d.id'} LIMIT ${p.add(k)}`,
        p.values,
      );
      return {
        exact: !pgvector,
        data: r.rows.map((x) => {
          const doc = toDocument(x);
          return {
            distance: Number(x.distance),
            document: fields && doc.data ? { ...doc, data: project(doc.data, fields) } : doc,
          };
        }),
      };
    });
  }
}

export const changeKey = (collection: string, id: string, version: number) => `${collection}/${id}/${version}`;

export async function readCheckpoint(tx: Queryable): Promise<Checkpoint> {
  const { rows } = await tx.query<{ epoch: number; last_seq: number }>(
    'SELECT epoch, last_seq FROM strata_data.tenant_sequences',
  );
  const row = rows[0];
  return { epoch: row?.epoch ?? 1, seq: Number(row?.last_seq ?? 0) };
}
