import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import type { Database, Queryable } from '../../platform/db/driver.js';
import { migrate } from '../../platform/db/migrate.js';
import { openPostgres } from '../../platform/db/pg-driver.js';
import { openPglite } from '../../platform/db/pglite-driver.js';
import { withSystem, withTenant, withTenantWrite } from '../../platform/db/tenant-context.js';
import { errors } from '../../platform/errors.js';
import type { Keyring } from '../../platform/keyring.js';
import { byodPoolConfig, type ValidByodConfig } from './byod-check.js';

/**
 * Where a tenant's data lives. Every access to tenant data (documents, collections, the change feed,
 * indexes) asks this router for the tenant's datastore; nothing opens "the" database for tenant data.
 *
 * A tenant's datastore is either one registered for it (strata.datastores: its own database) or the
 * shared datastore of its data region: the one configured for the region in STRATA_SHARED_DATASTORES, or
 * the control database for regions without one. The lookup is cached; placement changes call
 * invalidate(). Datastores are opened on first use and brought to the latest tenant migrations then.
 */
export interface Placement {
  region: string;
  /** A datastore of the tenant's own (registry id), or null for its region's shared datastore. */
  datastoreId: string | null;
  kind: 'shared' | 'dedicated' | 'byod';
  displayUrl: string | null;
}

/** What strata.datastores holds of a registered datastore, its settings decrypted. */
interface Registration {
  kind: 'dedicated' | 'byod';
  region: string;
  settings: ValidByodConfig;
}

/** The plan feature each placement other than shared rests on. */
export const PLACEMENT_FEATURE = { dedicated: 'dedicated_datastore', byod: 'byod_datastore' } as const;

/** A datastore named by a postgres:// URL or pglite:<dir>. */
async function openUrl(url: string): Promise<Database> {
  return url.startsWith('pglite:') ? openPglite({ dataDir: url.slice(7) }) : openPostgres(url);
}

export class DatastoreRouter {
  readonly #placements = new Map<string, { placement: Placement; until: number }>();
  /**
   * How long a node trusts its cached placement. Placement changes are announced to every node (NOTIFY
   * on the control database, see listen()), so this is only the bound for a node that missed one.
   */
  static readonly CACHE_MS = 5_000;
  /** The control database's channel on which placement changes are announced (payload: the tenant id). */
  static readonly CHANNEL = 'strata_placement';
  #unlisten: (() => Promise<void>) | undefined;
  readonly #open = new Map<string, Promise<Database>>();
  readonly #registrations = new Map<string, Promise<Registration | null>>();

  constructor(
    private readonly control: Database,
    private readonly config: Pick<Config, 'sharedDatastores'>,
    private readonly keyring: Keyring,
    private readonly log: Logger,
  ) {}

  /** The database holding the tenant's data. 404 for an unknown tenant. */
  async forTenant(tenantId: string): Promise<Database> {
    const placement = await this.placementOf(tenantId);
    if (!placement.datastoreId) return this.forRegion(placement.region);
    return this.forDatastore(placement.datastoreId);
  }

  /** withTenant on the tenant's datastore: the way services read tenant data. */
  async withTenant<T>(tenantId: string, fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return withTenant(await this.forTenant(tenantId), tenantId, fn);
  }

  /** withTenantWrite on the tenant's datastore: the way services write tenant data. */
  async withTenantWrite<T>(tenantId: string, fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return withTenantWrite(await this.forTenant(tenantId), tenantId, fn);
  }

  async regionOf(tenantId: string): Promise<string> {
    return (await this.placementOf(tenantId)).region;
  }

  /** Where the tenant's data lives (cached briefly; placement changes call invalidate()). */
  async placementOf(tenantId: string): Promise<Placement> {
    const cached = this.#placements.get(tenantId);
    let placement = cached && cached.until > Date.now() ? cached.placement : undefined;
    if (!placement) {
      const row = await withSystem(this.control, async (tx) => {
        const r = await tx.query<{
          data_region: string;
          id: string | null;
          kind: Placement['kind'] | null;
          display_url: string | null;
        }>(
          `SELECT t.data_region, d.id, d.kind, d.display_url
             FROM strata.tenants t LEFT JOIN strata.datastores d ON d.id = t.datastore_id
            WHERE t.id = $1`,
          [tenantId],
        );
        return r.rows[0];
      });
      if (!row) throw errors.notFound('tenant');
      placement = {
        region: row.data_region,
        datastoreId: row.id,
        kind: row.kind ?? 'shared',
        displayUrl: row.display_url,
      };
      this.#placements.set(tenantId, { placement, until: Date.now() + DatastoreRouter.CACHE_MS });
    }
    return placement;
  }

  /** Forgets the tenant's cached placement on this node. */
  invalidate(tenantId: string): void {
    this.#placements.delete(tenantId);
  }

  /** After a placement change: forgets it here and tells every other node to forget it too. */
  async announce(tenantId: string): Promise<void> {
    this.invalidate(tenantId);
    await this.control.query('SELECT pg_notify($1, $2)', [DatastoreRouter.CHANNEL, tenantId]);
  }

  /** Starts hearing other nodes' placement changes; a lost connection drops the whole cache when it is back. */
  async listen(): Promise<void> {
    this.#unlisten = await this.control.listen(
      DatastoreRouter.CHANNEL,
      (tenantId) => this.invalidate(tenantId),
      () => this.#placements.clear(),
    );
  }

  /**
   * A registered datastore's kind, region and decrypted settings. They never change for a registration, so
   * they are remembered until it is released (the bucket is asked for on every file request).
   */
  #registration(id: string): Promise<Registration | null> {
    let found = this.#registrations.get(id);
    if (!found) {
      found = withSystem(this.control, async (tx) => {
        const r = await tx.query<{ config_ciphertext: string; region: string; kind: 'dedicated' | 'byod' }>(
          'SELECT config_ciphertext, region, kind FROM strata.datastores WHERE id = $1',
          [id],
        );
        return r.rows[0];
      }).then((row) =>
        row
          ? {
              kind: row.kind,
              region: row.region,
              settings: JSON.parse(this.keyring.decrypt(row.config_ciphertext, `datastore:${id}`)) as ValidByodConfig,
            }
          : null,
      );
      this.#registrations.set(id, found);
      // Only what is registered is remembered: an id looked up before it exists, or that failed, is asked again.
      found.then(
        (r) => r ?? this.#registrations.delete(id),
        () => this.#registrations.delete(id),
      );
    }
    return found;
  }

  /** A registered datastore, opened from its decrypted settings. */
  forDatastore(id: string): Promise<Database> {
    return this.#remember(`datastore:${id}`, async () => {
      const registration = await this.#registration(id);
      if (!registration) throw new Error(`datastore ${id} is not registered`);
      const { kind, region, settings } = registration;
      if (kind === 'byod') return this.#connect(region, openPostgres(byodPoolConfig(settings)));
      // A dedicated database Strata created on an operator pool: a URL of the operator's, or an embedded directory.
      return this.#connect(region, await openUrl(settings.url));
    });
  }

  /** The tenant's own bucket of a BYOD datastore (an s3:// URL with credentials), or null. */
  async bucketOf(datastoreId: string): Promise<string | null> {
    const registration = await this.#registration(datastoreId);
    return registration?.kind === 'byod' ? (registration.settings.bucket ?? null) : null;
  }

  /** Opens a datastore once; one that could not be opened is tried again next time, not remembered broken. */
  #remember(key: string, open: () => Promise<Database>): Promise<Database> {
    let db = this.#open.get(key);
    if (!db) {
      db = open();
      this.#open.set(key, db);
      db.catch(() => this.#open.delete(key));
    }
    return db;
  }

  /** Closes a registered datastore's connections and forgets its settings (after the tenant left it). */
  async release(id: string): Promise<void> {
    this.#registrations.delete(id);
    const key = `datastore:${id}`;
    const db = this.#open.get(key);
    this.#open.delete(key);
    await (await db?.catch(() => undefined))?.close();
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
    return this.#remember(target, async () => this.#connect(region, await openUrl(target)));
  }

  async #connect(region: string, db: Database): Promise<Database> {
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
    await this.#unlisten?.();
    const open = [...this.#open.values()];
    this.#open.clear();
    for (const db of open) await (await db.catch(() => undefined))?.close();
  }
}
