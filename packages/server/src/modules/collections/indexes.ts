import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Database } from '../../platform/db/driver.js';
import { isUuid, withTenant } from '../../platform/db/tenant-context.js';
import type { CollectionSettings, VectorSettings } from '../documents/write.js';

/**
 * Per-collection indexes on the shared documents table: partial indexes whose predicate names the
 * tenant and the collection, so one tenant's index never grows with another's data and queries
 * (which always carry tenant and collection) can use them.
 *
 * DDL cannot take parameters, so everything written into it is checked against a strict pattern first:
 * the tenant id is a UUID, the collection a lower-case identifier, path segments [A-Za-z0-9_], the
 * dimension an integer. The index name is a hash. Indexes are built CONCURRENTLY so other tenants'
 * writes never wait on the build. The statements run as the datastore's owner, not the request role,
 * which owns nothing and cannot create indexes.
 */

export const INDEX_PATH_PATTERN = '^[A-Za-z0-9_]{1,63}(\\.[A-Za-z0-9_]{1,63}){0,15}$';
const PATH = new RegExp(INDEX_PATH_PATTERN);
const COLLECTION = /^[a-z][a-z0-9_]{0,62}$/;

const OPS: Record<VectorSettings['metric'], string> = {
  cosine: 'vector_cosine_ops',
  l2: 'vector_l2_ops',
  inner_product: 'vector_ip_ops',
};

export function indexName(kind: 'ix' | 'vx', tenantId: string, collection: string, name: string): string {
  const hash = createHash('sha256').update(`${tenantId}/${collection}/${name}`).digest('hex').slice(0, 24);
  return `strata_${kind}_${hash}`;
}

function scope(tenantId: string, collection: string): string {
  if (!isUuid(tenantId) || !COLLECTION.test(collection)) throw new Error('invalid index scope');
  return `tenant_id = '${tenantId.toLowerCase()}'::uuid AND collection = '${collection}' AND NOT deleted`;
}

export class IndexManager {
  readonly #pgvector = new WeakMap<Database, Promise<boolean>>();
  constructor(private readonly log: Logger) {}

  /** Whether a datastore has pgvector (PGlite ships it; the exact SQL search serves where it is absent). */
  hasPgvector(db: Database): Promise<boolean> {
    let known = this.#pgvector.get(db);
    if (!known) {
      known = db.query("SELECT 1 FROM pg_extension WHERE extname = 'vector'").then((r) => r.rows.length > 0);
      this.#pgvector.set(db, known);
    }
    return known;
  }

  async #build(db: Database, name: string, ddl: string): Promise<void> {
    const started = Date.now();
    try {
      await db.exec(ddl);
    } catch (err) {
      // A failed concurrent build leaves an invalid index behind; remove it so a retry builds afresh.
      await this.drop(db, name).catch(() => {});
      throw err;
    }
    this.log.info({ type: 'index.built', index: name, ms: Date.now() - started }, 'index built');
  }

  async ensurePathIndex(
    db: Database,
    tenantId: string,
    collection: string,
    index: { name: string; path: string },
  ): Promise<void> {
    if (!PATH.test(index.path)) throw new Error('invalid index path');
    const name = indexName('ix', tenantId, collection, index.name);
    const path = `{${index.path.split('.').join(',')}}`;
    await this.#build(
      db,
      name,
      `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${name} ON strata_data.documents ((body #> '${path}'::text[]))
        WHERE ${scope(tenantId, collection)}`,
    );
  }

  async ensureVectorIndex(db: Database, tenantId: string, collection: string, vector: VectorSettings): Promise<void> {
    if (!(await this.hasPgvector(db))) return;
    if (!Number.isInteger(vector.dimensions)) throw new Error('invalid dimensions');
    const name = indexName('vx', tenantId, collection, `${vector.field}/${vector.dimensions}/${vector.metric}`);
    await this.#build(
      db,
      name,
      `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${name} ON strata_data.documents
         USING hnsw ((embedding::vector(${vector.dimensions})) ${OPS[vector.metric]})
         WHERE ${scope(tenantId, collection)} AND embedding IS NOT NULL`,
    );
  }

  async drop(db: Database, name: string): Promise<void> {
    if (!/^strata_(ix|vx)_[0-9a-f]{24}$/.test(name)) throw new Error('invalid index name');
    await db.exec(`DROP INDEX CONCURRENTLY IF EXISTS strata_data.${name}`);
  }

  /**
   * Builds, in a datastore, every index the tenant's collections there declare (after a move has copied
   * them, or a restore has put them back).
   */
  async ensureForTenant(db: Database, tenantId: string): Promise<void> {
    const { rows } = await withTenant(db, tenantId, (tx) =>
      tx.query<{ name: string; settings: CollectionSettings }>('SELECT name, settings FROM strata_data.collections'),
    );
    for (const c of rows) {
      for (const index of c.settings?.indexes ?? []) await this.ensurePathIndex(db, tenantId, c.name, index);
      if (c.settings?.vector) await this.ensureVectorIndex(db, tenantId, c.name, c.settings.vector);
    }
  }

  /** Drops every index scoped to the tenant (run when the tenant is purged). */
  async dropForTenant(db: Database, tenantId: string): Promise<number> {
    if (!isUuid(tenantId)) throw new Error('invalid tenant id');
    const { rows } = await db.query<{ indexname: string }>(
      `SELECT indexname FROM pg_indexes
        WHERE schemaname = 'strata_data' AND indexname ~ '^strata_(ix|vx)_' AND strpos(indexdef, $1) > 0`,
      [tenantId.toLowerCase()],
    );
    for (const r of rows) await this.drop(db, r.indexname);
    return rows.length;
  }

  async dropAll(db: Database, tenantId: string, collection: string, settings: CollectionSettings): Promise<void> {
    const names = (settings.indexes ?? []).map((i) => indexName('ix', tenantId, collection, i.name));
    const v = settings.vector;
    if (v) names.push(indexName('vx', tenantId, collection, `${v.field}/${v.dimensions}/${v.metric}`));
    for (const name of names) await this.drop(db, name);
  }
}
