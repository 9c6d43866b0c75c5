import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openObjectStore } from '../src/platform/objects/open.js';
import type { ObjectStore } from '../src/platform/objects/store.js';
import { type Harness, startHarness } from './harness.js';
import { type S3Server, startS3Server } from './s3-server.js';

/**
 * Per-tenant snapshots: taken while the tenant writes (one consistent instant), restored in place or into a
 * new placement, and compared with what was there by a fingerprint computed here, independently of the
 * server's own checksum: every document row read straight from the tenant's datastore, and every file's
 * bytes downloaded through the API.
 */

let h: Harness;
let s3: S3Server;
let euBucket: ObjectStore;
beforeAll(async () => {
  // The eu region keeps its files in a real S3-protocol bucket, so a restore into eu copies blobs into it.
  s3 = await startS3Server(['snap-eu']);
  h = await startHarness({ STRATA_REGIONS: 'local,eu', STRATA_OBJECT_STORES: `eu=${s3.url('snap-eu')}` });
  euBucket = await openObjectStore(s3.url('snap-eu'));
});
afterAll(async () => {
  await euBucket?.close();
  await h?.close();
  await s3?.close();
});

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function tenant(plan = 'enterprise') {
  const slug = `snap${randomBytes(4).toString('hex')}`;
  const created = await h.call(h.operatorToken, 'POST', '/v1/tenants', {
    slug,
    name: slug,
    plan,
    allowed_regions: ['local', 'eu'],
  });
  expect(created.statusCode, created.body).toBe(201);
  const id = created.json().id as string;
  const key = await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/api-keys`, {
    name: 'admin',
    scopes: ['tenant:admin', 'data:write'],
  });
  return { id, key: key.json().secret as string };
}

function putFile(t: { id: string; key: string }, name: string, bytes: Buffer, type = 'application/octet-stream') {
  return h.strata.app.inject({
    method: 'PUT',
    url: `/v1/tenants/${t.id}/files/${name}`,
    headers: { authorization: `Bearer ${t.key}`, 'content-type': type },
    payload: bytes,
  });
}

/** What the tenant has, independently of the server's checksum: document rows from its datastore, file bytes from the API. */
async function fingerprint(t: { id: string; key: string }): Promise<{ sum: string; documents: number; files: number }> {
  const db = await h.strata.platform.router.forTenant(t.id);
  const docs = await db.query<{ line: string }>(
    `SELECT collection || '/' || id || '@' || version || ':' || deleted || ':' || coalesce(body::text, '') AS line
       FROM strata_data.documents WHERE tenant_id = $1`,
    [t.id],
  );
  const cols = await db.query<{ line: string }>(
    `SELECT name || ':' || coalesce(json_schema::text, '') || ':' || settings::text AS line
       FROM strata_data.collections WHERE tenant_id = $1`,
    [t.id],
  );
  const lines = [...docs.rows.map((r) => `d ${r.line}`), ...cols.rows.map((r) => `c ${r.line}`)];
  let files = 0;
  let cursor: string | null = null;
  do {
    const page = await h.call(t.key, 'GET', `/v1/tenants/${t.id}/files?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
    expect(page.statusCode, page.body).toBe(200);
    for (const f of page.json().data as { key: string; content_type: string; version: number }[]) {
      const got = await h.strata.app.inject({
        method: 'GET',
        url: `/v1/tenants/${t.id}/files/${f.key}`,
        headers: { authorization: `Bearer ${t.key}` },
      });
      expect(got.statusCode).toBe(200);
      lines.push(`f ${f.key}@${f.version}:${f.content_type}:${sha256(got.rawPayload)}`);
      files++;
    }
    cursor = page.json().next_cursor;
  } while (cursor);
  lines.sort();
  return { sum: sha256(lines.join('\n')), documents: docs.rows.length, files };
}

async function snapshot(t: { id: string; key: string }) {
  const started = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/snapshots`);
  expect(started.statusCode, started.body).toBe(202);
  expect(started.json().status).toBe('running');
  await h.strata.services.snapshots.settled(started.json().id);
  const done = await h.call(t.key, 'GET', `/v1/tenants/${t.id}/snapshots/${started.json().id}`);
  expect(done.json(), done.body).toMatchObject({ status: 'complete', error: null });
  return done.json();
}

/** A tenant with a schema'd, indexed, vector collection, updated and deleted documents, and files. */
async function seeded() {
  const t = await tenant();
  const base = `/v1/tenants/${t.id}/collections`;
  expect(
    (
      await h.call(t.key, 'POST', base, {
        name: 'notes',
        vector: { field: 'v', dimensions: 2 },
        json_schema: { type: 'object', properties: { n: { type: 'integer' } } },
      })
    ).statusCode,
  ).toBe(201);
  expect((await h.call(t.key, 'POST', `${base}/notes/indexes`, { name: 'by_n', path: 'n' })).statusCode).toBe(201);
  await h.call(t.key, 'POST', base, { name: 'misc' });
  const operations = Array.from({ length: 120 }, (_, i) => ({
    op: 'create',
    collection: i % 3 === 0 ? 'misc' : 'notes',
    id: `d${i}`,
    data: { n: i, v: [i, 1], text: `note ${i} ✓` },
  }));
  expect((await h.call(t.key, 'POST', `/v1/tenants/${t.id}/batch`, { operations })).statusCode).toBe(200);
  await h.call(t.key, 'PATCH', `${base}/notes/documents/d1`, { n: 1001 });
  await h.call(t.key, 'DELETE', `${base}/notes/documents/d2`);
  expect((await putFile(t, 'img/logo.png', randomBytes(70_000), 'image/png')).statusCode).toBe(201);
  expect((await putFile(t, 'docs/a.txt', Buffer.from('first'), 'text/plain')).statusCode).toBe(201);
  expect((await putFile(t, 'docs/a.txt', Buffer.from('second'), 'text/plain')).statusCode).toBe(200);
  expect((await putFile(t, 'same/one.bin', Buffer.from('dup'))).statusCode).toBe(201);
  expect((await putFile(t, 'same/two.bin', Buffer.from('dup'))).statusCode).toBe(201);
  return t;
}

/** Changes everything the snapshot holds: documents updated, deleted and added, files deleted, replaced and added. */
async function scramble(t: { id: string; key: string }) {
  const base = `/v1/tenants/${t.id}/collections`;
  await h.call(t.key, 'PATCH', `${base}/notes/documents/d4`, { n: -4 });
  await h.call(t.key, 'DELETE', `${base}/notes/documents/d5`);
  await h.call(t.key, 'POST', `${base}/notes/documents`, { id: 'late', data: { n: 9 } });
  await h.call(t.key, 'POST', base, { name: 'later' });
  await h.call(t.key, 'DELETE', `/v1/tenants/${t.id}/files/img/logo.png`);
  await putFile(t, 'docs/a.txt', Buffer.from('third'), 'text/plain');
  await putFile(t, 'new.bin', randomBytes(10));
}

describe('snapshots', () => {
  it('restore in place reproduces the documents and files exactly, in a new epoch, with indexes', async () => {
    const t = await seeded();
    const before = await fingerprint(t);
    const snap = await snapshot(t);
    expect(snap).toMatchObject({ collections: 2, documents: 120, files: 4 });
    expect(snap.content_checksum).toMatch(/^[0-9a-f]{32}$/);
    const epochBefore = (await h.call(t.key, 'GET', `/v1/tenants/${t.id}/changes?since=0&limit=1`)).json().checkpoint
      .epoch;

    await scramble(t);
    expect((await fingerprint(t)).sum).not.toBe(before.sum);

    const restored = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/snapshots/${snap.id}/restore`, {});
    expect(restored.statusCode, restored.body).toBe(200);
    expect(restored.json()).toMatchObject({
      snapshot_id: snap.id,
      documents: 120,
      files: 4,
      content_checksum: snap.content_checksum,
    });
    expect(await fingerprint(t)).toEqual(before);

    // The change feed is the snapshot's, in a new epoch: replayed from zero it gives the restored documents.
    const feed = (await h.call(t.key, 'GET', `/v1/tenants/${t.id}/changes?since=0&limit=1000`)).json();
    expect(feed.checkpoint.epoch).toBeGreaterThan(epochBefore);
    const replayed = new Map<string, number>();
    for (const c of feed.changes as { collection: string; id: string; version: number }[]) {
      replayed.set(`${c.collection}/${c.id}`, c.version);
    }
    expect(replayed.size).toBe(120);
    expect(replayed.get('notes/d1')).toBe(2);
    // Queries use the rebuilt index, vector search works, the schema is enforced, writes go on.
    const q = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/collections/notes/query`, {
      filter: { path: 'n', op: 'eq', value: 1001 },
    });
    expect(q.json().data.map((d: { id: string }) => d.id)).toEqual(['d1']);
    const near = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/collections/notes/search`, {
      vector: [7, 1],
      k: 1,
    });
    expect(near.json().data[0].document.id).toBe('d7');
    const bad = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/collections/notes/documents`, { data: { n: 'x' } });
    expect(bad.statusCode).toBe(400);
    const late = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/collections/notes/documents`, { data: { n: 5 } });
    expect(late.statusCode).toBe(201);
    const next = (await h.call(t.key, 'GET', `/v1/tenants/${t.id}/changes?since=0&limit=1000`)).json();
    expect(next.changes.at(-1).seq).toBe(feed.changes.at(-1).seq + 1);

    const listed = (await h.call(t.key, 'GET', `/v1/tenants/${t.id}/snapshots`)).json().data;
    expect(listed.map((s: { id: string }) => s.id)).toEqual([snap.id]);
  }, 60_000);

  it('is one consistent instant while the tenant writes: pairs written together are both in it or both not', async () => {
    const t = await tenant();
    await h.call(t.key, 'POST', `/v1/tenants/${t.id}/collections`, { name: 'pairs' });
    // More than one page of rows, so a snapshot that did not read from one instant would tear pairs apart.
    for (let b = 0; b < 3; b++) {
      const operations = Array.from({ length: 500 }, (_, i) => ({
        op: 'create',
        collection: 'pairs',
        id: `seed-${b}-${i}`,
        data: { i },
      }));
      expect((await h.call(t.key, 'POST', `/v1/tenants/${t.id}/batch`, { operations })).statusCode).toBe(200);
    }
    let stop = false;
    let written = 0;
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const operations = ['a', 'z'].map((side) => ({
          op: 'create',
          collection: 'pairs',
          id: `${side}-${w}-${i}`,
          data: { w, i },
        }));
        const r = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/batch`, { operations });
        if (r.statusCode === 200) written++;
      }
    };
    const writers = [0, 1].map(writer);
    await new Promise((r) => setTimeout(r, 50));
    const snap = await snapshot(t);
    stop = true;
    await Promise.all(writers);
    expect(written).toBeGreaterThan(0);

    // Restore it and look at the pairs.
    const restored = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/snapshots/${snap.id}/restore`, {});
    expect(restored.statusCode, restored.body).toBe(200);
    const db = await h.strata.platform.router.forTenant(t.id);
    const ids = new Set(
      (
        await db.query<{ id: string }>("SELECT id FROM strata_data.documents WHERE tenant_id = $1 AND id !~ '^seed'", [
          t.id,
        ])
      ).rows.map((r) => r.id),
    );
    for (const id of ids) expect(ids.has(id.startsWith('a-') ? `z-${id.slice(2)}` : `a-${id.slice(2)}`), id).toBe(true);
    expect(snap.documents).toBe(1500 + ids.size);
  }, 60_000);

  it('restores into a new placement as a live move: a dedicated database, or another region with an S3 store', async () => {
    const t = await seeded();
    const before = await fingerprint(t);
    const snap = await snapshot(t);
    await scramble(t);

    const toDedicated = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/snapshots/${snap.id}/restore`, {
      placement: { kind: 'dedicated' },
    });
    expect(toDedicated.statusCode, toDedicated.body).toBe(202);
    expect(toDedicated.json()).toMatchObject({ source_kind: 'shared', target_kind: 'dedicated' });
    await h.strata.services.moves.settled(toDedicated.json().id);
    const move = (await h.call(t.key, 'GET', `/v1/tenants/${t.id}/moves/${toDedicated.json().id}`)).json();
    expect(move, JSON.stringify(move)).toMatchObject({ phase: 'switched', error: null, documents_total: 120 });
    const placement = await h.strata.platform.router.placementOf(t.id);
    expect(placement.kind).toBe('dedicated');
    expect(await fingerprint(t)).toEqual(before);
    // The shared datastore still has the scrambled copy, fenced, until the move is finished.
    const shared = await h.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM strata_data.documents WHERE tenant_id = $1 AND id = 'late'",
      [t.id],
    );
    expect(shared.rows[0]?.n).toBe(1);

    // The same snapshot (kept in the local store) into region eu: blobs land in eu's bucket.
    await scramble(t);
    const toEu = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/snapshots/${snap.id}/restore`, {
      placement: { region: 'eu' },
    });
    expect(toEu.statusCode, toEu.body).toBe(202);
    await h.strata.services.moves.settled(toEu.json().id);
    expect((await h.call(t.key, 'GET', `/v1/tenants/${t.id}/moves/${toEu.json().id}`)).json().phase).toBe('switched');
    expect(await h.strata.platform.router.regionOf(t.id)).toBe('eu');
    expect(await fingerprint(t)).toEqual(before);
    const inBucket: string[] = [];
    for await (const o of euBucket.list(`tenants/${t.id}/blobs/`)) inBucket.push(o.key);
    expect(inBucket).toHaveLength(3); // logo, "second", "dup" (stored once)
  }, 90_000);

  it("checks the plan, refuses a damaged snapshot without touching the tenant's data, and deletes", async () => {
    const starter = await tenant('starter');
    await h.call(starter.key, 'POST', `/v1/tenants/${starter.id}/collections`, { name: 'c' });
    const snap = await snapshot(starter);
    const refused = await h.call(starter.key, 'POST', `/v1/tenants/${starter.id}/snapshots/${snap.id}/restore`, {
      placement: { kind: 'dedicated' },
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ code: 'plan_required', required_plan: 'professional' });

    const t = await seeded();
    const good = await snapshot(t);
    await scramble(t);
    const scrambled = await fingerprint(t);
    // Damage the stored rows: the restore refuses before anything changes.
    const dir = join(h.config.dataDir, 'objects', 'local', 'tenants', t.id, 'snapshots', good.id);
    expect(readdirSync(dir)).toContain('data.ndjson.gz');
    writeFileSync(join(dir, 'data.ndjson.gz'), Buffer.from('not the snapshot'));
    const damaged = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/snapshots/${good.id}/restore`, {});
    expect(damaged.statusCode).toBe(422);
    expect(damaged.json().code).toBe('snapshot_damaged');
    expect(await fingerprint(t)).toEqual(scrambled);

    const deleted = await h.call(t.key, 'DELETE', `/v1/tenants/${t.id}/snapshots/${good.id}`);
    expect(deleted.statusCode).toBe(204);
    expect((await h.call(t.key, 'GET', `/v1/tenants/${t.id}/snapshots/${good.id}`)).statusCode).toBe(404);
    expect(() => readdirSync(dir)).toThrow();
  }, 60_000);

  it("are the tenant's own: another tenant cannot see, restore or delete them, even by id", async () => {
    const a = await seeded();
    const b = await tenant();
    const snap = await snapshot(a);
    for (const [method, path] of [
      ['GET', `/v1/tenants/${b.id}/snapshots/${snap.id}`],
      ['POST', `/v1/tenants/${b.id}/snapshots/${snap.id}/restore`],
      ['DELETE', `/v1/tenants/${b.id}/snapshots/${snap.id}`],
    ] as const) {
      const r = await h.call(b.key, method, path, method === 'POST' ? {} : undefined);
      expect(r.statusCode, `${method} ${path}`).toBe(404);
    }
    expect((await h.call(b.key, 'GET', `/v1/tenants/${b.id}/snapshots`)).json().data).toEqual([]);
    expect((await h.call(b.key, 'GET', `/v1/tenants/${a.id}/snapshots`)).statusCode).toBe(404);
    expect((await h.call(a.key, 'GET', `/v1/tenants/${a.id}/snapshots/${snap.id}`)).statusCode).toBe(200);
  }, 60_000);
});
