import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import type { Platform } from '../../platform/context.js';
import { withSystem } from '../../platform/db/tenant-context.js';
import { AppError } from '../../platform/errors.js';
import { newId } from '../../platform/ids.js';
import type { IndexManager } from '../collections/indexes.js';
import { removeTenantData } from '../tenants/service.js';
import { redactUrl, type ValidByodConfig } from './byod-check.js';

/**
 * The registry of datastores that belong to one tenant (strata.datastores): dedicated databases, which
 * Strata creates on an operator pool and drops when the tenant leaves them, and the tenant's own databases
 * (BYOD), which Strata only ever adds its schema and rows to and removes its rows from.
 */

/** What is sealed in strata.datastores.config_ciphertext. Dedicated: the URL Strata created; BYOD: the validated configuration. */
export type DatastoreSettings = { kind: 'dedicated'; url: string } | ({ kind: 'byod' } & ValidByodConfig);

/** Database names Strata creates: a fixed prefix and the registry id, so nothing needs quoting. */
const dedicatedName = (id: string) => `strata_ds_${id.replace(/-/g, '')}`;

/** Creates a dedicated database for a new registry id in a region's pool; returns its URL. */
async function createDedicated(platform: Platform, region: string, id: string): Promise<string> {
  const pool = platform.config.dedicatedPools[region];
  if (!pool) {
    throw new AppError('conflict', `Region ${region} offers no dedicated databases (STRATA_DEDICATED_POOLS)`);
  }
  if (pool.startsWith('pglite:')) return `pglite:${join(pool.slice(7), id)}`;
  const client = new pg.Client({ connectionString: pool, application_name: 'strata' });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${dedicatedName(id)}`);
  } finally {
    await client.end();
  }
  const url = new URL(pool);
  url.pathname = `/${dedicatedName(id)}`;
  return url.toString();
}

/** Drops a dedicated database Strata created (after its connections were released). */
async function dropDedicated(platform: Platform, region: string, id: string, url: string): Promise<void> {
  if (url.startsWith('pglite:')) {
    await rm(url.slice(7), { recursive: true, force: true });
    return;
  }
  const pool = platform.config.dedicatedPools[region];
  const client = new pg.Client({ connectionString: pool ?? url.replace(/\/[^/?]*(\?|$)/, '/postgres$1') });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${dedicatedName(id)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/**
 * Registers a datastore of the tenant's own: creates it first when dedicated, then seals its settings,
 * then opens it (which brings it to the tenant migrations). Nothing is left behind when a step fails.
 */
export async function registerDatastore(
  platform: Platform,
  tenantId: string,
  region: string,
  choice: { kind: 'dedicated' } | { kind: 'byod'; config: ValidByodConfig },
): Promise<string> {
  const id = newId();
  const settings: DatastoreSettings =
    choice.kind === 'dedicated'
      ? { kind: 'dedicated', url: await createDedicated(platform, region, id) }
      : { kind: 'byod', ...choice.config };
  const sealed = platform.keyring.encrypt(JSON.stringify(settings), `datastore:${id}`);
  const display = settings.url.startsWith('pglite:') ? settings.url : redactUrl(settings.url);
  await withSystem(platform.db, (tx) =>
    tx.query(
      `INSERT INTO strata.datastores (id, kind, owner_tenant, region, config_ciphertext, display_url)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [id, choice.kind, tenantId, region, sealed, display],
    ),
  );
  try {
    await platform.router.forDatastore(id);
  } catch (err) {
    await discardDatastore(platform, id, null).catch(() => {});
    throw err;
  }
  platform.log.info(
    { type: 'datastore.registered', tenant_id: tenantId, datastore_id: id, kind: choice.kind, region },
    'datastore registered',
  );
  return id;
}

/**
 * Removes a datastore of one tenant that no tenant points at any more: a dedicated database is dropped
 * whole; from the tenant's own database only Strata's rows of the tenant are removed. Then the
 * registration goes. `indexes` is null when nothing was written there yet.
 */
export async function discardDatastore(platform: Platform, id: string, indexes: IndexManager | null): Promise<void> {
  const row = await withSystem(platform.db, async (tx) => {
    const inUse = await tx.query('SELECT 1 FROM strata.tenants WHERE datastore_id = $1', [id]);
    if (inUse.rows.length > 0) throw new Error(`datastore ${id} is still some tenant's placement`);
    const r = await tx.query<{ kind: 'dedicated' | 'byod'; region: string; owner_tenant: string; config: string }>(
      'SELECT kind, region, owner_tenant, config_ciphertext AS config FROM strata.datastores WHERE id = $1',
      [id],
    );
    return r.rows[0];
  });
  if (!row) return;
  const settings = JSON.parse(platform.keyring.decrypt(row.config, `datastore:${id}`)) as DatastoreSettings;
  if (row.kind === 'byod' && indexes) {
    await removeTenantData(await platform.router.forDatastore(id), row.owner_tenant, indexes);
  }
  await platform.router.release(id);
  await platform.objects.release(id);
  if (row.kind === 'dedicated') await dropDedicated(platform, row.region, id, settings.url);
  await withSystem(platform.db, (tx) => tx.query('DELETE FROM strata.datastores WHERE id = $1', [id]));
  // Forgets the settings again, in case a lookup remembered them between the release above and the delete.
  await platform.router.release(id);
  platform.log.info(
    { type: 'datastore.discarded', tenant_id: row.owner_tenant, datastore_id: id, kind: row.kind },
    'datastore discarded',
  );
}
