import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type { Platform } from '../../platform/context.js';
import type { Database, Queryable } from '../../platform/db/driver.js';
import { updateById, withSystem, withTenantSnapshot, withTenantWrite } from '../../platform/db/tenant-context.js';
import { AppError, errors } from '../../platform/errors.js';
import { iso, newId } from '../../platform/ids.js';
import { deletePrefix, type ObjectStore } from '../../platform/objects/store.js';
import type { IndexManager } from '../collections/indexes.js';
import { blobKey, putVerified, tenantBlobPrefix } from '../files/blobs.js';
import { spoolVerified } from '../files/spool.js';
import type { MoveService, MoveStatus, MoveTarget } from '../placement/move.js';
import { type Read, scanTable } from '../placement/table-scan.js';

/**
 * Per-tenant snapshots. A snapshot is taken from one REPEATABLE READ transaction on the tenant's datastore,
 * so it is the tenant's data as of one instant while the tenant keeps writing, and lands in the object store
 * of the tenant's region:
 *
 *   tenants/<t>/snapshots/<id>/data.ndjson.gz    one JSON line per row: {"t": table, "r": row}
 *   tenants/<t>/snapshots/<id>/blobs/<sha256>    a copy of every blob the snapshot's files reference
 *   tenants/<t>/snapshots/<id>/manifest.json     what is there: counts, the data file's SHA-256, the content checksum
 *
 * A restore puts the rows back (in the current placement, or in a new one through a move whose copy comes
 * from the snapshot) and checks the restored content against the snapshot's checksum before it is visible.
 */

/** The tables a snapshot holds, in the order they are written and restored (parents first). */
const TABLES = [
  { name: 'collections', key: ['name'] },
  { name: 'documents', key: ['collection', 'id'] },
  { name: 'changes', key: ['seq'] },
  { name: 'files', key: ['key'] },
] as const;
type TableName = (typeof TABLES)[number]['name'];
const BATCH = 1000;
const FORMAT = 1;

/**
 * One checksum over the tenant's content: every collection (name, schema, settings), document (collection,
 * id, version, body, deleted) and file (key, version, sha256, content type). Computed by the database, in
 * byte order, so the same content gives the same value on every datastore.
 */
const CONTENT_CHECKSUM = `
  SELECT md5(coalesce(string_agg(x, E'\\n' ORDER BY x COLLATE "C"), '')) AS sum FROM (
    SELECT 'c:' || name || ':' || md5(coalesce(json_schema::text, '') || '|' || settings::text) FROM strata_data.collections
    UNION ALL
    SELECT 'd:' || collection || '/' || id || '@' || version || ':' || deleted || ':' || md5(coalesce(body::text, ''))
      FROM strata_data.documents
    UNION ALL
    SELECT 'f:' || key || '@' || version || ':' || sha256 || ':' || content_type FROM strata_data.files
  ) AS content(x)`;

export async function contentChecksum(tx: Queryable): Promise<string> {
  const r = await tx.query<{ sum: string }>(CONTENT_CHECKSUM);
  return r.rows[0]?.sum ?? '';
}

export interface SnapshotStatus {
  id: string;
  tenant_id: string;
  status: 'running' | 'complete' | 'failed';
  region: string;
  epoch: number | null;
  last_seq: number | null;
  collections: number;
  documents: number;
  files: number;
  bytes: number;
  content_checksum: string | null;
  error: string | null;
  created_at: string;
  completed_at: string | null;
}

interface SnapshotRow {
  id: string;
  owner_tenant: string;
  status: SnapshotStatus['status'];
  store_region: string;
  store_datastore: string | null;
  epoch: number | null;
  last_seq: number | string | null;
  collections: number;
  documents: number | string;
  files: number | string;
  bytes: number | string;
  content_checksum: string | null;
  error: string | null;
  created_at: Date;
  completed_at: Date | null;
}

interface Manifest {
  format: number;
  snapshot_id: string;
  tenant_id: string;
  created_at: string;
  epoch: number;
  last_seq: number;
  counts: Record<TableName, number>;
  sequence: { doc_count: number; doc_bytes: number; file_bytes: number };
  data: { key: string; size: number; sha256: string };
  blobs: string[];
  content_checksum: string;
}

const toStatus = (r: SnapshotRow): SnapshotStatus => ({
  id: r.id,
  tenant_id: r.owner_tenant,
  status: r.status,
  region: r.store_region,
  epoch: r.epoch,
  last_seq: r.last_seq === null ? null : Number(r.last_seq),
  collections: r.collections,
  documents: Number(r.documents),
  files: Number(r.files),
  bytes: Number(r.bytes),
  content_checksum: r.content_checksum,
  error: r.error,
  created_at: iso(r.created_at) as string,
  completed_at: iso(r.completed_at),
});

/** 422 snapshot_damaged: what is stored is not what was taken. Nothing of the tenant's data has changed. */
const damaged = (id: string, why: string) =>
  new AppError('snapshot_damaged', `Snapshot ${id} cannot be restored: ${why}; nothing was changed`);

const prefixOf = (tenantId: string, id: string) => `${tenantBlobPrefix(tenantId)}snapshots/${id}/`;
const tempPath = (what: string) => join(tmpdir(), `strata-${what}-${randomUUID()}`);

/** Copies one object to another key (maybe in another store), checking its SHA-256 on the way. */
async function copyObject(from: ObjectStore, fromKey: string, to: ObjectStore, toKey: string, sha256: string) {
  const source = await from.get(fromKey);
  if (!source) throw new Error(`${fromKey} is missing from ${from.description}`);
  return putVerified(source, to, toKey, sha256);
}

export class SnapshotService {
  readonly #running = new Map<string, Promise<void>>();

  constructor(
    private readonly platform: Platform,
    private readonly indexes: IndexManager,
    private readonly moves: MoveService,
  ) {}

  async #load(tenantId: string, id: string): Promise<SnapshotRow> {
    const r = await withSystem(this.platform.db, (tx) =>
      tx.query<SnapshotRow>('SELECT * FROM strata.snapshots WHERE id = $1 AND owner_tenant = $2', [id, tenantId]),
    );
    const row = r.rows[0];
    if (!row) throw errors.notFound('snapshot');
    return row;
  }

  #record(id: string, fields: Record<string, unknown>): Promise<void> {
    return updateById(this.platform.db, 'strata.snapshots', id, fields);
  }

  async get(tenantId: string, id: string): Promise<SnapshotStatus> {
    return toStatus(await this.#load(tenantId, id));
  }

  async list(tenantId: string): Promise<SnapshotStatus[]> {
    const r = await withSystem(this.platform.db, (tx) =>
      tx.query<SnapshotRow>(
        'SELECT * FROM strata.snapshots WHERE owner_tenant = $1 ORDER BY created_at DESC, id DESC LIMIT 200',
        [tenantId],
      ),
    );
    return r.rows.map(toStatus);
  }

  /** Waits for a snapshot being taken (tests, the CLI). */
  async settled(id: string): Promise<void> {
    await this.#running.get(id);
  }

  /** Whether a snapshot of the tenant is being taken (the orphan blob sweep leaves such a tenant alone). */
  async isTaking(tenantId: string): Promise<boolean> {
    const r = await withSystem(this.platform.db, (tx) =>
      tx.query("SELECT 1 FROM strata.snapshots WHERE owner_tenant = $1 AND status = 'running'", [tenantId]),
    );
    return r.rows.length > 0;
  }

  /** Starts taking a snapshot in the background; answers with its first status. */
  async create(tenantId: string): Promise<SnapshotStatus> {
    const placement = await this.platform.router.placementOf(tenantId);
    const region = placement.region;
    // A tenant that brought its own bucket keeps its snapshots there: its data never leaves its infrastructure.
    const bucket = placement.datastoreId ? await this.platform.router.bucketOf(placement.datastoreId) : null;
    const storeDatastore = bucket ? placement.datastoreId : null;
    const id = newId();
    await withSystem(this.platform.db, (tx) =>
      tx.query(
        `INSERT INTO strata.snapshots (id, owner_tenant, status, store_region, store_datastore)
         VALUES ($1, $2, 'running', $3, $4)`,
        [id, tenantId, region, storeDatastore],
      ),
    );
    const where = { region, datastoreId: storeDatastore };
    const run = this.#take(id, tenantId, where).catch(async (err) => {
      this.platform.log.error(
        { err, type: 'snapshot.failed', snapshot_id: id, tenant_id: tenantId },
        'snapshot failed',
      );
      const store = await this.platform.objects.forPlacement(where).catch(() => null);
      if (store) await this.#removeObjects(store, tenantId, id).catch(() => {});
      await this.#record(id, { status: 'failed', error: String((err as Error).message), completed_at: new Date() });
    });
    this.#running.set(id, run);
    void run.finally(() => this.#running.delete(id));
    return this.get(tenantId, id);
  }

  async #take(id: string, tenantId: string, where: { region: string; datastoreId: string | null }): Promise<void> {
    const db = await this.platform.router.forTenant(tenantId);
    const store = await this.platform.objects.forPlacement(where);
    const prefix = prefixOf(tenantId, id);
    const dataPath = tempPath('snapshot');
    try {
      const gzip = createGzip();
      // The compressed bytes are hashed and counted on their way to the file.
      const hash = createHash('sha256');
      let size = 0;
      const meter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          size += chunk.length;
          done(null, chunk);
        },
      });
      const written = pipeline(gzip, meter, createWriteStream(dataPath, { flags: 'wx', mode: 0o600 }));
      const line = (t: TableName, r: unknown) =>
        new Promise<void>((resolve) => {
          if (gzip.write(`${JSON.stringify({ t, r })}\n`)) resolve();
          else gzip.once('drain', resolve);
        });
      const taken = await withTenantSnapshot(db, tenantId, async (tx) => {
        const [seq] = (
          await tx.query<{ epoch: number; last_seq: string; doc_count: string; doc_bytes: string; file_bytes: string }>(
            'SELECT epoch, last_seq, doc_count, doc_bytes, file_bytes FROM strata_data.tenant_sequences',
          )
        ).rows;
        const read: Read = async (sql, params) => (await tx.query(sql, params)).rows as never;
        const counts = {} as Record<TableName, number>;
        for (const table of TABLES) {
          counts[table.name] = 0;
          const batches = scanTable(read, table.name, [...table.key], {
            batch: BATCH,
            select: "to_jsonb(t) - 'tenant_id'",
          });
          for await (const rows of batches) {
            for (const row of rows) await line(table.name, row);
            counts[table.name] += rows.length;
          }
        }
        const blobs = (
          await tx.query<{ sha256: string }>('SELECT DISTINCT sha256 FROM strata_data.files ORDER BY 1')
        ).rows.map((r) => r.sha256);
        return { seq, counts, blobs, checksum: await contentChecksum(tx) };
      });
      gzip.end();
      await written;

      // The blobs the files reference are copied next to the data, so deleting or overwriting a file later
      // (and the orphan sweep, which leaves a tenant alone while its snapshot runs) cannot take them away.
      let bytes = 0;
      for (const sha256 of taken.blobs) {
        bytes += await copyObject(store, blobKey(tenantId, sha256), store, `${prefix}blobs/${sha256}`, sha256);
      }
      const dataSha = hash.digest('hex');
      await store.put(`${prefix}data.ndjson.gz`, dataPath, { size, contentType: 'application/gzip', sha256: dataSha });
      const manifest: Manifest = {
        format: FORMAT,
        snapshot_id: id,
        tenant_id: tenantId,
        created_at: new Date().toISOString(),
        epoch: taken.seq?.epoch ?? 1,
        last_seq: Number(taken.seq?.last_seq ?? 0),
        counts: taken.counts,
        sequence: {
          doc_count: Number(taken.seq?.doc_count ?? 0),
          doc_bytes: Number(taken.seq?.doc_bytes ?? 0),
          file_bytes: Number(taken.seq?.file_bytes ?? 0),
        },
        data: { key: `${prefix}data.ndjson.gz`, size, sha256: dataSha },
        blobs: taken.blobs,
        content_checksum: taken.checksum,
      };
      const body = Buffer.from(JSON.stringify(manifest, null, 2));
      await store.put(`${prefix}manifest.json`, body, { size: body.length, contentType: 'application/json' });
      await this.#record(id, {
        status: 'complete',
        epoch: manifest.epoch,
        last_seq: manifest.last_seq,
        collections: taken.counts.collections,
        documents: taken.counts.documents,
        files: taken.counts.files,
        bytes: bytes + size,
        content_checksum: taken.checksum,
        completed_at: new Date(),
      });
      this.platform.log.info(
        { type: 'snapshot.complete', snapshot_id: id, tenant_id: tenantId, documents: taken.counts.documents },
        'snapshot taken',
      );
    } finally {
      await rm(dataPath, { force: true });
    }
  }

  /** Where a snapshot is kept: its region's store, or the bucket of the tenant's own database. */
  async #storeOf(row: SnapshotRow): Promise<ObjectStore> {
    if (row.store_datastore && !(await this.platform.router.bucketOf(row.store_datastore))) {
      throw new AppError(
        'conflict',
        'The snapshot is in the bucket of a database the tenant no longer uses; Strata can no longer reach it',
      );
    }
    return this.platform.objects.forPlacement({ region: row.store_region, datastoreId: row.store_datastore });
  }

  async #removeObjects(store: ObjectStore, tenantId: string, id: string) {
    await deletePrefix(store, prefixOf(tenantId, id));
  }

  async delete(tenantId: string, id: string): Promise<void> {
    const row = await this.#load(tenantId, id);
    if (row.status === 'running') throw new AppError('conflict', 'The snapshot is still being taken');
    // A snapshot whose bucket Strata can no longer reach (the tenant left that database) loses only its record.
    const store = await this.#storeOf(row).catch(() => null);
    if (store) await this.#removeObjects(store, tenantId, id);
    await withSystem(this.platform.db, (tx) => tx.query('DELETE FROM strata.snapshots WHERE id = $1', [id]));
  }

  /** Removes every snapshot of a tenant (a purge), wherever they were taken. */
  async removeAll(tenantId: string): Promise<void> {
    for (const s of await this.list(tenantId)) await this.delete(tenantId, s.id).catch(() => {});
  }

  /** The manifest of a complete snapshot and its store. */
  async #open(tenantId: string, id: string): Promise<{ manifest: Manifest; store: ObjectStore }> {
    const row = await this.#load(tenantId, id);
    if (row.status !== 'complete') {
      throw new AppError('conflict', `Only a complete snapshot can be restored; this one is ${row.status}`);
    }
    const store = await this.#storeOf(row);
    const got = await store.get(`${prefixOf(tenantId, id)}manifest.json`);
    if (!got) throw new Error(`snapshot ${id}: its manifest is missing from ${store.description}`);
    const chunks: Buffer[] = [];
    for await (const c of got.body) chunks.push(c as Buffer);
    return { manifest: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Manifest, store };
  }

  /**
   * Restores a snapshot. Without a target, into the tenant's current placement: in one transaction that
   * holds the tenant's writes (they wait, then get 503 with Retry-After), the tenant's data is replaced by
   * the snapshot's and checked against its checksum; a new epoch tells sync clients to start over. With a
   * target, into a new placement: a live move whose copy comes from the snapshot (202, follow the move).
   */
  async restore(
    tenantId: string,
    id: string,
    target?: MoveTarget,
  ): Promise<{ restored: RestoreResult } | { move: MoveStatus }> {
    const { manifest, store } = await this.#open(tenantId, id);
    const moving = await withSystem(this.platform.db, (tx) =>
      tx.query("SELECT 1 FROM strata.moves WHERE owner_tenant = $1 AND phase IN ('copying', 'fenced')", [tenantId]),
    );
    if (moving.rows.length > 0) throw new AppError('conflict', 'A move of this tenant is under way; restore after it');
    if (target) {
      const move = await this.moves.start(tenantId, target, async (db, targetStore) => {
        await this.#fill(db, targetStore, tenantId, id, manifest, store);
      });
      return { move };
    }
    const db = await this.platform.router.forTenant(tenantId);
    const restored = await this.#fill(
      db,
      await this.platform.objects.forTenant(tenantId),
      tenantId,
      id,
      manifest,
      store,
    );
    return { restored };
  }

  /** Puts the snapshot's blobs and rows into a datastore and its store, verified, in a new epoch. */
  async #fill(
    db: Database,
    targetStore: ObjectStore,
    tenantId: string,
    id: string,
    manifest: Manifest,
    store: ObjectStore,
  ): Promise<RestoreResult> {
    const prefix = prefixOf(tenantId, id);
    for (const sha256 of manifest.blobs) {
      const there = await targetStore.head(blobKey(tenantId, sha256));
      if (!there) {
        await copyObject(store, `${prefix}blobs/${sha256}`, targetStore, blobKey(tenantId, sha256), sha256).catch(
          (err: Error) => {
            throw damaged(id, err.message);
          },
        );
      }
    }
    const data = await store.get(manifest.data.key);
    if (!data) throw new Error(`snapshot ${id}: its data file is missing from ${store.description}`);
    const spooled = await spoolVerified(data.body, { sha256: manifest.data.sha256, size: manifest.data.size }).catch(
      (err: Error) => {
        throw damaged(id, err.message);
      },
    );
    const started = Date.now();
    try {
      const result = await withTenantWrite(db, tenantId, async (tx) => {
        const [current] = (
          await tx.query<{ epoch: number }>('SELECT epoch FROM strata_data.tenant_sequences FOR UPDATE')
        ).rows;
        for (const table of ['changes', 'idempotency', 'documents', 'collections', 'files']) {
          await tx.query(`DELETE FROM strata_data.${table}`);
        }
        const pending = new Map<TableName, Record<string, unknown>[]>();
        const flush = async (t: TableName) => {
          const rows = pending.get(t) ?? [];
          if (rows.length === 0) return;
          pending.set(t, []);
          await tx.query(
            `INSERT INTO strata_data.${t} SELECT * FROM jsonb_populate_recordset(NULL::strata_data.${t}, $1::jsonb)`,
            [JSON.stringify(rows)],
          );
        };
        const lines = createInterface({
          input: createReadStream(spooled.path).pipe(createGunzip()),
          crlfDelay: Infinity,
        });
        let previous: TableName | null = null;
        for await (const text of lines) {
          if (!text) continue;
          const { t, r } = JSON.parse(text) as { t: TableName; r: Record<string, unknown> };
          if (!TABLES.some((x) => x.name === t)) throw new Error(`snapshot ${id}: unknown table ${t}`);
          if (previous && previous !== t) await flush(previous);
          previous = t;
          const batch = pending.get(t) ?? [];
          batch.push({ ...r, tenant_id: tenantId });
          pending.set(t, batch);
          if (batch.length >= BATCH) await flush(t);
        }
        if (previous) await flush(previous);
        const epoch = Math.max(current?.epoch ?? 1, manifest.epoch) + 1;
        await tx.query(
          `UPDATE strata_data.tenant_sequences
              SET epoch = $1, last_seq = $2, doc_count = $3, doc_bytes = $4, file_bytes = $5`,
          [
            epoch,
            manifest.last_seq,
            manifest.sequence.doc_count,
            manifest.sequence.doc_bytes,
            manifest.sequence.file_bytes,
          ],
        );
        const checksum = await contentChecksum(tx);
        if (checksum !== manifest.content_checksum) {
          throw damaged(
            id,
            `the restored content's checksum ${checksum} is not the snapshot's ${manifest.content_checksum}`,
          );
        }
        return { epoch, checksum };
      });
      // The restored collections' indexes; those of collections no longer there go.
      await this.indexes.dropForTenant(db, tenantId);
      await this.indexes.ensureForTenant(db, tenantId);
      this.platform.log.info(
        { type: 'snapshot.restored', snapshot_id: id, tenant_id: tenantId, ms: Date.now() - started },
        'snapshot restored',
      );
      return {
        snapshot_id: id,
        epoch: result.epoch,
        collections: manifest.counts.collections,
        documents: manifest.counts.documents,
        files: manifest.counts.files,
        content_checksum: result.checksum,
        ms: Date.now() - started,
      };
    } finally {
      await rm(spooled.path, { force: true });
    }
  }
}

export interface RestoreResult {
  snapshot_id: string;
  epoch: number;
  collections: number;
  documents: number;
  files: number;
  content_checksum: string;
  ms: number;
}
