import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import type { Database } from '../../platform/db/driver.js';
import { migrate } from '../../platform/db/migrate.js';
import { openPostgres } from '../../platform/db/pg-driver.js';
import { openPglite } from '../../platform/db/pglite-driver.js';
import { withSystem } from '../../platform/db/tenant-context.js';
import { errors } from '../../platform/errors.js';

/**
 * Where a tenant's data lives. Every access to tenant data (documents, collections, the change feed,
 * indexes) asks this router for the tenant's datastore; nothing opens "the" database for tenant data.
 *
 * Today a tenant's datastore is the shared datastore of its data region: the one configured for the
 * region in STRATA_SHARED_DATASTORES, or the control database for regions without one. A tenant's region
 * cannot change through the API (changing it is a move), so the lookup is cached for the life of the
 * process. Datastores are opened on first use and brought to the latest tenant migrations then.
 */
export class DatastoreRouter {
  readonly #regionOf = new Map<string, string>();
  readonly #open = new Map<string, Promise<Database>>();

  constructor(
    private readonly control: Database,
    private readonly config: Pick<Config, 'sharedDatastores'>,
    private readonly log: Logger,
  ) {}

  /** The database holding the tenant's data. 404 for an unknown tenant. */
  async forTenant(tenantId: string): Promise<Database> {
    return this.forRegion(await this.regionOf(tenantId));
  }

  async regionOf(tenantId: string): Promise<string> {
    let region = this.#regionOf.get(tenantId);
    if (!region) {
      region = await withSystem(this.control, async (tx) => {
        const r = await tx.query<{ data_region: string }>('SELECT data_region FROM strata.tenants WHERE id = $1', [
          tenantId,
        ]);
        return r.rows[0]?.data_region;
      });
      if (!region) throw errors.notFound('tenant');
      this.#regionOf.set(tenantId, region);
    }
    return region;
  }

  /** The regions the tenant's data may be placed in (the operator may change them, so never cached). */
  async allowedRegionsOf(tenantId: string): Promise<string[]> {
    const regions = await withSystem(this.control, async (tx) => {
      const r = await tx.query<{ allowed_regions: string[] }>(
        'SELECT allowed_regions FROM strata.tenants WHERE id = $1',
        [tenantId],
      );
      return r.rows[0]?.allowed_regions;
    });
    if (!regions) throw errors.notFound('tenant');
    return regions;
  }

  /** The shared datastore of a region. */
  forRegion(region: string): Promise<Database> {
    const target = this.config.sharedDatastores[region];
    if (!target) return Promise.resolve(this.control);
    let db = this.#open.get(target);
    if (!db) {
      db = this.#connect(region, target);
      this.#open.set(target, db);
      // A datastore that could not be opened is tried again on the next request, not remembered broken.
      db.catch(() => this.#open.delete(target));
    }
    return db;
  }

  /** Every datastore tenant data may be in: the control database and each region's own. */
  async all(): Promise<Database[]> {
    const regions = Object.keys(this.config.sharedDatastores);
    return [this.control, ...(await Promise.all(regions.map((r) => this.forRegion(r))))];
  }

  async #connect(region: string, target: string): Promise<Database> {
    const db = target.startsWith('pglite:') ? await openPglite({ dataDir: target.slice(7) }) : openPostgres(target);
    try {
      const { applied } = await migrate(db, ['tenant']);
      this.log.info({ type: 'datastore.opened', region, migrations_applied: applied.length }, 'datastore opened');
      return db;
    } catch (err) {
      await db.close().catch(() => {});
      this.log.error({ err, type: 'datastore.failed', region }, 'datastore could not be opened');
      throw err;
    }
  }

  async close(): Promise<void> {
    const open = [...this.#open.values()];
    this.#open.clear();
    for (const db of open) await (await db.catch(() => undefined))?.close();
  }
}
