import { Ajv } from 'ajv';
import type { Platform } from '../../platform/context.js';
import { withTenant } from '../../platform/db/tenant-context.js';
import { AppError, errors } from '../../platform/errors.js';
import { iso } from '../../platform/ids.js';

export interface Collection {
  name: string;
  json_schema: object | null;
  created_at: string;
  updated_at: string;
}

interface CollectionRow {
  name: string;
  json_schema: object | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'name, json_schema, created_at, updated_at';
const toCollection = (r: CollectionRow): Collection => ({
  name: r.name,
  json_schema: r.json_schema,
  created_at: iso(r.created_at) as string,
  updated_at: iso(r.updated_at) as string,
});

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
  constructor(private readonly platform: Platform) {}

  async create(tenantId: string, input: { name: string; json_schema?: object | null }): Promise<Collection> {
    checkSchema(input.json_schema);
    const row = await withTenant(this.platform.db, tenantId, async (tx) => {
      const ent = await this.platform.plans.forTenant(tx, tenantId);
      const used = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM strata_data.collections');
      this.platform.plans.requireQuota(ent, 'collections', used.rows[0]?.n ?? 0);
      const { rows } = await tx.query<CollectionRow>(
        `INSERT INTO strata_data.collections (tenant_id, name, json_schema) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING RETURNING ${COLUMNS}`,
        [tenantId, input.name, input.json_schema ? JSON.stringify(input.json_schema) : null],
      );
      return rows[0];
    });
    if (!row) throw new AppError('conflict', `A collection named "${input.name}" already exists`);
    return toCollection(row);
  }

  async list(tenantId: string): Promise<{ data: Collection[] }> {
    const rows = await withTenant(this.platform.db, tenantId, async (tx) => {
      const r = await tx.query<CollectionRow>(`SELECT ${COLUMNS} FROM strata_data.collections ORDER BY name`);
      return r.rows;
    });
    return { data: rows.map(toCollection) };
  }

  async get(tenantId: string, name: string): Promise<Collection> {
    const row = await withTenant(this.platform.db, tenantId, async (tx) => {
      const r = await tx.query<CollectionRow>(`SELECT ${COLUMNS} FROM strata_data.collections WHERE name = $1`, [name]);
      return r.rows[0];
    });
    if (!row) throw errors.notFound('collection');
    return toCollection(row);
  }

  async update(tenantId: string, name: string, input: { json_schema: object | null }): Promise<Collection> {
    checkSchema(input.json_schema);
    const row = await withTenant(this.platform.db, tenantId, async (tx) => {
      const r = await tx.query<CollectionRow>(
        `UPDATE strata_data.collections SET json_schema = $2, updated_at = now() WHERE name = $1 RETURNING ${COLUMNS}`,
        [name, input.json_schema ? JSON.stringify(input.json_schema) : null],
      );
      return r.rows[0];
    });
    if (!row) throw errors.notFound('collection');
    return toCollection(row);
  }

  async remove(tenantId: string, name: string): Promise<void> {
    const deleted = await withTenant(this.platform.db, tenantId, (tx) =>
      tx.query('DELETE FROM strata_data.collections WHERE name = $1', [name]),
    );
    if (deleted.rowCount === 0) throw errors.notFound('collection');
  }
}
