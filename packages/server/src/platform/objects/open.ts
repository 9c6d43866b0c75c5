import type { Logger } from 'pino';
import { LocalObjectStore } from './local.js';
import type { ObjectStore } from './store.js';
import { parseObjectStoreUrl, redactObjectStoreUrl } from './url.js';

/**
 * Opens the store a URL names (see url.ts): a local directory is created if needed; a bucket is checked to
 * exist and accept the credentials. Throws with a message naming what is wrong, never the secret.
 */
export async function openObjectStore(url: string): Promise<ObjectStore> {
  const spec = parseObjectStoreUrl(url);
  if (spec.kind === 'file') return new LocalObjectStore(spec.dir).open();
  // The SDK is loaded only when a bucket is configured.
  const { S3ObjectStore } = await import('./s3.js');
  const { kind: _kind, ...settings } = spec;
  return new S3ObjectStore(settings).open();
}

/** What ObjectStores needs to know of a tenant's placement (the datastore router). */
export interface PlacementLookup {
  placementOf(tenantId: string): Promise<{ region: string; datastoreId: string | null }>;
  /** The bucket a tenant brought with its own database (BYOD), or null. */
  bucketOf?(datastoreId: string): Promise<string | null>;
}

/**
 * The object stores of this installation: one per region (STRATA_OBJECT_STORES), and the buckets tenants
 * bring with their own databases. Each is opened once on first use and remembered. Files code finds a
 * tenant's store only through forTenant(), the one place that decides where a tenant's bytes live: its own
 * bucket when its placement has one, else its region's store.
 */
export class ObjectStores {
  readonly #open = new Map<string, Promise<ObjectStore>>();

  constructor(
    private readonly urls: Record<string, string>,
    private readonly placement: PlacementLookup,
    private readonly log: Logger,
  ) {}

  /** The store of the tenant's data: 404 not_found for an unknown tenant (from the router). */
  async forTenant(tenantId: string): Promise<ObjectStore> {
    return this.forPlacement(await this.placement.placementOf(tenantId));
  }

  /** The store of a placement: the bucket of its BYOD datastore if it brought one, else its region's. */
  async forPlacement(placement: { region: string; datastoreId: string | null }): Promise<ObjectStore> {
    const id = placement.datastoreId;
    const bucket = id && this.placement.bucketOf ? await this.placement.bucketOf(id) : null;
    if (id && bucket) return this.#remember(`datastore:${id}`, bucket, { datastore_id: id });
    return this.forRegion(placement.region);
  }

  /** The object store of a region. A store that could not be opened is tried again next time. */
  forRegion(region: string): Promise<ObjectStore> {
    const url = this.urls[region];
    if (!url) return Promise.reject(new Error(`no object store is configured for region "${region}"`));
    return this.#remember(`region:${region}`, url, { region });
  }

  #remember(key: string, url: string, context: Record<string, string>): Promise<ObjectStore> {
    let store = this.#open.get(key);
    if (!store) {
      store = openObjectStore(url).then(
        (s) => {
          this.log.info({ type: 'objects.opened', ...context, store: s.description }, 'object store opened');
          return s;
        },
        (err: unknown) => {
          this.#open.delete(key);
          this.log.error(
            { err, type: 'objects.failed', ...context, store: redactObjectStoreUrl(url) },
            'object store could not be opened',
          );
          throw err;
        },
      );
      this.#open.set(key, store);
    }
    return store;
  }

  /** Closes the bucket of a BYOD datastore that is no longer registered. */
  async release(datastoreId: string): Promise<void> {
    const key = `datastore:${datastoreId}`;
    const store = this.#open.get(key);
    this.#open.delete(key);
    await (await store?.catch(() => undefined))?.close();
  }

  async close(): Promise<void> {
    const open = [...this.#open.values()];
    this.#open.clear();
    for (const store of open) await (await store.catch(() => undefined))?.close();
  }
}
