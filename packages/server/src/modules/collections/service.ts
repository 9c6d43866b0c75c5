import { Ajv } from 'ajv';
import type { Platform } from '../../platform/context.js';
import type { Queryable } from '../../platform/db/driver.js';
import { AppError, errors } from '../../platform/errors.js';
import { iso } from '../../platform/ids.js';
import type { TenantAccess } from '../auth/credentials.js';
import type { ChangeNotifier } from '../changes/notifier.js';
import type { CollectionSettings, VectorSettings } from '../documents/write.js';
import { type IndexManager, indexName } from './indexes.js';

export interface Collection {
  name: string;
  json_schema: object | null;
  vector: VectorSettings | null;
  indexes: { name: string; path: string }[];
  created_at: string;
  updated_at: string;
}

interface CollectionRow {
  name: string;
  json_schema: object | null;
  settings: CollectionSettings;
  created_at: Date;
  updated_at: Date;
}

export interface CollectionInput {
  name: string;
  json_schema?: object | null;
  vector?: { field: string; dimensions: number; metric?: VectorSettings['metric'] } | null;
}

const COLUMNS = 'name, json_schema, settings, created_at, updated_at';
const toCollection = (r: CollectionRow): Collection => ({
  name: r.name,
  json_schema: r.json_schema,
  vector: r.settings?.vector ?? null,
  indexes: r.settings?.indexes ?? [],
  created_at: iso(r.created_at) as string,
  updated_at: iso(r.updated_at) as string,
});

const loadCollection = (tx: Queryable, name: string) =>
  tx.query<CollectionRow>(`SELECT ${COLUMNS} FROM strata_data.collections WHERE name = $1`, [name]);

const vectorOf = (v: CollectionInput['vector']): VectorSettings | undefined =>
  v ? { field: v.field, dimensions: v.dimensions, metric: v.metric ?? 'cosine' } : undefined;

// Tenant-supplied schemas must compile; documents will be validated against them.
const schemaChecker = new Ajv({ strict: false, allErrors: true });

function checkSchema(schema: object | null | undefined): void {
  if (!schema) return;
  try {
    schemaChecker.compile(schema);
  } catch (err) {
    const message = (err as Error).message;
    throw new AppError('validation_failed', `json_schema is not a valid JSON Schema: ${message}`, {
      errors: [{ path: 'body/json_schema', message }],
    });
  }
}

export class CollectionService {
  constructor(
    private readonly platform: Platform,
    private readonly notifier: ChangeNotifier,
    private readonly indexes: IndexManager,
  ) {}

  async create(access: TenantAccess, input: CollectionInput): Promise<Collection> {
    const { tenantId } = access;
    const ent = this.platform.plans.entitlements(access.plan.id, access.plan.overrides);
    checkSchema(input.json_schema);
    const vector = vectorOf(input.vector);
    const settings: CollectionSettings = vector ? { vector } : {};
    const row = await this.platform.router.withTenant(tenantId, async (tx) => {
      const used = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM strata_data.collections');
      this.platform.plans.requireQuota(ent, 'collections', used.rows[0]?.n ?? 0);
      const { rows } = await tx.query<CollectionRow>(
        `INSERT INTO strata_data.collections (tenant_id, name, json_schema, settings) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING RETURNING ${COLUMNS}`,
        [tenantId, input.name, input.json_schema ? JSON.stringify(input.json_schema) : null, JSON.stringify(settings)],
      );
      return rows[0];
    });
    if (!row) throw new AppError('conflict', `A collection named "${input.name}" already exists`);
    if (vector)
      await this.indexes.ensureVectorIndex(
        await this.platform.router.forTenant(tenantId),
        tenantId,
        input.name,
        vector,
      );
    return toCollection(row);
  }

  async list(tenantId: string): Promise<{ data: Collection[] }> {
    const rows = await this.platform.router.withTenant(tenantId, async (tx) => {
      const r = await tx.query<CollectionRow>(`SELECT ${COLUMNS} FROM strata_data.collections ORDER BY name`);
      return r.rows;
    });
    return { data: rows.map(toCollection) };
  }

  async get(tenantId: string, name: string): Promise<Collection> {
    const row = await this.platform.router.withTenant(tenantId, async (tx) => {
      const r = await tx.query<CollectionRow>(`SELECT ${COLUMNS} FROM strata_data.collections WHERE name = $1`, [name]);
      return r.rows[0];
    });
    if (!row) throw errors.notFound('collection');
    return toCollection(row);
  }

  async update(
    tenantId: string,
    name: string,
    input: { json_schema?: object | null; vector?: CollectionInput['vector'] },
  ): Promise<Collection> {
    checkSchema(input.json_schema);
    const vector = input.vector === undefined ? undefined : (vectorOf(input.vector) ?? null);
    const row = await this.platform.router.withTenantWrite(tenantId, async (tx) => {
      const current = await loadCollection(tx, name);
      const found = current.rows[0];
      if (!found) return undefined;
      const settings: CollectionSettings = { ...(found.settings ?? {}) };
      if (vector !== undefined && JSON.stringify(vector) !== JSON.stringify(settings.vector ?? null)) {
        // Embeddings are extracted when documents are written; changing the field under existing documents
        // would leave them unsearchable or wrongly sized.
        const docs = await tx.query(
          'SELECT 1 FROM strata_data.documents WHERE collection = $1 AND NOT deleted LIMIT 1',
          [name],
        );
        if (docs.rows.length > 0) {
          throw new AppError('conflict', 'The vector field can only change while the collection has no documents');
        }
        if (vector) settings.vector = vector;
        else delete settings.vector;
      }
      const schema = input.json_schema === undefined ? found.json_schema : input.json_schema;
      const r = await tx.query<CollectionRow>(
        `UPDATE strata_data.collections SET json_schema = $2, settings = $3, updated_at = now()
          WHERE name = $1 RETURNING ${COLUMNS}`,
        [name, schema ? JSON.stringify(schema) : null, JSON.stringify(settings)],
      );
      return r.rows[0];
    });
    if (!row) throw errors.notFound('collection');
    if (row.settings?.vector)
      await this.indexes.ensureVectorIndex(
        await this.platform.router.forTenant(tenantId),
        tenantId,
        name,
        row.settings.vector,
      );
    return toCollection(row);
  }

  /** Deleting a collection deletes its documents; each gets a tombstone in the change feed so sync clients drop it. */
  async remove(tenantId: string, name: string): Promise<void> {
    const out = await this.platform.router.withTenantWrite(tenantId, async (tx) => {
      const found = await loadCollection(tx, name);
      const collection = found.rows[0];
      if (!collection) return undefined;
      // Tombstones are numbered as the transaction commits (tenant migration 0005), like any change.
      await tx.query(
        `WITH live AS (
           SELECT id, version, size_bytes FROM strata_data.documents
            WHERE collection = $1 AND NOT deleted ORDER BY id FOR UPDATE
         )
         INSERT INTO strata_data.changes (tenant_id, seq, collection, doc_id, version, deleted, doc_delta, bytes_delta)
         SELECT $2, -nextval('strata_data.change_placeholders'), $1, id, version + 1, true, -1, -size_bytes
           FROM live ORDER BY id`,
        [name, tenantId],
      );
      await tx.query('DELETE FROM strata_data.collections WHERE name = $1', [name]);
      return { collection };
    });
    if (!out) throw errors.notFound('collection');
    this.notifier.notify(tenantId);
    await this.indexes.dropAll(
      await this.platform.router.forTenant(tenantId),
      tenantId,
      out.collection.name,
      out.collection.settings ?? {},
    );
  }

  /** Declares an index on a JSON path of the collection's documents; queries filtering or sorting on it use it. */
  async createIndex(tenantId: string, collection: string, input: { name: string; path: string }): Promise<Collection> {
    const row = await this.platform.router.withTenantWrite(tenantId, async (tx) => {
      const found = await loadCollection(tx, collection);
      const current = found.rows[0];
      if (!current) return undefined;
      const indexes = current.settings?.indexes ?? [];
      if (indexes.some((i) => i.name === input.name)) {
        throw new AppError('conflict', `The collection already has an index named "${input.name}"`);
      }
      if (indexes.length >= 16) throw new AppError('conflict', 'A collection may have at most 16 indexes');
      const settings = { ...(current.settings ?? {}), indexes: [...indexes, input] };
      const r = await tx.query<CollectionRow>(
        `UPDATE strata_data.collections SET settings = $2, updated_at = now() WHERE name = $1 RETURNING ${COLUMNS}`,
        [collection, JSON.stringify(settings)],
      );
      return r.rows[0];
    });
    if (!row) throw errors.notFound('collection');
    await this.indexes.ensurePathIndex(await this.platform.router.forTenant(tenantId), tenantId, collection, input);
    return toCollection(row);
  }

  async dropIndex(tenantId: string, collection: string, name: string): Promise<void> {
    const removed = await this.platform.router.withTenantWrite(tenantId, async (tx) => {
      const found = await loadCollection(tx, collection);
      const current = found.rows[0];
      const indexes = current?.settings?.indexes ?? [];
      if (!current || !indexes.some((i) => i.name === name)) return false;
      const settings = { ...current.settings, indexes: indexes.filter((i) => i.name !== name) };
      await tx.query('UPDATE strata_data.collections SET settings = $2, updated_at = now() WHERE name = $1', [
        collection,
        JSON.stringify(settings),
      ]);
      return true;
    });
    if (!removed) throw errors.notFound('index');
    await this.indexes.drop(
      await this.platform.router.forTenant(tenantId),
      indexName('ix', tenantId, collection, name),
    );
  }
}
