import type { Platform } from '../../platform/context.js';
import type { Database } from '../../platform/db/driver.js';
import { updateById, withSystem, withTenant } from '../../platform/db/tenant-context.js';
import { AppError, errors } from '../../platform/errors.js';
import { iso, newId } from '../../platform/ids.js';
import { deletePrefix, type ObjectStore } from '../../platform/objects/store.js';
import type { IndexManager } from '../collections/indexes.js';
import { copyTenantBlobs, tenantBlobPrefix } from '../files/blobs.js';
import { removeTenantData } from '../tenants/service.js';
import type { ValidByodConfig } from './byod-check.js';
import { discardDatastore, registerDatastore } from './datastores.js';
import type { Placement } from './router.js';
import { lastKey, type Read, scanTable } from './table-scan.js';

/** Where a move goes. BYOD configurations arrive already validated and connection-tested. */
export type MoveTarget =
  | { kind: 'shared'; region: string }
  | { kind: 'dedicated'; region: string }
  | { kind: 'byod'; region: string; config: ValidByodConfig };

/**
 * Live moves of a tenant's data between any two placements: the shared datastore of a region, a dedicated
 * database (created for the move on the region's pool), or the tenant's own database (BYOD).
 *
 *   target    a dedicated or BYOD target is registered (and a dedicated one created) before the copy;
 *             any target is brought to the tenant migrations
 *   copying   the tables are copied in batches, then the changes committed meanwhile (read from the change
 *             feed) are applied, while the tenant keeps reading and writing at the source
 *   fence     one source transaction locks the tenant's sequence row, so no write of the tenant can commit
 *             there (writes wait at commit, at most the write lock timeout, then get 503 + Retry-After);
 *             the last changes are applied, the copy is verified (document count and a checksum over ids
 *             and versions), and the source is marked moved, so nothing can ever commit there again
 *   switched  the control plane points the tenant at the target (new epoch: sync clients resynchronize);
 *             the source copy stays until finish() drops it
 *
 * Progress is in strata.moves. A node that restarts finishes a move whose source is already marked moved
 * and undoes (drops the partial copy of) one that is not.
 */

const BATCH = 1000;
/** Catch-up passes before the fence: at most this many, and fewer once a pass applies fewer than FENCE_READY changes. */
const CATCH_UP_PASSES = 10;
const FENCE_READY = 100;

interface TableSpec {
  name: string;
  key: string[];
  /** Columns to overwrite when a row already copied has changed since. */
  update?: string[];
}
const TABLES: TableSpec[] = [
  { name: 'collections', key: ['name'], update: ['json_schema', 'settings', 'updated_at'] },
  {
    name: 'documents',
    key: ['collection', 'id'],
    update: ['version', 'body', 'deleted', 'embedding', 'size_bytes', 'created_at', 'updated_at'],
  },
  { name: 'changes', key: ['seq'] },
  { name: 'idempotency', key: ['scope', 'key'], update: ['fingerprint', 'status', 'response', 'created_at'] },
  {
    name: 'files',
    key: ['key'],
    update: ['size_bytes', 'content_type', 'sha256', 'version', 'created_at', 'updated_at'],
  },
];
const FILES = TABLES[4] as TableSpec;

/** Fills a prepared target with the tenant's data from elsewhere than the source (a snapshot being restored). */
export type Fill = (target: Database, targetStore: ObjectStore) => Promise<void>;

export interface MoveStatus {
  id: string;
  tenant_id: string;
  source_region: string;
  source_kind: Placement['kind'];
  target_region: string;
  target_kind: Placement['kind'];
  phase: 'copying' | 'fenced' | 'switched' | 'finished' | 'failed' | 'rolled_back';
  /** The move this one rolls back (a move back to that move's source), if it is one. */
  rolls_back: string | null;
  documents_total: number;
  documents_copied: number;
  rate_per_second: number | null;
  eta_seconds: number | null;
  pause_ms: number | null;
  error: string | null;
  started_at: string;
  switched_at: string | null;
  finished_at: string | null;
}

interface MoveRow {
  id: string;
  owner_tenant: string;
  source_region: string;
  source_datastore: string | null;
  source_kind: Placement['kind'];
  target_region: string;
  target_kind: Placement['kind'];
  target_datastore: string | null;
  rolls_back: string | null;
  phase: MoveStatus['phase'];
  documents_total: number;
  documents_copied: number;
  pause_ms: number | null;
  error: string | null;
  started_at: Date;
  switched_at: Date | null;
  finished_at: Date | null;
}

function toStatus(r: MoveRow): MoveStatus {
  const seconds = (Date.now() - new Date(r.started_at).getTime()) / 1000;
  const copied = Number(r.documents_copied);
  const total = Number(r.documents_total);
  const rate = r.phase === 'copying' && seconds > 0 ? copied / seconds : null;
  return {
    id: r.id,
    tenant_id: r.owner_tenant,
    source_region: r.source_region,
    source_kind: r.source_kind,
    target_region: r.target_region,
    target_kind: r.target_kind,
    phase: r.phase,
    rolls_back: r.rolls_back,
    documents_total: total,
    documents_copied: copied,
    rate_per_second: rate === null ? null : Math.round(rate),
    eta_seconds: rate ? Math.max(0, Math.round((total - copied) / rate)) : null,
    pause_ms: r.pause_ms,
    error: r.error,
    started_at: iso(r.started_at) as string,
    switched_at: iso(r.switched_at),
    finished_at: iso(r.finished_at),
  };
}

const keyList = (t: TableSpec) => t.key.join(', ');

/** Deletes the tenant's file blobs from a store it left (not its snapshots, which stay where they were taken). */
const removeBlobs = (store: ObjectStore, tenantId: string) =>
  deletePrefix(store, `${tenantBlobPrefix(tenantId)}blobs/`);

export class MoveService {
  readonly #running = new Map<string, Promise<void>>();
  constructor(
    private readonly platform: Platform,
    private readonly indexes: IndexManager,
  ) {}

  #record(id: string, fields: Record<string, unknown>): Promise<void> {
    return updateById(this.platform.db, 'strata.moves', id, fields);
  }

  async list(tenantId: string): Promise<MoveStatus[]> {
    const rows = await withSystem(this.platform.db, (tx) =>
      tx.query<MoveRow>('SELECT * FROM strata.moves WHERE owner_tenant = $1 ORDER BY started_at DESC LIMIT 100', [
        tenantId,
      ]),
    );
    return rows.rows.map(toStatus);
  }

  async get(tenantId: string, moveId: string): Promise<MoveStatus> {
    return toStatus(await this.#load(tenantId, moveId));
  }

  /**
   * Starts a move in the background and returns its first status. A dedicated target is created and any
   * registered target opened (and migrated) before this returns, so those failures are answered at once.
   */
  async start(
    tenantId: string,
    target: MoveTarget,
    fill?: Fill,
    back?: { move: string; datastoreId: string | null },
  ): Promise<MoveStatus> {
    const tenant = await withSystem(this.platform.db, async (tx) => {
      const r = await tx.query<{ allowed_regions: string[] }>(
        'SELECT allowed_regions FROM strata.tenants WHERE id = $1',
        [tenantId],
      );
      return r.rows[0];
    });
    if (!tenant) throw errors.notFound('tenant');
    if (!this.platform.config.regions.includes(target.region) || !tenant.allowed_regions.includes(target.region)) {
      throw new AppError('region_not_allowed', `The tenant's data may not be placed in region ${target.region}`, {
        allowed_regions: tenant.allowed_regions,
      });
    }
    this.platform.router.invalidate(tenantId);
    const current = await this.platform.router.placementOf(tenantId);
    const source = await this.platform.router.forTenant(tenantId);
    if (!back && target.kind === 'shared' && source === (await this.platform.router.forRegion(target.region))) {
      throw new AppError('conflict', `The tenant's data is already in region ${target.region}'s shared datastore`);
    }
    if (!back && target.kind === 'dedicated' && current.kind === 'dedicated' && current.region === target.region) {
      throw new AppError('conflict', `The tenant's data is already in a dedicated database in region ${target.region}`);
    }
    // A new move ends the grace period of the previous one: its source copy is dropped first, so that no
    // later cleanup can reach a datastore this move may go back to. (A rollback goes back to that copy.)
    if (!back) await this.finishAll(tenantId);

    const id = newId();
    const inserted = await withSystem(this.platform.db, async (tx) => {
      const busy = await tx.query(
        "SELECT 1 FROM strata.moves WHERE owner_tenant = $1 AND phase IN ('copying', 'fenced') FOR UPDATE",
        [tenantId],
      );
      if (busy.rows.length > 0) return false;
      await tx.query(
        `INSERT INTO strata.moves (id, owner_tenant, source_region, source_datastore, source_kind, target_region,
                                   target_kind, rolls_back, phase)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'copying')`,
        [
          id,
          tenantId,
          current.region,
          current.datastoreId,
          current.kind,
          target.region,
          target.kind,
          back?.move ?? null,
        ],
      );
      return true;
    });
    if (!inserted) throw new AppError('conflict', 'A move of this tenant is already under way');
    let targetDatastore: string | null = null;
    let targetDb: Database;
    try {
      if (back?.datastoreId) {
        // Back to the datastore the rolled-back move left: still registered, its copy about to be refreshed.
        targetDatastore = back.datastoreId;
        await this.#record(id, { target_datastore: targetDatastore });
        targetDb = await this.platform.router.forDatastore(targetDatastore);
      } else if (target.kind !== 'shared') {
        targetDatastore = await registerDatastore(this.platform, tenantId, target.region, target);
        await this.#record(id, { target_datastore: targetDatastore });
        targetDb = await this.platform.router.forDatastore(targetDatastore);
      } else {
        targetDb = await this.platform.router.forRegion(target.region);
      }
    } catch (err) {
      await this.#record(id, { phase: 'failed', error: String((err as Error).message), finished_at: new Date() });
      throw err;
    }
    const stores = {
      source: await this.platform.objects.forPlacement(current),
      target: await this.platform.objects.forPlacement({ region: target.region, datastoreId: targetDatastore }),
    };
    const run = this.#run(id, tenantId, source, targetDb, stores, target.region, targetDatastore, fill).catch(
      async (err) => {
        this.platform.log.error({ err, type: 'move.failed', move_id: id, tenant_id: tenantId }, 'move failed');
        await this.#abandon(tenantId, target.region, targetDatastore, back?.move ?? null).catch(() => {});
        await this.#record(id, { phase: 'failed', error: String((err as Error).message), finished_at: new Date() });
      },
    );
    this.#running.set(id, run);
    void run.finally(() => this.#running.delete(id));
    return this.get(tenantId, id);
  }

  /**
   * Undoes what a failed or interrupted move put in its target. A rollback's target is the datastore the
   * rolled-back move left, still that move's to drop: only the rows copied into it are removed.
   */
  async #abandon(tenantId: string, region: string, datastoreId: string | null, rollsBack: string | null) {
    if (!rollsBack) return this.#leave(tenantId, region, datastoreId);
    const db = datastoreId
      ? await this.platform.router.forDatastore(datastoreId)
      : await this.platform.router.forRegion(region);
    await this.#undo(tenantId, db);
  }

  /**
   * Removes the tenant from a placement it is not in (a failed move's target, a finished move's source):
   * its file blobs from that placement's object store unless it is the tenant's current one, then its rows
   * (a registered datastore is discarded whole).
   */
  async #leave(tenantId: string, region: string, datastoreId: string | null) {
    const store = await this.platform.objects.forPlacement({ region, datastoreId });
    if (store !== (await this.platform.objects.forTenant(tenantId))) await removeBlobs(store, tenantId);
    if (datastoreId) await discardDatastore(this.platform, datastoreId, this.indexes);
    else await this.#undo(tenantId, await this.platform.router.forRegion(region));
  }

  /** Waits for a running move (tests and the CLI). */
  async settled(moveId: string): Promise<void> {
    await this.#running.get(moveId);
  }

  async #run(
    id: string,
    tenantId: string,
    source: Database,
    target: Database,
    stores: { source: ObjectStore; target: ObjectStore },
    targetRegion: string,
    targetDatastore: string | null,
    fill?: Fill,
  ) {
    const read: Read = async (sql, params) =>
      (await withTenant(source, tenantId, (tx) => tx.query(sql, params))).rows as never;
    await this.#undo(tenantId, target); // leftovers of an earlier failed attempt
    if (fill) return this.#runFill(id, tenantId, source, target, stores.target, targetRegion, targetDatastore, fill);
    const copyBlobs = async (q: Read) => {
      if (stores.source === stores.target) return;
      const shas = await q<{ sha256: string }>('SELECT DISTINCT sha256 FROM strata_data.files');
      await copyTenantBlobs(
        stores.source,
        stores.target,
        tenantId,
        shas.map((r) => r.sha256),
      );
    };
    const [{ n } = { n: 0 }] = await read<{ n: number }>('SELECT count(*)::int AS n FROM strata_data.documents');
    await this.#record(id, { documents_total: n });
    const [{ last_seq: startSeq } = { last_seq: 0 }] = await read<{ last_seq: number }>(
      'SELECT coalesce(max(last_seq), 0)::bigint AS last_seq FROM strata_data.tenant_sequences',
    );

    // 1. Copy, while the tenant keeps working at the source.
    for (const table of TABLES) {
      await this.#copyTable(read, target, tenantId, table, async (copied) => {
        // Documents the tenant creates during the copy are copied too: the total grows with them.
        if (table.name === 'documents') {
          await this.#record(id, { documents_copied: copied, documents_total: Math.max(n, copied) });
        }
      });
    }
    await this.indexes.ensureForTenant(target, tenantId);
    await copyBlobs(read);
    // 2. Catch up with what committed meanwhile, without pausing anything: a few passes, each up to the
    //    sequence at its start (writers keep going, so chasing the very end would never finish), until the
    //    rest is small enough for the fence.
    let applied = Number(startSeq);
    for (let pass = 0; pass < CATCH_UP_PASSES; pass++) {
      const [{ last_seq: upTo } = { last_seq: 0 }] = await read<{ last_seq: number }>(
        'SELECT coalesce(max(last_seq), 0)::bigint AS last_seq FROM strata_data.tenant_sequences',
      );
      const before = applied;
      applied = await this.#catchUp(read, target, tenantId, applied, Number(upTo));
      // What is left for the fence is what commits during the last pass: stop when passes are that short.
      if (applied - before < FENCE_READY) break;
    }

    // 3. Fence, last catch-up, verify; then point the tenant at the target.
    await this.#fenceAndSwitch(id, tenantId, source, targetRegion, targetDatastore, async (fenced) => {
      applied = await this.#catchUp(fenced, target, tenantId, applied);
      await this.#syncSmallTables(fenced, target, tenantId);
      await this.#syncFiles(fenced, target, tenantId);
      await copyBlobs(fenced); // only the blobs of files written during the move are new
      await this.#verify(fenced, target, tenantId);
    });
  }

  /**
   * The end of every move. One source transaction locks the tenant's sequence row (made first if the tenant
   * never wrote there), so no write of the tenant can commit at the source while `underFence` brings the
   * target up to date; then the source is marked moved (nothing can ever commit there again), and the control
   * plane points the tenant at the target.
   */
  async #fenceAndSwitch(
    id: string,
    tenantId: string,
    source: Database,
    targetRegion: string,
    targetDatastore: string | null,
    underFence: (fenced: Read) => Promise<void>,
  ) {
    const fencedAt = Date.now();
    await withTenant(source, tenantId, async (tx) => {
      await tx.query(
        'INSERT INTO strata_data.tenant_sequences (tenant_id) VALUES ($1) ON CONFLICT (tenant_id) DO NOTHING',
        [tenantId],
      );
      await tx.query('SELECT 1 FROM strata_data.tenant_sequences FOR UPDATE');
      await underFence(async (sql, params) => (await tx.query(sql, params)).rows as never);
      await tx.query('UPDATE strata_data.tenant_sequences SET moved = true');
    });
    await this.#record(id, { phase: 'fenced' });
    await this.#switch(id, tenantId, targetRegion, targetDatastore, fencedAt);
  }

  /**
   * A move whose data comes from `fill` (a snapshot) instead of the source: fill the target, build its
   * indexes, then fence the source and switch as any move does. The target's epoch is set past the source's.
   */
  async #runFill(
    id: string,
    tenantId: string,
    source: Database,
    target: Database,
    targetStore: ObjectStore,
    targetRegion: string,
    targetDatastore: string | null,
    fill: Fill,
  ) {
    await fill(target, targetStore);
    const { rows } = await withTenant(target, tenantId, (tx) =>
      tx.query<{ n: number }>('SELECT count(*)::int AS n FROM strata_data.documents'),
    );
    const n = rows[0]?.n ?? 0;
    await this.#record(id, { documents_total: n, documents_copied: n });
    await this.indexes.ensureForTenant(target, tenantId);
    await this.#fenceAndSwitch(id, tenantId, source, targetRegion, targetDatastore, async (fenced) => {
      const [seq] = await fenced<{ epoch: number }>('SELECT epoch FROM strata_data.tenant_sequences');
      await withTenant(target, tenantId, (t) =>
        t.query('UPDATE strata_data.tenant_sequences SET epoch = greatest(epoch, $1::int + 1)', [seq?.epoch ?? 1]),
      );
    });
  }

  /** Files are not in the change feed: under the fence, the target's file rows are made equal to the source's. */
  async #syncFiles(read: Read, target: Database, tenantId: string) {
    const have = new Map(
      (
        await withTenant(target, tenantId, (tx) =>
          tx.query<{ key: string; version: number }>('SELECT key, version FROM strata_data.files'),
        )
      ).rows.map((r) => [r.key, Number(r.version)]),
    );
    const rows = await read<{ key: string; version: number }>('SELECT key, version FROM strata_data.files');
    const changed = rows.filter((r) => have.get(r.key) !== Number(r.version)).map((r) => r.key);
    const keep = new Set(rows.map((r) => r.key));
    const gone = [...have.keys()].filter((k) => !keep.has(k));
    for (let i = 0; i < changed.length; i += BATCH) {
      const full = await read<{ r: Record<string, unknown> }>(
        'SELECT to_jsonb(f) AS r FROM strata_data.files f WHERE key = ANY($1::text[])',
        [changed.slice(i, i + BATCH)],
      );
      await this.#write(
        target,
        tenantId,
        FILES,
        full.map((x) => x.r),
      );
    }
    if (gone.length > 0) {
      await withTenant(target, tenantId, (tx) =>
        tx.query('DELETE FROM strata_data.files WHERE key = ANY($1::text[])', [gone]),
      );
    }
  }

  async #switch(
    id: string,
    tenantId: string,
    targetRegion: string,
    targetDatastore: string | null,
    fencedAt: number | null,
  ) {
    await withSystem(this.platform.db, (tx) =>
      tx.query('UPDATE strata.tenants SET data_region = $2, datastore_id = $3, updated_at = now() WHERE id = $1', [
        tenantId,
        targetRegion,
        targetDatastore,
      ]),
    );
    await this.platform.router.announce(tenantId);
    this.platform.authCache.clear();
    // A rollback that switched ends the move it rolled back: the tenant is where that move started.
    await withSystem(this.platform.db, (tx) =>
      tx.query(
        `UPDATE strata.moves SET phase = 'rolled_back', finished_at = now()
          WHERE id = (SELECT rolls_back FROM strata.moves WHERE id = $1) AND phase = 'switched'`,
        [id],
      ),
    );
    await this.#record(id, {
      phase: 'switched',
      switched_at: new Date(),
      ...(fencedAt ? { pause_ms: Date.now() - fencedAt } : {}),
    });
    this.platform.log.info({ type: 'move.switched', move_id: id, tenant_id: tenantId }, 'tenant moved');
  }

  /**
   * Copies a table in key order, in batches. With `bounded`, only up to the last key there was when the copy
   * started: rows added while it runs come with the catch-up (or, for tables outside the change feed, are
   * synced under the fence), so a tenant that keeps writing cannot keep the copy chasing the end.
   */
  async #copyTable(
    read: Read,
    target: Database,
    tenantId: string,
    table: TableSpec,
    progress: (n: number) => Promise<void>,
    bounded = true,
  ) {
    const upTo = bounded ? await lastKey(read, table.name, table.key) : null;
    if (bounded && !upTo) return;
    let copied = 0;
    for await (const rows of scanTable(read, table.name, table.key, { batch: BATCH, upTo })) {
      await this.#write(target, tenantId, table, rows);
      copied += rows.length;
      await progress(copied);
    }
  }

  /** Inserts (or, for tables with updatable columns, refreshes) rows in the target. */
  async #write(target: Database, tenantId: string, table: TableSpec, rows: Record<string, unknown>[]) {
    if (rows.length === 0) return;
    const conflict = table.update
      ? `ON CONFLICT (tenant_id, ${keyList(table)}) DO UPDATE SET ${table.update.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`
      : 'ON CONFLICT DO NOTHING';
    await withTenant(target, tenantId, (tx) =>
      tx.query(
        `INSERT INTO strata_data.${table.name}
         SELECT * FROM jsonb_populate_recordset(NULL::strata_data.${table.name}, $1::jsonb) ${conflict}`,
        [JSON.stringify(rows)],
      ),
    );
  }

  /** Applies the changes after `since` (up to `upTo`): their change rows and the current state of the documents they touched. */
  async #catchUp(read: Read, target: Database, tenantId: string, since: number, upTo = Number.MAX_SAFE_INTEGER) {
    let last = since;
    for (;;) {
      const changes = await read<{ r: Record<string, unknown>; seq: number; collection: string; doc_id: string }>(
        `SELECT to_jsonb(c) AS r, c.seq, c.collection, c.doc_id FROM strata_data.changes c
          WHERE c.seq > $1 AND c.seq <= $2 ORDER BY c.seq LIMIT ${BATCH}`,
        [last, upTo],
      );
      if (changes.length === 0) return last;
      const docs = await read<{ r: Record<string, unknown> }>(
        `SELECT to_jsonb(d) AS r FROM strata_data.documents d
           JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[])) AS k(collection, id)
             ON d.collection = k.collection AND d.id = k.id`,
        [changes.map((c) => c.collection), changes.map((c) => c.doc_id)],
      );
      await this.#syncCollections(read, target, tenantId);
      await this.#write(
        target,
        tenantId,
        TABLES[1] as TableSpec,
        docs.map((d) => d.r),
      );
      await this.#write(
        target,
        tenantId,
        TABLES[2] as TableSpec,
        changes.map((c) => c.r),
      );
      last = Number(changes[changes.length - 1]?.seq);
    }
  }

  /** Collections are few: copy them whole, and drop in the target the ones the source no longer has. */
  async #syncCollections(read: Read, target: Database, tenantId: string) {
    const rows = await read<{ r: Record<string, unknown>; name: string }>(
      'SELECT to_jsonb(c) AS r, c.name FROM strata_data.collections c',
    );
    await this.#write(
      target,
      tenantId,
      TABLES[0] as TableSpec,
      rows.map((x) => x.r),
    );
    await withTenant(target, tenantId, (tx) =>
      tx.query('DELETE FROM strata_data.collections WHERE NOT (name = ANY($1::text[]))', [rows.map((x) => x.name)]),
    );
  }

  async #syncSmallTables(read: Read, target: Database, tenantId: string) {
    await this.#syncCollections(read, target, tenantId);
    await this.#copyTable(read, target, tenantId, TABLES[3] as TableSpec, async () => {}, false);
    // The sequence row, in a new epoch: sync clients holding checkpoints of the old datastore start over.
    const [seq] = await read<{
      epoch: number;
      last_seq: number;
      doc_count: number;
      doc_bytes: number;
      file_bytes: number;
    }>('SELECT epoch, last_seq, doc_count, doc_bytes, file_bytes FROM strata_data.tenant_sequences');
    await withTenant(target, tenantId, (tx) =>
      tx.query(
        `INSERT INTO strata_data.tenant_sequences (tenant_id, epoch, last_seq, doc_count, doc_bytes, file_bytes, moved)
         VALUES ($1, $2, $3, $4, $5, $6, false)
         ON CONFLICT (tenant_id) DO UPDATE SET epoch = EXCLUDED.epoch, last_seq = EXCLUDED.last_seq,
           doc_count = EXCLUDED.doc_count, doc_bytes = EXCLUDED.doc_bytes, file_bytes = EXCLUDED.file_bytes,
           moved = false`,
        [
          tenantId,
          (seq?.epoch ?? 1) + 1,
          seq?.last_seq ?? 0,
          seq?.doc_count ?? 0,
          seq?.doc_bytes ?? 0,
          seq?.file_bytes ?? 0,
        ],
      ),
    );
  }

  /** The copy must equal the source: same documents at the same versions, same last change. */
  async #verify(read: Read, target: Database, tenantId: string) {
    const sql = `SELECT count(*)::int AS n,
                        coalesce(md5(string_agg(collection || '/' || id || '@' || version, ',' ORDER BY collection, id)), '') AS sum,
                        (SELECT coalesce(max(seq), 0)::bigint FROM strata_data.changes) AS last,
                        (SELECT coalesce(md5(string_agg(key || '@' || version || ':' || sha256, ',' ORDER BY key)), '')
                           FROM strata_data.files) AS files
                   FROM strata_data.documents`;
    type Sums = { n: number; sum: string; last: number; files: string };
    // Both sides at once (two databases): this runs while the tenant's writes are held.
    const [[a], b] = await Promise.all([
      read<Sums>(sql),
      withTenant(target, tenantId, (tx) => tx.query<Sums>(sql)).then((r) => r.rows[0]),
    ]);
    if (!a || !b || a.n !== b.n || a.sum !== b.sum || Number(a.last) !== Number(b.last) || a.files !== b.files) {
      throw new Error(`verification failed: source ${JSON.stringify(a)}, target ${JSON.stringify(b)}`);
    }
  }

  /** Removes the tenant's rows from a datastore (a failed copy, or the source after finish()). */
  #undo(tenantId: string, db: Database) {
    return removeTenantData(db, tenantId, this.indexes);
  }

  /** The datastore a move left. */
  #sourceOf(m: MoveRow): Promise<Database> {
    return m.source_datastore
      ? this.platform.router.forDatastore(m.source_datastore)
      : this.platform.router.forRegion(m.source_region);
  }

  async #load(tenantId: string, moveId: string): Promise<MoveRow> {
    const rows = await withSystem(this.platform.db, (tx) =>
      tx.query<MoveRow>('SELECT * FROM strata.moves WHERE id = $1 AND owner_tenant = $2', [moveId, tenantId]),
    );
    const row = rows.rows[0];
    if (!row) throw errors.notFound('move');
    return row;
  }

  /** Drops the source copy of a switched move (a dedicated source database is dropped whole). */
  async finish(tenantId: string, moveId: string): Promise<MoveStatus> {
    const move = await this.#load(tenantId, moveId);
    if (move.phase !== 'switched') {
      throw new AppError('conflict', `Only a switched move can be finished; this one is ${move.phase}`);
    }
    this.platform.router.invalidate(tenantId);
    const now = await this.platform.router.placementOf(tenantId);
    const isCurrent = move.source_datastore
      ? now.datastoreId === move.source_datastore
      : !now.datastoreId && now.region === move.source_region;
    // A source the tenant has since moved back to is its live placement: nothing is dropped there.
    if (!isCurrent) await this.#leave(tenantId, move.source_region, move.source_datastore);
    await this.#record(moveId, { phase: 'finished', finished_at: new Date() });
    return this.get(tenantId, moveId);
  }

  /**
   * Rolls a switched move back while its source copy is kept: a live move back to the same placement (the
   * same registered datastore, whose copy is refreshed from the tenant's current data, writes made since
   * the switch included). When it switches, the first move becomes rolled_back.
   */
  async rollback(tenantId: string, moveId: string): Promise<MoveStatus> {
    const m = await this.#load(tenantId, moveId);
    if (m.phase !== 'switched') {
      throw new AppError(
        'conflict',
        `Only a switched move whose source copy is still kept can be rolled back; this one is ${m.phase}`,
      );
    }
    const target = { kind: m.source_kind, region: m.source_region } as MoveTarget;
    return this.start(tenantId, target, undefined, { move: m.id, datastoreId: m.source_datastore });
  }

  /** Drops the source copies of all the tenant's switched moves (before another move, or a purge). */
  async finishAll(tenantId: string): Promise<void> {
    const switched = await withSystem(this.platform.db, (tx) =>
      tx.query<{ id: string }>("SELECT id FROM strata.moves WHERE owner_tenant = $1 AND phase = 'switched'", [
        tenantId,
      ]),
    );
    for (const m of switched.rows) await this.finish(tenantId, m.id);
  }

  /** Drops the source copies of moves switched longer ago than the grace period (run by the housekeeping timer). */
  async finishDue(now = new Date()): Promise<string[]> {
    const due = await withSystem(this.platform.db, (tx) =>
      tx.query<{ id: string; owner_tenant: string }>(
        `SELECT id, owner_tenant FROM strata.moves
          WHERE phase = 'switched' AND switched_at <= $1::timestamptz - make_interval(secs => $2::float8 * 3600)`,
        [now, this.platform.config.moveSourceGraceHours],
      ),
    );
    for (const m of due.rows) await this.finish(m.owner_tenant, m.id);
    return due.rows.map((m) => m.id);
  }

  /**
   * At boot: a move left in 'copying' is undone (its partial copy dropped; the tenant never left the
   * source); one left 'fenced', or whose source is already marked moved, is switched over.
   */
  async recover(): Promise<void> {
    const open = await withSystem(this.platform.db, (tx) =>
      tx.query<MoveRow>("SELECT * FROM strata.moves WHERE phase IN ('copying', 'fenced')"),
    );
    for (const m of open.rows) {
      const moved = await withTenant(await this.#sourceOf(m), m.owner_tenant, (tx) =>
        tx.query<{ moved: boolean }>('SELECT moved FROM strata_data.tenant_sequences'),
      );
      if (m.phase === 'fenced' || moved.rows[0]?.moved) {
        await this.#switch(m.id, m.owner_tenant, m.target_region, m.target_datastore, null);
      } else {
        await this.#abandon(m.owner_tenant, m.target_region, m.target_datastore, m.rolls_back);
        await this.#record(m.id, { phase: 'failed', error: 'interrupted; undone at restart', finished_at: new Date() });
      }
    }
  }
}
