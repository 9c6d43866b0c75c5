import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Platform } from '../../platform/context.js';
import type { Queryable } from '../../platform/db/driver.js';
import { AppError, errors } from '../../platform/errors.js';
import { iso } from '../../platform/ids.js';
import { keyProblem } from '../../platform/objects/store.js';
import type { TenantAccess } from '../auth/credentials.js';
import type { Entitlements } from '../plans/entitlements.js';
import { blobKey, ensureBlob, removeTenantBlobs, sweepOrphanBlobs } from './blobs.js';
import { spool } from './spool.js';

/**
 * Tenant files: a key (a `/`-separated path) names a file; its bytes are a content-addressed blob in the
 * tenant's object store (blobs.ts) and its metadata a row of strata_data.files in the tenant's datastore.
 * An upload is spooled to a temporary file (hashed and counted, stopped at the size limit), its blob stored,
 * and only then is the row written, in one tenant write transaction, so a file that can be read always has
 * its bytes. The object store is found only through platform.objects.forTenant.
 */
export interface FileMeta {
  key: string;
  size: number;
  content_type: string;
  sha256: string;
  version: number;
  created_at: string;
  updated_at: string;
}

interface FileRow {
  key: string;
  size_bytes: number | string;
  content_type: string;
  sha256: string;
  version: number;
  created_at: Date | string;
  updated_at: Date | string;
}

const COLUMNS = 'key, size_bytes, content_type, sha256, version, created_at, updated_at';

const toFile = (r: FileRow): FileMeta => ({
  key: r.key,
  size: Number(r.size_bytes),
  content_type: r.content_type,
  sha256: r.sha256,
  version: Number(r.version),
  created_at: iso(r.created_at) as string,
  updated_at: iso(r.updated_at) as string,
});

export interface PutFileInput {
  contentType: string;
  /** The request's Content-Length, when it sent one: a body announced too large is refused before it is read. */
  contentLength?: number;
  /** If-Match: the file must exist (and be at this version, unless '*'); else 412. */
  ifMatch?: number | '*';
  /** If-None-Match: * : the file must not exist; else 412. */
  ifNoneMatch?: boolean;
}

/** 400 naming what is wrong with a file key (the rule is keyProblem's). */
export function checkFileKey(key: string): void {
  const problem = keyProblem(key);
  if (problem) {
    throw new AppError('validation_failed', `The file key ${problem}`, {
      errors: [{ path: 'params/key', message: problem }],
    });
  }
}

function checkPreconditions(current: FileRow | undefined, input: Pick<PutFileInput, 'ifMatch' | 'ifNoneMatch'>) {
  if (input.ifNoneMatch && current) {
    throw new AppError('precondition_failed', `The file exists (version ${current.version})`, {
      current_version: Number(current.version),
    });
  }
  if (
    input.ifMatch !== undefined &&
    (!current || (input.ifMatch !== '*' && input.ifMatch !== Number(current.version)))
  ) {
    throw new AppError(
      'precondition_failed',
      current ? `The file is at version ${current.version}` : 'The file does not exist',
      { current_version: current ? Number(current.version) : null },
    );
  }
}

/** A write that reached a datastore the tenant has moved away from: 503 with Retry-After, like document writes. */
function movedAway(): Error {
  return Object.assign(new Error('the tenant has moved to another datastore'), { code: '55P03' });
}

interface Usage {
  doc_bytes: number | string;
  file_bytes: number | string;
  moved: boolean;
}

/** Locks the tenant's counters row for the rest of the transaction (file writes of a tenant take turns). */
async function lockUsage(tx: Queryable): Promise<Usage> {
  const { rows } = await tx.query<Usage>(
    'SELECT doc_bytes, file_bytes, moved FROM strata_data.tenant_sequences FOR UPDATE',
  );
  const usage = rows[0] ?? { doc_bytes: 0, file_bytes: 0, moved: false };
  if (usage.moved) throw movedAway();
  return usage;
}

const stored = (u: Pick<Usage, 'doc_bytes' | 'file_bytes'>) => Number(u.doc_bytes) + Number(u.file_bytes);

/** Recomputes the tenant's file byte count from its rows (after file rows were copied in by a move or a restore). */
export async function recountFileBytes(tx: Queryable): Promise<void> {
  await tx.query(
    'UPDATE strata_data.tenant_sequences SET file_bytes = (SELECT coalesce(sum(size_bytes), 0) FROM strata_data.files)',
  );
}

/** How often the housekeeping timer sweeps orphan blobs (of every tenant). */
export const SWEEP_EVERY_MS = 15 * 60 * 1000;

export class FileService {
  /** Asked before the sweep touches a tenant: one that answers true holds the tenant's blobs (e.g. a snapshot running). */
  readonly sweepHolds: ((tenantId: string) => Promise<boolean>)[] = [];
  #lastSweep = 0;
  #sweeping: Promise<unknown> | undefined;

  constructor(private readonly platform: Platform) {}

  /** Sweeps orphan blobs when SWEEP_EVERY_MS has passed since the last sweep began; never two at once. */
  sweepDue(now = Date.now()): Promise<unknown> {
    if (this.#sweeping || now - this.#lastSweep < SWEEP_EVERY_MS) return this.#sweeping ?? Promise.resolve();
    this.#lastSweep = now;
    this.#sweeping = sweepOrphanBlobs(this.platform, { held: (tenantId) => this.holds(tenantId) }).finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  /** Whether any of sweepHolds holds the tenant's blobs now. */
  async holds(tenantId: string): Promise<boolean> {
    for (const hold of this.sweepHolds) if (await hold(tenantId)) return true;
    return false;
  }

  /** Deletes every blob of a tenant that is being purged (its rows go with the rest of its data). */
  async purgeTenant(tenantId: string): Promise<void> {
    const removed = await removeTenantBlobs(await this.platform.objects.forTenant(tenantId), tenantId);
    if (removed > 0)
      this.platform.log.info({ type: 'files.purged', tenant_id: tenantId, blobs: removed }, 'tenant blobs deleted');
  }

  #entitlements(access: TenantAccess): Entitlements {
    return this.platform.plans.entitlements(access.plan.id, access.plan.overrides);
  }

  /** The largest file the tenant may store: its plan's max_file_bytes, within STRATA_MAX_FILE_BYTES. */
  #limit(ent: Entitlements): { limit: number; byPlan: boolean } {
    const plan = ent.quotas.max_file_bytes;
    const server = this.platform.config.maxFileBytes;
    return plan !== null && plan < server ? { limit: plan, byPlan: true } : { limit: server, byPlan: false };
  }

  #tooLarge(ent: Entitlements, size: number | undefined): AppError {
    const { limit, byPlan } = this.#limit(ent);
    const needed = size ?? limit + 1;
    const upgrade =
      byPlan && needed <= this.platform.config.maxFileBytes
        ? this.platform.plans.cheapestAllowing('max_file_bytes', needed)
        : undefined;
    const what = size === undefined ? 'The file is larger than' : `The file is ${size} bytes; more than`;
    return new AppError(
      'file_too_large',
      `${what} the ${byPlan ? `${ent.plan.name} plan's` : "server's"} limit of ${limit} bytes${upgrade ? `; the ${upgrade.name} plan allows it` : ''}`,
      {
        ...(size === undefined ? {} : { size_bytes: size }),
        limit_bytes: limit,
        limit: byPlan ? 'max_file_bytes' : 'STRATA_MAX_FILE_BYTES',
        current_plan: ent.plan.id,
        required_plan: upgrade?.id ?? null,
      },
    );
  }

  /** Reads the file's row and the tenant's usage without locking (the checks made before an upload is read). */
  async #peek(tenantId: string, key: string): Promise<{ current: FileRow | undefined; usage: number }> {
    return this.platform.router.withTenant(tenantId, async (tx) => {
      const file = await tx.query<FileRow>(`SELECT ${COLUMNS} FROM strata_data.files WHERE key = $1`, [key]);
      const usage = await tx.query<Usage>('SELECT doc_bytes, file_bytes, moved FROM strata_data.tenant_sequences');
      return { current: file.rows[0], usage: usage.rows[0] ? stored(usage.rows[0]) : 0 };
    });
  }

  /** Stores the body under the key (create or replace); `created` tells which. */
  async put(
    access: TenantAccess,
    key: string,
    body: Readable | undefined,
    input: PutFileInput,
  ): Promise<{ file: FileMeta; created: boolean }> {
    checkFileKey(key);
    const tenantId = access.tenantId;
    const ent = this.#entitlements(access);
    const { limit } = this.#limit(ent);
    if (input.contentLength !== undefined && input.contentLength > limit)
      throw this.#tooLarge(ent, input.contentLength);
    // What can be refused before the body is read is refused then (and checked again when the row is written).
    const before = await this.#peek(tenantId, key);
    checkPreconditions(before.current, input);
    if (input.contentLength !== undefined) {
      const growth = input.contentLength - Number(before.current?.size_bytes ?? 0);
      if (growth > 0) this.platform.plans.requireQuota(ent, 'storage_bytes', before.usage, growth);
    }

    const spooled = await spool(body, limit, () => this.#tooLarge(ent, undefined));
    try {
      const store = await this.platform.objects.forTenant(tenantId);
      await ensureBlob(store, tenantId, spooled);
      const out = await this.platform.router.withTenantWrite(tenantId, async (tx) => {
        const usage = await lockUsage(tx);
        const found = await tx.query<FileRow>(`SELECT ${COLUMNS} FROM strata_data.files WHERE key = $1 FOR UPDATE`, [
          key,
        ]);
        const current = found.rows[0];
        checkPreconditions(current, input);
        const growth = spooled.size - Number(current?.size_bytes ?? 0);
        if (growth > 0) this.platform.plans.requireQuota(ent, 'storage_bytes', stored(usage), growth);
        const written = await tx.query<FileRow>(
          `INSERT INTO strata_data.files AS f (tenant_id, key, size_bytes, content_type, sha256, version)
           VALUES ($1, $2, $3, $4, $5, 1)
           ON CONFLICT (tenant_id, key) DO UPDATE SET
             size_bytes = EXCLUDED.size_bytes, content_type = EXCLUDED.content_type, sha256 = EXCLUDED.sha256,
             version = f.version + 1, updated_at = now()
           RETURNING ${COLUMNS}`,
          [tenantId, key, spooled.size, input.contentType, spooled.sha256],
        );
        if (growth !== 0) {
          await tx.query('UPDATE strata_data.tenant_sequences SET file_bytes = file_bytes + $1', [growth]);
        }
        return { file: toFile(written.rows[0] as FileRow), created: !current };
      });
      // An orphan sweep that looked at this blob before the row committed may have taken it: put it back.
      try {
        if (!(await store.head(blobKey(tenantId, spooled.sha256)))) await ensureBlob(store, tenantId, spooled);
      } catch (err) {
        this.platform.log.error(
          { err, type: 'files.blob_recheck', tenant_id: tenantId, sha256: spooled.sha256 },
          'could not check the blob of a file just written',
        );
      }
      return out;
    } finally {
      await rm(spooled.path, { force: true });
    }
  }

  /** The file's metadata; 404 when there is none. */
  async get(tenantId: string, key: string): Promise<FileMeta> {
    checkFileKey(key);
    const row = await this.platform.router.withTenant(tenantId, async (tx) => {
      const r = await tx.query<FileRow>(`SELECT ${COLUMNS} FROM strata_data.files WHERE key = $1`, [key]);
      return r.rows[0];
    });
    if (!row) throw errors.notFound('file');
    return toFile(row);
  }

  /** The file's metadata and its bytes. */
  async open(tenantId: string, key: string): Promise<{ file: FileMeta; body: Readable }> {
    const file = await this.get(tenantId, key);
    const store = await this.platform.objects.forTenant(tenantId);
    const blob = await store.get(blobKey(tenantId, file.sha256));
    if (!blob) {
      this.platform.log.error(
        { type: 'files.blob_missing', tenant_id: tenantId, sha256: file.sha256, store: store.description },
        'a file has no blob',
      );
      throw new AppError('internal', 'The bytes of this file are missing from the object store');
    }
    return { file, body: blob.body };
  }

  /** Deletes the file (its blob goes with the next orphan sweep). 404 when there is none. */
  async remove(access: TenantAccess, key: string, ifMatch?: number | '*'): Promise<void> {
    checkFileKey(key);
    await this.platform.router.withTenantWrite(access.tenantId, async (tx) => {
      await lockUsage(tx);
      const found = await tx.query<FileRow>(`SELECT ${COLUMNS} FROM strata_data.files WHERE key = $1 FOR UPDATE`, [
        key,
      ]);
      const current = found.rows[0];
      if (!current && ifMatch === undefined) throw errors.notFound('file');
      checkPreconditions(current, ifMatch === undefined ? {} : { ifMatch });
      await tx.query('DELETE FROM strata_data.files WHERE key = $1', [key]);
      await tx.query('UPDATE strata_data.tenant_sequences SET file_bytes = file_bytes - $1', [
        Number(current?.size_bytes ?? 0),
      ]);
    });
  }

  /** Files in key order (byte order), optionally only those whose key starts with `prefix`; keyset-paginated. */
  async list(
    tenantId: string,
    query: { prefix?: string; limit?: number; cursor?: string },
  ): Promise<{ data: FileMeta[]; next_cursor: string | null }> {
    const limit = query.limit ?? 100;
    const after = query.cursor === undefined ? '' : decodeFileCursor(query.cursor);
    const like = `${(query.prefix ?? '').replace(/[\\%_]/g, '\\$&')}%`;
    const rows = await this.platform.router.withTenant(tenantId, async (tx) => {
      const r = await tx.query<FileRow>(
        `SELECT ${COLUMNS} FROM strata_data.files
          WHERE key LIKE $1 ESCAPE '\\' AND key > $2 ORDER BY key LIMIT $3`,
        [like, after, limit + 1],
      );
      return r.rows;
    });
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    const last = page[page.length - 1];
    return {
      data: page.map(toFile),
      next_cursor: more && last ? Buffer.from(last.key).toString('base64url') : null,
    };
  }
}

function decodeFileCursor(cursor: string): string {
  const key = Buffer.from(cursor, 'base64url').toString();
  if (!cursor || keyProblem(key) || Buffer.from(key).toString('base64url') !== cursor) {
    throw new AppError('bad_request', 'The cursor is not one this API returned');
  }
  return key;
}
