import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forgetExpired } from '../src/modules/documents/idempotency.js';
import { withTenant } from '../src/platform/db/tenant-context.js';
import { createTenant, driver, type Harness, startHarness, type TestTenant } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ STRATA_MAX_DOCUMENT_BYTES: '2048' });
});
afterAll(async () => {
  await h?.close();
});

async function withCollection(
  body: Record<string, unknown> = {},
  plan?: string,
): Promise<{ t: TestTenant; base: string }> {
  const t = await createTenant(h, plan ? { plan } : {});
  const r = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/collections`, { name: 'notes', ...body });
  expect(r.statusCode, r.body).toBe(201);
  return { t, base: `/v1/tenants/${t.id}/collections/notes/documents` };
}

const countRows = (tenantId: string, table: string) =>
  withTenant(
    h.db,
    tenantId,
    async (tx) => (await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]?.n,
  );

describe('documents', () => {
  it('creates with a server id or a client id, reads with an ETag, replaces, merge-patches and deletes', async () => {
    const { t, base } = await withCollection();
    const created = await h.call(t.adminKey, 'POST', base, { data: { title: 'a', tags: ['x'], meta: { n: 1 } } });
    expect(created.statusCode, created.body).toBe(201);
    const doc = created.json();
    expect(doc).toMatchObject({ collection: 'notes', version: 1, deleted: false, data: { title: 'a' } });
    expect(doc.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.headers.etag).toBe('"1"');
    expect(created.headers.location).toBe(`${base}/${doc.id}`);

    const own = await h.call(t.adminKey, 'POST', base, { id: 'note-1', data: { title: 'mine' } });
    expect(own.json().id).toBe('note-1');

    const read = await h.call(t.adminKey, 'GET', `${base}/${doc.id}`);
    expect(read.json()).toEqual(doc);
    expect(read.headers.etag).toBe('"1"');
    expect(
      (await h.call(t.adminKey, 'GET', `${base}/${doc.id}`, undefined, { 'if-none-match': '"1"' })).statusCode,
    ).toBe(304);

    const put = await h.call(t.adminKey, 'PUT', `${base}/${doc.id}`, { data: { title: 'b', meta: { n: 2, m: 3 } } });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toMatchObject({
      version: 2,
      data: { title: 'b', meta: { n: 2, m: 3 } },
      created_at: doc.created_at,
    });
    expect(put.json().data.tags).toBeUndefined();

    const patched = await h.call(
      t.adminKey,
      'PATCH',
      `${base}/${doc.id}`,
      { meta: { n: null, k: 'v' }, extra: [1] },
      { 'content-type': 'application/merge-patch+json' },
    );
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json()).toMatchObject({ version: 3, data: { title: 'b', meta: { m: 3, k: 'v' }, extra: [1] } });
    expect(patched.json().data.meta.n).toBeUndefined();
    expect(Date.parse(patched.json().updated_at)).toBeGreaterThanOrEqual(Date.parse(doc.updated_at));

    const upsert = await h.call(t.adminKey, 'PUT', `${base}/fresh`, { data: { x: 1 } });
    expect(upsert.statusCode).toBe(201);
    expect(upsert.json().version).toBe(1);

    expect((await h.call(t.adminKey, 'DELETE', `${base}/${doc.id}`)).statusCode).toBe(204);
    expect((await h.call(t.adminKey, 'GET', `${base}/${doc.id}`)).statusCode).toBe(404);
    expect((await h.call(t.adminKey, 'DELETE', `${base}/${doc.id}`)).statusCode).toBe(404);
    expect((await h.call(t.adminKey, 'PATCH', `${base}/${doc.id}`, { a: 1 })).statusCode).toBe(404);
    // The tombstone keeps the version going: re-creating continues from it, so sync clients never see a version reused.
    const again = await h.call(t.adminKey, 'PUT', `${base}/${doc.id}`, { data: { title: 'back' } });
    expect(again.statusCode).toBe(201);
    expect(again.json().version).toBe(5);

    const list = await h.call(t.adminKey, 'GET', `${base}?limit=2`);
    expect(list.json().data.map((d: { id: string }) => d.id)).toEqual([doc.id, 'fresh'].sort().slice(0, 2));
    const page2 = await h.call(t.adminKey, 'GET', `${base}?limit=2&cursor=${list.json().next_cursor}`);
    expect(page2.json().data).toHaveLength(1);
    expect(page2.json().next_cursor).toBeNull();
  });

  it('compare-and-set with If-Match: a stale version gets 412 and changes nothing', async () => {
    const { t, base } = await withCollection();
    const doc = (await h.call(t.adminKey, 'POST', base, { id: 'cas', data: { n: 0 } })).json();
    const ok = await h.call(t.adminKey, 'PUT', `${base}/cas`, { data: { n: 1 } }, { 'if-match': '"1"' });
    expect(ok.statusCode).toBe(200);
    for (const [method, body] of [
      ['PUT', { data: { n: 99 } }],
      ['PATCH', { n: 99 }],
      ['DELETE', undefined],
    ] as const) {
      const stale = await h.call(t.adminKey, method, `${base}/cas`, body, { 'if-match': '"1"' });
      expect(stale.statusCode, method).toBe(412);
      expect(stale.json()).toMatchObject({ code: 'precondition_failed', current_version: 2 });
    }
    expect((await h.call(t.adminKey, 'GET', `${base}/cas`)).json()).toMatchObject({ version: 2, data: { n: 1 } });
    expect((await h.call(t.adminKey, 'PUT', `${base}/nope`, { data: {} }, { 'if-match': '*' })).statusCode).toBe(412);
    expect((await h.call(t.adminKey, 'PUT', `${base}/cas`, { data: {} }, { 'if-match': 'garbage' })).statusCode).toBe(
      400,
    );
    expect(doc.version).toBe(1);
  });

  it('concurrent writers on one document: exactly one wins per version, the rest get 412', async () => {
    const { t, base } = await withCollection();
    await h.call(t.adminKey, 'POST', base, { id: 'hot', data: { n: 0 } });
    const rounds = 5;
    const writers = 6;
    for (let round = 0; round < rounds; round++) {
      const version = round + 1;
      const results = await Promise.all(
        Array.from({ length: writers }, (_, w) =>
          h.call(t.adminKey, 'PUT', `${base}/hot`, { data: { n: version, by: w } }, { 'if-match': `"${version}"` }),
        ),
      );
      const codes = results.map((r) => r.statusCode).sort();
      expect(codes).toEqual([200, ...Array(writers - 1).fill(412)]);
    }
    const final = (await h.call(t.adminKey, 'GET', `${base}/hot`)).json();
    expect(final.version).toBe(rounds + 1);
    const feed = (await h.call(t.adminKey, 'GET', `/v1/tenants/${t.id}/changes`)).json();
    expect(
      feed.changes.filter((c: { id: string }) => c.id === 'hot').map((c: { version: number }) => c.version),
    ).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('a POST retried with the same Idempotency-Key creates one document and returns the first response', async () => {
    const { t, base } = await withCollection();
    const key = { 'idempotency-key': 'order-7' };
    const first = await h.call(t.adminKey, 'POST', base, { data: { total: 7 } }, key);
    expect(first.statusCode).toBe(201);
    const retries = await Promise.all(
      Array.from({ length: 4 }, () => h.call(t.adminKey, 'POST', base, { data: { total: 7 } }, key)),
    );
    for (const r of retries) {
      expect(r.statusCode).toBe(201);
      expect(r.json()).toEqual(first.json());
      expect(r.headers['idempotent-replayed']).toBe('true');
    }
    // A retry is recognised by content: the same body serialized with its members in another order replays too.
    const raw = (payload: string) =>
      h.strata.app.inject({
        method: 'POST',
        url: base,
        payload,
        headers: {
          authorization: `Bearer ${t.adminKey}`,
          'content-type': 'application/json',
          'idempotency-key': 'order-ab',
        },
      });
    const ab = await raw('{"data":{"a":1,"b":{"x":1,"y":2}}}');
    const ba = await raw('{"data":{"b":{"y":2,"x":1},"a":1}}');
    expect(ab.statusCode).toBe(201);
    expect(ba.statusCode).toBe(201);
    expect(ba.headers['idempotent-replayed']).toBe('true');
    expect(ba.json().id).toBe(ab.json().id);
    // Concurrent first attempts with a fresh key also create exactly one.
    const racing = await Promise.all(
      Array.from({ length: 4 }, () =>
        h.call(t.adminKey, 'POST', base, { data: { total: 8 } }, { 'idempotency-key': 'order-8' }),
      ),
    );
    expect(new Set(racing.map((r) => r.json().id)).size).toBe(1);
    expect(await countRows(t.id, 'strata_data.documents')).toBe(3);

    const reused = await h.call(t.adminKey, 'POST', base, { data: { total: 9 } }, key);
    expect(reused.statusCode).toBe(422);
    expect(reused.json().code).toBe('idempotency_key_reused');
    expect(await countRows(t.id, 'strata_data.documents')).toBe(3);

    // After a day the key is forgotten: housekeeping removes it and the same key makes a new document.
    await withTenant(h.db, t.id, (tx) =>
      tx.query("UPDATE strata_data.idempotency SET created_at = now() - interval '25 hours' WHERE key = 'order-7'"),
    );
    expect(await withTenant(h.db, t.id, (tx) => forgetExpired(tx))).toBe(1);
    const later = await h.call(t.adminKey, 'POST', base, { data: { total: 9 } }, key);
    expect(later.statusCode).toBe(201);
    expect(later.json().id).not.toBe(first.json().id);
  });

  it('validates against the collection schema and names the failing path; refuses documents over the size limit', async () => {
    const schema = {
      type: 'object',
      required: ['title'],
      properties: { title: { type: 'string' }, meta: { type: 'object', properties: { n: { type: 'integer' } } } },
    };
    const { t, base } = await withCollection({ json_schema: schema });
    const bad = await h.call(t.adminKey, 'POST', base, { data: { title: 'x', meta: { n: 'one' } } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('validation_failed');
    expect(bad.json().errors).toEqual([{ path: 'data/meta/n', message: 'must be integer' }]);
    const missing = await h.call(t.adminKey, 'POST', base, { data: {} });
    expect(missing.json().errors[0]).toMatchObject({ path: 'data', message: "must have required property 'title'" });

    const ok = await h.call(t.adminKey, 'POST', base, { id: 'd', data: { title: 'x' } });
    expect(ok.statusCode).toBe(201);
    const badPatch = await h.call(t.adminKey, 'PATCH', `${base}/d`, { title: null });
    expect(badPatch.statusCode).toBe(400);

    const big = await h.call(t.adminKey, 'POST', base, { data: { title: 'x'.repeat(3000) } });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ code: 'document_too_large', limit_bytes: 2048 });
    expect(await countRows(t.id, 'strata_data.documents')).toBe(1);
    expect((await h.call(t.adminKey, 'GET', `${base}/d`)).json().version).toBe(1);

    const noCollection = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/collections/nope/documents`, {
      data: {},
    });
    expect(noCollection.statusCode).toBe(404);
    const dup = await h.call(t.adminKey, 'POST', base, { id: 'd', data: { title: 'again' } });
    expect(dup.statusCode).toBe(409);
    for (const id of ['-x', 'a b', 'x'.repeat(129), "a';--"]) {
      expect((await h.call(t.adminKey, 'POST', base, { id, data: { title: 'x' } })).statusCode, id).toBe(400);
    }
  });

  it('batch writes are all or nothing and name the failing operation', async () => {
    const { t } = await withCollection();
    const url = `/v1/tenants/${t.id}/batch`;
    const ok = await h.call(t.adminKey, 'POST', url, {
      operations: [
        { op: 'create', collection: 'notes', id: 'a', data: { n: 1 } },
        { op: 'create', collection: 'notes', id: 'b', data: { n: 2 } },
        { op: 'patch', collection: 'notes', id: 'a', data: { m: 1 } },
      ],
    });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json().results.map((r: { document: { version: number } }) => r.document.version)).toEqual([1, 1, 2]);
    expect(ok.json().checkpoint.seq).toBe(3);

    const failed = await h.call(t.adminKey, 'POST', url, {
      operations: [
        { op: 'put', collection: 'notes', id: 'c', data: { n: 3 } },
        { op: 'delete', collection: 'notes', id: 'b' },
        { op: 'put', collection: 'notes', id: 'a', data: { n: 9 }, if_version: 1 },
      ],
    });
    expect(failed.statusCode).toBe(409);
    expect(failed.json()).toMatchObject({ code: 'batch_failed', index: 2, error: { code: 'precondition_failed' } });
    const ids = (await h.call(t.adminKey, 'GET', `/v1/tenants/${t.id}/collections/notes/documents`)).json().data;
    expect(ids.map((d: { id: string }) => d.id)).toEqual(['a', 'b']);
    const feed = (await h.call(t.adminKey, 'GET', `/v1/tenants/${t.id}/changes`)).json();
    expect(feed.checkpoint.seq).toBe(3);
  });

  it("enforces the plan's document quota", async () => {
    const { t, base } = await withCollection({}, 'free');
    await withTenant(h.db, t.id, async (tx) => {
      // Start the counter near the free plan's limit rather than writing 10,000 documents.
      await tx.query('INSERT INTO strata_data.tenant_sequences (tenant_id, doc_count) VALUES ($1, 9999)', [t.id]);
    });
    expect((await h.call(t.adminKey, 'POST', base, { data: {} })).statusCode).toBe(201);
    const over = await h.call(t.adminKey, 'POST', base, { data: {} });
    expect(over.statusCode).toBe(403);
    expect(over.json()).toMatchObject({
      code: 'quota_exceeded',
      limit: 'documents',
      usage: 10000,
      required_plan: 'starter',
    });
    // Replacing an existing document does not count as a new one.
    const id = (await h.call(t.adminKey, 'GET', base)).json().data[0].id;
    expect((await h.call(t.adminKey, 'PUT', `${base}/${id}`, { data: { again: true } })).statusCode).toBe(200);
  });

  it('deleting a collection leaves a tombstone per document in the change feed', async () => {
    const { t, base } = await withCollection();
    await h.call(t.adminKey, 'POST', base, { id: 'x', data: {} });
    await h.call(t.adminKey, 'POST', base, { id: 'y', data: {} });
    expect((await h.call(t.adminKey, 'DELETE', `/v1/tenants/${t.id}/collections/notes`)).statusCode).toBe(204);
    const feed = (await h.call(t.adminKey, 'GET', `/v1/tenants/${t.id}/changes`)).json();
    expect(feed.changes.map((c: { seq: number; id: string; deleted: boolean }) => [c.seq, c.id, c.deleted])).toEqual([
      [1, 'x', false],
      [2, 'y', false],
      [3, 'x', true],
      [4, 'y', true],
    ]);
    expect(await countRows(t.id, 'strata_data.documents')).toBe(0);
  });
});

describe('documents that JSON allows but a datastore cannot hold', () => {
  it('are refused with 400 naming the path, never a 500 or a silent change', async () => {
    const { t, base } = await withCollection();
    const raw = (payload: string) =>
      h.strata.app.inject({
        method: 'POST',
        url: base,
        payload,
        headers: { authorization: `Bearer ${t.adminKey}`, 'content-type': 'application/json' },
      });
    const cases: [string, string][] = [
      ['{"data":{"n":1e400}}', 'data/n'],
      ['{"data":{"s":"a\\u0000b"}}', 'data/s'],
      ['{"data":{"s":"\\ud800"}}', 'data/s'],
      ['{"data":{"a\\u0000":1}}', 'data/a\u0000'],
      [`{"data":${'{"x":'.repeat(70)}1${'}'.repeat(70)}}`, ''],
    ];
    for (const [payload, path] of cases) {
      const r = await raw(payload);
      expect(r.statusCode, payload.slice(0, 40)).toBe(400);
      expect(r.json().code).toBe('validation_failed');
      if (path) expect(r.json().errors[0].path).toBe(path);
    }
    expect(await countRows(t.id, 'strata_data.documents')).toBe(0);
    expect((await raw('{"data":{"emoji":"\\ud83d\\ude00","n":1e300}}')).statusCode).toBe(201);
  });
});

describe('a write that cannot get its lock', () => {
  // The embedded database is one session: nothing else can hold a lock there, so this runs on PostgreSQL.
  it.skipIf(driver !== 'postgres')(
    'gives up after the lock timeout with 503 and Retry-After instead of hanging, and changes nothing',
    async () => {
      const { t, base } = await withCollection();
      await h.call(t.adminKey, 'POST', base, { id: 'held', data: { n: 1 } });
      const { openPostgres } = await import('../src/platform/db/pg-driver.js');
      const other = openPostgres(h.url as string, { max: 1 });
      try {
        let release: () => void = () => {};
        const held = new Promise<void>((r) => {
          release = r;
        });
        let locked: () => void = () => {};
        const isLocked = new Promise<void>((r) => {
          locked = r;
        });
        const holder = other.transaction(async (tx) => {
          await tx.query("SELECT 1 FROM strata_data.documents WHERE id = 'held' FOR UPDATE");
          locked();
          await held;
        });
        await isLocked;
        const r = await h.call(t.adminKey, 'PUT', `${base}/held`, { data: { n: 2 } });
        release();
        await holder;
        expect(r.statusCode, r.body).toBe(503);
        expect(r.json().code).toBe('unavailable');
        expect(r.headers['retry-after']).toBe('5');
        expect((await h.call(t.adminKey, 'GET', `${base}/held`)).json()).toMatchObject({ version: 1, data: { n: 1 } });
      } finally {
        await other.close();
      }
    },
    20_000,
  );
});
