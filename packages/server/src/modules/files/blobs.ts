import { rm } from 'node:fs/promises';
import type { Platform } from '../../platform/context.js';
import type { Queryable } from '../../platform/db/driver.js';
import { withSystem } from '../../platform/db/tenant-context.js';
import { deletePrefix, type ObjectBody, type ObjectStore } from '../../platform/objects/store.js';
import { type Spooled, spoolVerified } from './spool.js';

/**
 * The blob layout of tenant files, content-addressed:
 *
 *   tenants/<tenantId>/blobs/<sha256>     the bytes of every file of the tenant with that SHA-256 (hex)
 *
 * A file row (strata_data.files) names its blob by sha256. Writes add blobs and never delete one; deleting
 * blobs is left to sweepOrphanBlobs (blobs no row references, older than a grace period) and to the purge
 * of a tenant (everything under its prefix). Everything a tenant has in an object store is under
 * tenantBlobPrefix(tenantId).
 */
export const tenantBlobPrefix = (tenantId: string): string => `tenants/${tenantId.toLowerCase()}/`;
export const blobKey = (tenantId: string, sha256: string): string => `${tenantBlobPrefix(tenantId)}blobs/${sha256}`;

/** How long an unreferenced blob is kept: an upload puts its blob before the row that references it commits. */
export const ORPHAN_GRACE_MS = 60 * 60 * 1000;

const SHA256 = /^[0-9a-f]{64}$/;
const BLOB_CONTENT_TYPE = 'application/octet-stream';

export interface Blob {
  sha256: string;
  size: number;
  lastModified: Date;
}

/** The tenant's blobs in a store (whether referenced or not). */
export async function* listTenantBlobs(store: ObjectStore, tenantId: string): AsyncIterable<Blob> {
  const prefix = `${tenantBlobPrefix(tenantId)}blobs/`;
  for await (const o of store.list(prefix)) {
    const sha256 = o.key.slice(prefix.length);
    if (SHA256.test(sha256)) yield { sha256, size: o.size, lastModified: o.lastModified };
  }
}

/** The blobs the tenant's files reference (run in the tenant's context: router.withTenant). */
export async function referencedBlobs(tx: Queryable): Promise<string[]> {
  const { rows } = await tx.query<{ sha256: string }>('SELECT DISTINCT sha256 FROM strata_data.files ORDER BY 1');
  return rows.map((r) => r.sha256);
}

/**
 * Makes sure the blob is in the store and fresh: put when absent, or when it is old enough that the orphan
 * sweep may be about to take it (the put renews its age). A blob that is there and recent is not uploaded again.
 */
export async function ensureBlob(store: ObjectStore, tenantId: string, spooled: Spooled, now = Date.now()) {
  const key = blobKey(tenantId, spooled.sha256);
  const head = await store.head(key);
  if (head && head.size === spooled.size && now - head.lastModified.getTime() < ORPHAN_GRACE_MS / 2) return;
  await store.put(key, spooled.path, { size: spooled.size, contentType: BLOB_CONTENT_TYPE, sha256: spooled.sha256 });
}

/**
 * Stores an object read from another store under `key`, checking on the way that its bytes are the ones
 * `sha256` names (a damaged source is refused, nothing is stored). Returns the byte count.
 */
export async function putVerified(source: ObjectBody, to: ObjectStore, key: string, sha256: string): Promise<number> {
  const spooled = await spoolVerified(source.body, { sha256, size: source.size });
  try {
    await to.put(key, spooled.path, { size: spooled.size, contentType: BLOB_CONTENT_TYPE, sha256 });
  } finally {
    await rm(spooled.path, { force: true });
  }
  return spooled.size;
}

/**
 * Copies blobs of a tenant from one store to another (a move, a snapshot): each is read, checked against its
 * SHA-256 on the way, and put; blobs the target already has (same size) are skipped. `shas` defaults to
 * every blob of the tenant in the source.
 */
export async function copyTenantBlobs(
  from: ObjectStore,
  to: ObjectStore,
  tenantId: string,
  shas?: Iterable<string>,
): Promise<{ copied: number; skipped: number; bytes: number }> {
  const wanted: string[] = [];
  if (shas) wanted.push(...shas);
  else for await (const b of listTenantBlobs(from, tenantId)) wanted.push(b.sha256);
  let copied = 0;
  let skipped = 0;
  let bytes = 0;
  for (const sha256 of wanted) {
    const key = blobKey(tenantId, sha256);
    const source = await from.get(key);
    if (!source) throw new Error(`blob ${key} is missing from ${from.description}`);
    const there = await to.head(key);
    if (there && there.size === source.size) {
      source.body.destroy();
      skipped++;
      continue;
    }
    bytes += await putVerified(source, to, key, sha256);
    copied++;
  }
  return { copied, skipped, bytes };
}

/** Deletes everything the tenant has in the store (a purge). */
export function removeTenantBlobs(store: ObjectStore, tenantId: string): Promise<number> {
  return deletePrefix(store, tenantBlobPrefix(tenantId));
}

/**
 * Deletes blobs that no file row references and that are older than `olderThanMs` (ORPHAN_GRACE_MS by
 * default): what overwrites and deletes left behind, and blobs of uploads that were refused after their blob
 * was stored. One tenant, or every tenant of the control plane; a tenant whose datastore or store cannot be
 * reached is logged and skipped, and so is one `held` says to leave alone (a snapshot of it being taken).
 * Each candidate is looked at again just before it is deleted, so a blob an upload has just renewed
 * (ensureBlob) stays.
 */
export async function sweepOrphanBlobs(
  platform: Pick<Platform, 'db' | 'router' | 'objects' | 'log'>,
  options: { tenantId?: string; olderThanMs?: number; now?: Date; held?: (tenantId: string) => Promise<boolean> } = {},
): Promise<{ tenants: number; deleted: number; failed: number; held: number }> {
  const cutoff = (options.now ?? new Date()).getTime() - (options.olderThanMs ?? ORPHAN_GRACE_MS);
  const tenants = options.tenantId
    ? [options.tenantId]
    : await withSystem(platform.db, async (tx) =>
        (await tx.query<{ id: string }>('SELECT id FROM strata.tenants ORDER BY id')).rows.map((r) => r.id),
      );
  let deleted = 0;
  let failed = 0;
  let held = 0;
  for (const tenantId of tenants) {
    try {
      if (await options.held?.(tenantId)) {
        held++;
        continue;
      }
      deleted += await sweepTenant(platform, tenantId, cutoff);
    } catch (err) {
      if (options.tenantId) throw err;
      failed++;
      platform.log.error({ err, type: 'files.sweep', tenant_id: tenantId }, 'orphan blob sweep failed for a tenant');
    }
  }
  if (deleted > 0) platform.log.info({ type: 'files.swept', deleted }, 'orphan blobs deleted');
  return { tenants: tenants.length, deleted, failed, held };
}

async function sweepTenant(
  platform: Pick<Platform, 'router' | 'objects'>,
  tenantId: string,
  cutoff: number,
): Promise<number> {
  const store = await platform.objects.forTenant(tenantId);
  const old: string[] = [];
  for await (const b of listTenantBlobs(store, tenantId)) if (b.lastModified.getTime() < cutoff) old.push(b.sha256);
  let deleted = 0;
  for (let i = 0; i < old.length; i += 500) {
    const batch = old.slice(i, i + 500);
    const referenced = await platform.router.withTenant(tenantId, async (tx) => {
      const { rows } = await tx.query<{ sha256: string }>(
        'SELECT DISTINCT sha256 FROM strata_data.files WHERE sha256 = ANY($1::text[])',
        [batch],
      );
      return new Set(rows.map((r) => r.sha256));
    });
    for (const sha256 of batch) {
      if (referenced.has(sha256)) continue;
      const key = blobKey(tenantId, sha256);
      const now = await store.head(key);
      if (!now || now.lastModified.getTime() >= cutoff) continue;
      await store.delete(key);
      deleted++;
    }
  }
  return deleted;
}
