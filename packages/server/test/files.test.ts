import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepOrphanBlobs, tenantBlobPrefix } from '../src/modules/files/blobs.js';
import { withTenant } from '../src/platform/db/tenant-context.js';
import { openObjectStore } from '../src/platform/objects/open.js';
import type { ObjectStore } from '../src/platform/objects/store.js';
import { createTenant, type Harness, startHarness, type TestTenant } from './harness.js';
import { type S3Server, startS3Server } from './s3-server.js';

// Uploads are spooled in the OS temp directory; a private one shows that none is left behind.
const spoolDir = mkdtempSync(join(tmpdir(), 'strata-files-tmp-'));
process.env.TMPDIR = spoolDir;
const spooled = () => readdirSync(spoolDir).filter((f) => f.startsWith('strata-spool-'));

const MiB = 1024 * 1024;
let h: Harness;
beforeAll(async () => {
  // A server-wide cap above the free plan's 10 MiB, so both limits can be seen.
  h = await startHarness({ STRATA_MAX_FILE_BYTES: String(12 * MiB) });
});
afterAll(async () => {
  await h?.close();
  rmSync(spoolDir, { recursive: true, force: true });
});

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const filesUrl = (t: { id: string }, key = '') => `/v1/tenants/${t.id}/files${key ? `/${key}` : ''}`;

/** A raw upload: the body is sent as given (a stream has no Content-Length and arrives chunked). */
function upload(
  token: string,
  url: string,
  body: Buffer | Readable | undefined,
  headers: Record<string, string> = {},
): Promise<LightMyRequestResponse> {
  return h.strata.app.inject({
    method: 'PUT',
    url,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body instanceof Readable ? { 'transfer-encoding': 'chunked' } : {}),
      ...headers,
    },
    ...(body === undefined ? {} : { payload: body }),
  });
}

function download(token: string, url: string, headers: Record<string, string> = {}) {
  return h.strata.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}`, ...headers } });
}

/** The object store directory of a region in the harness's data dir. */
const regionDir = (region = 'local') => join(h.config.dataDir, 'objects', region);

/** Every object file under a directory (the store's own .tmp/.meta folders left out), as relative paths. */
function objectFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (d === dir && (e.name === '.tmp' || e.name === '.meta')) continue;
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(relative(dir, join(d, e.name)));
    }
  };
  walk(dir);
  return out.sort();
}

const blobsOf = (t: { id: string }, dir = regionDir()) =>
  objectFiles(dir).filter((p) => p.startsWith(tenantBlobPrefix(t.id)));

async function usage(tenantId: string) {
  return withTenant(h.db, tenantId, async (tx) => {
    const r = await tx.query<{ file_bytes: string; sum: string; n: number }>(
      `SELECT (SELECT file_bytes FROM strata_data.tenant_sequences) AS file_bytes,
              (SELECT coalesce(sum(size_bytes), 0) FROM strata_data.files) AS sum,
              (SELECT count(*)::int FROM strata_data.files) AS n`,
    );
    const row = r.rows[0];
    return { counted: Number(row?.file_bytes ?? 0), sum: Number(row?.sum), files: row?.n ?? 0 };
  });
}

describe('files: upload and download', () => {
  let t: TestTenant;
  beforeAll(async () => {
    t = await createTenant(h);
  });

  it('round-trips binary bytes exactly (every byte value, and 5 MB of random bytes), with headers', async () => {
    const every = Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i));
    const put = await upload(t.adminKey, filesUrl(t, 'bin/every.bin'), every, {
      'content-type': 'application/x-bytes',
    });
    expect(put.statusCode, put.body).toBe(201);
    expect(put.json()).toEqual({
      key: 'bin/every.bin',
      size: 256,
      content_type: 'application/x-bytes',
      sha256: sha256(every),
      version: 1,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    expect(put.headers.etag).toBe('"1"');
    expect(put.headers.location).toBe(filesUrl(t, 'bin/every.bin'));

    const big = randomBytes(5 * 1000 * 1000);
    const bigPut = await upload(
      t.adminKey,
      filesUrl(t, 'bin/big random.dat'),
      Readable.from([big.subarray(0, 3_000_000), big.subarray(3_000_000)]),
      {
        'content-type': 'application/octet-stream',
      },
    );
    expect(bigPut.statusCode, bigPut.body).toBe(201);
    expect(bigPut.json()).toMatchObject({ size: big.length, sha256: sha256(big) });

    for (const [key, bytes, type] of [
      ['bin/every.bin', every, 'application/x-bytes'],
      ['bin/big random.dat', big, 'application/octet-stream'],
    ] as const) {
      const got = await download(t.adminKey, filesUrl(t, encodeURI(key)));
      expect(got.statusCode).toBe(200);
      expect(got.rawPayload.equals(bytes), key).toBe(true);
      expect(sha256(got.rawPayload)).toBe(sha256(bytes));
      expect(got.headers).toMatchObject({
        'content-type': type,
        'content-length': String(bytes.length),
        etag: '"1"',
        'x-content-type-options': 'nosniff',
      });
      expect(got.headers['content-disposition']).toMatch(/^attachment; filename="/);
    }
    const named = await download(t.adminKey, filesUrl(t, 'bin/big%20random.dat'));
    expect(named.headers['content-disposition']).toBe(
      `attachment; filename="big random.dat"; filename*=UTF-8''big%20random.dat`,
    );

    // HEAD: the same headers from the metadata, no body.
    const head = await h.strata.app.inject({
      method: 'HEAD',
      url: filesUrl(t, 'bin/every.bin'),
      headers: { authorization: `Bearer ${t.adminKey}` },
    });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe('256');
    expect(head.headers.etag).toBe('"1"');
    expect(head.headers['content-type']).toBe('application/x-bytes');
    expect(head.headers['x-content-type-options']).toBe('nosniff');
    expect(head.rawPayload).toHaveLength(0);
    // Nothing was left in the temporary directory.
    expect(spooled()).toEqual([]);
  });

  it('stores the content type as given, octet-stream without one, never parsing the body', async () => {
    const cases: [string, Record<string, string>, string][] = [
      ['types/none', {}, 'application/octet-stream'],
      ['types/text.txt', { 'content-type': 'text/plain; charset=utf-8' }, 'text/plain; charset=utf-8'],
      ['types/not-json.json', { 'content-type': 'application/json' }, 'application/json'],
      ['types/form', { 'content-type': 'application/x-www-form-urlencoded' }, 'application/x-www-form-urlencoded'],
    ];
    for (const [key, headers, type] of cases) {
      const body = Buffer.from('{not json at all');
      const put = await upload(t.adminKey, filesUrl(t, key), body, headers);
      expect(put.statusCode, `${key}: ${put.body}`).toBe(201);
      expect(put.json().content_type).toBe(type);
      const got = await download(t.adminKey, filesUrl(t, key));
      expect(got.headers['content-type']).toBe(type);
      expect(got.body).toBe('{not json at all');
    }
    const empty = await upload(t.adminKey, filesUrl(t, 'types/empty'), undefined);
    expect(empty.statusCode, empty.body).toBe(201);
    expect(empty.json()).toMatchObject({ size: 0, sha256: sha256(Buffer.alloc(0)) });
    expect((await download(t.adminKey, filesUrl(t, 'types/empty'))).rawPayload).toHaveLength(0);

    const bad = await upload(t.adminKey, filesUrl(t, 'types/bad'), Buffer.from('x'), { 'content-type': 'not a type' });
    expect(bad.statusCode).toBe(415);
    expect(bad.json().code).toBe('unsupported_media_type');
    const long = await upload(t.adminKey, filesUrl(t, 'types/bad'), Buffer.from('x'), {
      'content-type': `text/plain; x=${'y'.repeat(300)}`,
    });
    expect(long.statusCode).toBe(400);
    expect(long.json()).toMatchObject({ code: 'bad_request', detail: expect.stringMatching(/Content-Type/) });
    expect((await download(t.adminKey, filesUrl(t, 'types/bad'))).statusCode).toBe(404);
  });

  it('a replace bumps the version and keeps created_at; If-Match and If-None-Match guard writes', async () => {
    const url = filesUrl(t, 'cas/doc.txt');
    const first = await upload(t.adminKey, url, Buffer.from('one'), { 'if-none-match': '*' });
    expect(first.statusCode).toBe(201);
    const again = await upload(t.adminKey, url, Buffer.from('two'), { 'if-none-match': '*' });
    expect(again.statusCode).toBe(412);
    expect(again.json()).toMatchObject({ code: 'precondition_failed', current_version: 1 });

    const second = await upload(t.adminKey, url, Buffer.from('two'), { 'if-match': '"1"' });
    expect(second.statusCode).toBe(200);
    expect(second.json()).toMatchObject({ version: 2, size: 3, sha256: sha256(Buffer.from('two')) });
    expect(second.json().created_at).toBe(first.json().created_at);
    expect(second.headers.etag).toBe('"2"');
    expect(second.headers.location).toBeUndefined();

    const stale = await upload(t.adminKey, url, Buffer.from('three'), { 'if-match': '"1"' });
    expect(stale.statusCode).toBe(412);
    expect(stale.json()).toMatchObject({ code: 'precondition_failed', current_version: 2 });
    const missing = await upload(t.adminKey, filesUrl(t, 'cas/missing'), Buffer.from('x'), { 'if-match': '*' });
    expect(missing.statusCode).toBe(412);
    expect(missing.json().current_version).toBeNull();
    expect((await upload(t.adminKey, url, Buffer.from('x'), { 'if-none-match': '"2"' })).statusCode).toBe(400);
    expect((await upload(t.adminKey, url, Buffer.from('x'), { 'if-match': 'garbage' })).statusCode).toBe(400);
    // Nothing a refused write carried was stored.
    expect((await download(t.adminKey, url)).body).toBe('two');
    expect((await download(t.adminKey, filesUrl(t, 'cas/missing'))).statusCode).toBe(404);

    // A read with the current ETag: 304, no body.
    const notModified = await download(t.adminKey, url, { 'if-none-match': '"2"' });
    expect(notModified.statusCode).toBe(304);
    expect(notModified.headers.etag).toBe('"2"');
    expect(notModified.rawPayload).toHaveLength(0);
    expect((await download(t.adminKey, url, { 'if-none-match': '"1"' })).statusCode).toBe(200);

    // Concurrent replaces of one key each get their own version.
    const racing = await Promise.all(
      [1, 2, 3, 4, 5].map((i) => upload(t.adminKey, filesUrl(t, 'cas/race'), Buffer.from(`writer ${i}`))),
    );
    expect(racing.map((r) => r.statusCode).sort()).toEqual([200, 200, 200, 200, 201]);
    expect(racing.map((r) => r.json().version).sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it('deletes (204, then 404), honouring If-Match', async () => {
    const url = filesUrl(t, 'gone/soon.txt');
    await upload(t.adminKey, url, Buffer.from('bye'));
    const stale = await h.call(t.adminKey, 'DELETE', url, undefined, { 'if-match': '"7"' });
    expect(stale.statusCode).toBe(412);
    expect((await h.call(t.adminKey, 'DELETE', url, undefined, { 'if-match': '"1"' })).statusCode).toBe(204);
    expect((await download(t.adminKey, url)).statusCode).toBe(404);
    const again = await h.call(t.adminKey, 'DELETE', url);
    expect(again.statusCode).toBe(404);
    expect(again.json().code).toBe('not_found');
    const counts = await usage(t.id);
    expect(counts.counted).toBe(counts.sum);
  });

  it('refuses bad keys with 400 naming the problem', async () => {
    const cases: [string, RegExp][] = [
      ['a//b', /empty segment/],
      ['a/', /ends with "\/"/],
      // (dot segments are spelled with an encoded slash: URL parsers remove a plain /../ before a server sees it)
      ['a%2F..%2Fb', /has a "\.\." segment/],
      ['a%2F.', /has a "\." segment/],
      ['tab%09here', /control character U\+0009/],
      ['nul%00', /control character U\+0000/],
      [encodeURIComponent('é'.repeat(513)), /1026 bytes long; at most 1024/],
      ['%2Fleading', /starts with "\/"/],
    ];
    for (const [key, message] of cases) {
      const put = await upload(t.adminKey, filesUrl(t, key), Buffer.from('x'));
      expect(put.statusCode, `${key}: ${put.body}`).toBe(400);
      expect(put.json()).toMatchObject({ code: 'validation_failed', errors: [{ path: 'params/key' }] });
      expect(put.json().detail, key).toMatch(message);
      expect((await download(t.adminKey, filesUrl(t, key))).statusCode, key).toBe(400);
    }
    const empty = await upload(t.adminKey, `${filesUrl(t)}/`, Buffer.from('x'));
    expect(empty.statusCode).toBe(400);
    expect(empty.json().detail).toMatch(/is empty/);
    // %-escapes that are not UTF-8 are refused before routing, as a problem document too.
    for (const key of ['%FF', 'a%E0%A4', 'x%ED%A0%80y', '%ZZ']) {
      const put = await upload(t.adminKey, filesUrl(t, key), Buffer.from('x'));
      expect(put.statusCode, key).toBe(400);
      expect(put.headers['content-type']).toContain('application/problem+json');
      expect(put.json()).toMatchObject({ code: 'bad_request', detail: expect.stringMatching(/does not decode/) });
    }
    // The longest key allowed, in a multi-byte script, and keys that only look odd.
    for (const key of ['é'.repeat(512), '...', 'a b/c+d/日本語.txt', 'percent%25sign']) {
      const url = filesUrl(t, encodeURIComponent(key).replaceAll('%2F', '/'));
      const put = await upload(t.adminKey, url, Buffer.from(key));
      expect(put.statusCode, `${key}: ${put.body}`).toBe(201);
      expect(put.json().key).toBe(key);
      expect((await download(t.adminKey, url)).body).toBe(key);
    }
  });
});

describe('files: listing', () => {
  it('lists in key order with a prefix and keyset pagination', async () => {
    const t = await createTenant(h);
    const keys = ['img/b.png', 'img/a.png', 'img/sub/c.png', 'docs/x.txt', 'img_not/x', 'img%/x', 'z'];
    for (const key of keys) {
      const r = await upload(t.adminKey, filesUrl(t, encodeURIComponent(key).replaceAll('%2F', '/')), Buffer.from(key));
      expect(r.statusCode, r.body).toBe(201);
    }
    const everything = await h.call(t.adminKey, 'GET', filesUrl(t));
    expect(everything.statusCode).toBe(200);
    const byteOrder = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(everything.json().data.map((f: { key: string }) => f.key)).toEqual(byteOrder);
    expect(everything.json().next_cursor).toBeNull();
    expect(everything.json().data[0]).toEqual({
      key: 'docs/x.txt',
      size: 10,
      content_type: 'application/octet-stream',
      sha256: sha256(Buffer.from('docs/x.txt')),
      version: 1,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });

    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const q: string = `?prefix=img/&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await h.call(t.adminKey, 'GET', `${filesUrl(t)}${q}`);
      expect(page.statusCode, page.body).toBe(200);
      pages.push(page.json().data.map((f: { key: string }) => f.key));
      cursor = page.json().next_cursor;
    } while (cursor);
    expect(pages).toEqual([['img/a.png', 'img/b.png'], ['img/sub/c.png']]);
    // LIKE's wildcards in a prefix are plain characters.
    const literal = await h.call(t.adminKey, 'GET', `${filesUrl(t)}?prefix=${encodeURIComponent('img%')}`);
    expect(literal.json().data.map((f: { key: string }) => f.key)).toEqual(['img%/x']);
    const underscore = await h.call(t.adminKey, 'GET', `${filesUrl(t)}?prefix=img_`);
    expect(underscore.json().data.map((f: { key: string }) => f.key)).toEqual(['img_not/x']);

    expect((await h.call(t.adminKey, 'GET', `${filesUrl(t)}?cursor=bm90LWEta2V5Ly8`)).statusCode).toBe(400);
    expect((await h.call(t.adminKey, 'GET', `${filesUrl(t)}?limit=0`)).statusCode).toBe(400);
    expect((await h.call(t.adminKey, 'GET', `${filesUrl(t)}?limit=1001`)).statusCode).toBe(400);
  });
});

describe('files: limits', () => {
  it("a file over the plan's limit is refused with 413 as soon as it passes it, and nothing is stored", async () => {
    const t = await createTenant(h, { plan: 'free' });
    const tooBig = Buffer.alloc(10 * MiB + 1, 7);
    // Announced by Content-Length: refused before the body is read.
    const announced = await upload(t.adminKey, filesUrl(t, 'big/announced'), tooBig);
    expect(announced.statusCode).toBe(413);
    expect(announced.json()).toMatchObject({
      code: 'file_too_large',
      size_bytes: 10 * MiB + 1,
      limit_bytes: 10 * MiB,
      limit: 'max_file_bytes',
      current_plan: 'free',
      required_plan: 'starter',
    });
    // Streamed without a length: refused when the count passes the limit.
    const streamed = await upload(
      t.adminKey,
      filesUrl(t, 'big/streamed'),
      Readable.from([tooBig.subarray(0, 6 * MiB), tooBig.subarray(6 * MiB)]),
    );
    expect(streamed.statusCode).toBe(413);
    expect(streamed.json()).toMatchObject({ code: 'file_too_large', limit_bytes: 10 * MiB, required_plan: 'starter' });
    expect(await usage(t.id)).toEqual({ counted: 0, sum: 0, files: 0 });
    expect(blobsOf(t)).toEqual([]);
    expect(spooled()).toEqual([]);
    // Exactly at the limit is fine.
    const atLimit = await upload(t.adminKey, filesUrl(t, 'big/at-limit'), tooBig.subarray(0, 10 * MiB));
    expect(atLimit.statusCode, atLimit.body).toBe(201);
  });

  it('the server-wide STRATA_MAX_FILE_BYTES applies above every plan', async () => {
    const t = await createTenant(h, { plan: 'enterprise' });
    const over = await upload(t.adminKey, filesUrl(t, 'huge'), Readable.from([Buffer.alloc(12 * MiB + 1)]));
    expect(over.statusCode).toBe(413);
    expect(over.json()).toMatchObject({ limit: 'STRATA_MAX_FILE_BYTES', limit_bytes: 12 * MiB, required_plan: null });
  });

  it('storage_bytes counts documents and files together', async () => {
    const t = await createTenant(h, { plan: 'custom' });
    const patch = await h.call(h.operatorToken, 'PATCH', `/v1/tenants/${t.id}`, {
      plan_overrides: { quotas: { storage_bytes: 1000 } },
    });
    expect(patch.statusCode, patch.body).toBe(200);
    expect((await upload(t.adminKey, filesUrl(t, 'a'), Buffer.alloc(600))).statusCode).toBe(201);
    const over = await upload(t.adminKey, filesUrl(t, 'b'), Buffer.alloc(600));
    expect(over.statusCode).toBe(403);
    expect(over.json()).toMatchObject({
      code: 'quota_exceeded',
      limit: 'storage_bytes',
      limit_value: 1000,
      usage: 600,
    });
    // The same refusal when the size is only known once the body has been read.
    const streamed = await upload(t.adminKey, filesUrl(t, 'b'), Readable.from([Buffer.alloc(600)]));
    expect(streamed.statusCode).toBe(403);
    // Replacing counts only the growth.
    expect((await upload(t.adminKey, filesUrl(t, 'a'), Buffer.alloc(900))).statusCode).toBe(200);
    // Documents see the files' bytes, and files see the documents'.
    await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/collections`, { name: 'notes' });
    const doc = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/collections/notes/documents`, {
      data: { text: 'x'.repeat(150) },
    });
    expect(doc.statusCode).toBe(403);
    expect(doc.json()).toMatchObject({ code: 'quota_exceeded', limit: 'storage_bytes', usage: 900 });
    expect((await h.call(t.adminKey, 'DELETE', filesUrl(t, 'a'))).statusCode).toBe(204);
    const fits = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/collections/notes/documents`, {
      data: { text: 'x'.repeat(150) },
    });
    expect(fits.statusCode).toBe(201);
    const docBytes = 900 - 900 + Buffer.byteLength(JSON.stringify({ text: 'x'.repeat(150) }));
    const refused = await upload(t.adminKey, filesUrl(t, 'c'), Buffer.alloc(1000 - docBytes + 1));
    expect(refused.statusCode).toBe(403);
    expect(refused.json().usage).toBe(docBytes);
    expect((await upload(t.adminKey, filesUrl(t, 'c'), Buffer.alloc(1000 - docBytes))).statusCode).toBe(201);
    const counts = await usage(t.id);
    expect(counts).toEqual({ counted: 1000 - docBytes, sum: 1000 - docBytes, files: 1 });
  });
});

describe('files: tenant isolation', () => {
  it("another tenant cannot read, list, replace or delete a tenant's file; each tenant's blobs are under its own prefix", async () => {
    const a = await createTenant(h);
    const b = await createTenant(h);
    const aBytes = Buffer.from('secret of a');
    const bBytes = Buffer.from('file of b');
    expect((await upload(a.adminKey, filesUrl(a, 'same/key.txt'), aBytes)).statusCode).toBe(201);
    expect((await upload(b.adminKey, filesUrl(b, 'same/key.txt'), bBytes)).statusCode).toBe(201);
    expect((await download(b.adminKey, filesUrl(b, 'same/key.txt'))).body).toBe('file of b');
    expect((await download(a.adminKey, filesUrl(a, 'same/key.txt'))).body).toBe('secret of a');

    // B's credentials on A's paths: 404, the same as for a tenant that does not exist.
    for (const token of [b.adminKey, b.sessions.owner as string]) {
      expect((await download(token, filesUrl(a, 'same/key.txt'))).statusCode).toBe(404);
      expect((await h.call(token, 'GET', filesUrl(a))).statusCode).toBe(404);
      expect((await upload(token, filesUrl(a, 'same/key.txt'), Buffer.from('overwrite'))).statusCode).toBe(404);
      expect((await h.call(token, 'DELETE', filesUrl(a, 'same/key.txt'))).statusCode).toBe(404);
    }
    expect((await download(a.adminKey, filesUrl(a, 'same/key.txt'))).body).toBe('secret of a');
    expect((await h.call(b.adminKey, 'GET', filesUrl(b))).json().data).toHaveLength(1);

    // In the store: A's blob under A's prefix only, B's under B's.
    expect(blobsOf(a)).toEqual([`${tenantBlobPrefix(a.id)}blobs/${sha256(aBytes)}`]);
    expect(blobsOf(b)).toEqual([`${tenantBlobPrefix(b.id)}blobs/${sha256(bBytes)}`]);
    const everything = objectFiles(regionDir());
    expect(everything.filter((p) => p.endsWith(sha256(aBytes)))).toEqual(blobsOf(a));
    expect(everything.every((p) => /^tenants\/[0-9a-f-]{36}\/blobs\/[0-9a-f]{64}$/.test(p))).toBe(true);
    expect(readFileSync(join(regionDir(), blobsOf(a)[0] as string)).equals(aBytes)).toBe(true);

    // The same bytes in two tenants are two blobs: nothing is shared across tenants.
    expect((await upload(b.adminKey, filesUrl(b, 'copy'), aBytes)).statusCode).toBe(201);
    expect(blobsOf(b)).toContain(`${tenantBlobPrefix(b.id)}blobs/${sha256(aBytes)}`);
    expect(blobsOf(a)).toHaveLength(1);
  });
});

describe('files: orphan sweep and purge', () => {
  it('an overwritten blob is deleted by the sweep only after the grace period; a shared one stays', async () => {
    const t = await createTenant(h);
    const v1 = Buffer.from('version one');
    const v2 = Buffer.from('version two');
    await upload(t.adminKey, filesUrl(t, 'doc'), v1);
    await upload(t.adminKey, filesUrl(t, 'twin'), v2);
    await upload(t.adminKey, filesUrl(t, 'doc'), v2);
    await upload(t.adminKey, filesUrl(t, 'deleted'), Buffer.from('deleted soon'));
    await h.call(t.adminKey, 'DELETE', filesUrl(t, 'deleted'));
    const blob = (b: Buffer) => `${tenantBlobPrefix(t.id)}blobs/${sha256(b)}`;
    // Two files share v2's blob: content-addressed.
    expect(blobsOf(t)).toEqual([blob(v1), blob(v2), blob(Buffer.from('deleted soon'))].sort());

    const now = await sweepOrphanBlobs(h.strata.platform, { tenantId: t.id });
    expect(now).toMatchObject({ deleted: 0 });
    expect(blobsOf(t)).toHaveLength(3);

    const later = new Date(Date.now() + 2 * 3600_000);
    const swept = await sweepOrphanBlobs(h.strata.platform, { tenantId: t.id, now: later });
    expect(swept).toMatchObject({ tenants: 1, deleted: 2 });
    expect(blobsOf(t)).toEqual([blob(v2)]);
    expect((await download(t.adminKey, filesUrl(t, 'doc'))).body).toBe('version two');
    expect((await download(t.adminKey, filesUrl(t, 'twin'))).body).toBe('version two');

    // One file goes; the blob stays while the other refers to it.
    await h.call(t.adminKey, 'DELETE', filesUrl(t, 'doc'));
    await sweepOrphanBlobs(h.strata.platform, { tenantId: t.id, now: later });
    expect(blobsOf(t)).toEqual([blob(v2)]);
    // Uploading bytes whose blob was swept stores it again.
    await upload(t.adminKey, filesUrl(t, 'back'), v1);
    expect((await download(t.adminKey, filesUrl(t, 'back'))).body).toBe('version one');
    // Every tenant at once (the housekeeping timer's call) leaves referenced blobs alone.
    const all = await sweepOrphanBlobs(h.strata.platform, { now: later });
    expect(all.tenants).toBeGreaterThan(1);
    expect(all.failed).toBe(0);
    expect(blobsOf(t)).toEqual([blob(v1), blob(v2)].sort());
  });

  it("purging a deleted tenant removes its file rows and every blob it had, and no one else's", async () => {
    const t = await createTenant(h);
    const other = await createTenant(h);
    await upload(t.adminKey, filesUrl(t, 'one'), Buffer.from('1'));
    await upload(t.adminKey, filesUrl(t, 'two'), Buffer.from('2'));
    await upload(other.adminKey, filesUrl(other, 'one'), Buffer.from('1'));
    expect(blobsOf(t)).toHaveLength(2);
    expect((await h.call(h.operatorToken, 'DELETE', `/v1/tenants/${t.id}`)).statusCode).toBe(200);
    const later = new Date(Date.now() + (h.config.purgeGraceHours + 1) * 3600_000);
    expect(await h.strata.services.tenants.purgeDue(later)).toContain(t.id);
    expect(blobsOf(t)).toEqual([]);
    expect(existsSync(join(regionDir(), tenantBlobPrefix(t.id)))).toBe(false);
    expect(await usage(t.id)).toEqual({ counted: 0, sum: 0, files: 0 });
    expect(blobsOf(other)).toHaveLength(1);
    expect((await download(other.adminKey, filesUrl(other, 'one'))).body).toBe('1');
  });
});

describe('files in a region whose object store is an S3 bucket', () => {
  let s3: S3Server;
  let eu: Harness;
  let bucket: ObjectStore;
  beforeAll(async () => {
    s3 = await startS3Server(['eu-files']);
    eu = await startHarness({ STRATA_REGIONS: 'local,eu', STRATA_OBJECT_STORES: `eu=${s3.url('eu-files')}` });
    bucket = await openObjectStore(s3.url('eu-files'));
  });
  afterAll(async () => {
    await bucket?.close();
    await eu?.close();
    await s3?.close();
  });

  async function bucketKeys(prefix = ''): Promise<string[]> {
    const keys: string[] = [];
    for await (const o of bucket.list(prefix)) keys.push(o.key);
    return keys;
  }

  it("keeps an eu tenant's blobs in eu's bucket, end to end through the API", async () => {
    const created = await eu.call(eu.operatorToken, 'POST', '/v1/tenants', {
      slug: `eu${Date.now().toString(36)}`,
      name: 'EU tenant',
      plan: 'enterprise',
      data_region: 'eu',
      allowed_regions: ['eu'],
    });
    expect(created.statusCode, created.body).toBe(201);
    const t = { id: created.json().id as string };
    const key = await eu.call(eu.operatorToken, 'POST', `/v1/tenants/${t.id}/api-keys`, {
      name: 'app',
      scopes: ['data:write'],
    });
    const token = key.json().secret as string;
    const local = await createTenant(eu);

    const bytes = randomBytes(2 * MiB + 3);
    const put = await eu.strata.app.inject({
      method: 'PUT',
      url: filesUrl(t, 'reports/2026.pdf'),
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/pdf' },
      payload: bytes,
    });
    expect(put.statusCode, put.body).toBe(201);
    const localPut = await eu.strata.app.inject({
      method: 'PUT',
      url: filesUrl(local, 'here.txt'),
      headers: { authorization: `Bearer ${local.adminKey}` },
      payload: Buffer.from('local bytes'),
    });
    expect(localPut.statusCode).toBe(201);

    expect(await bucketKeys()).toEqual([`${tenantBlobPrefix(t.id)}blobs/${sha256(bytes)}`]);
    expect(objectFiles(join(eu.config.dataDir, 'objects', 'eu'))).toEqual([]);
    expect(objectFiles(join(eu.config.dataDir, 'objects', 'local'))).toEqual([
      `${tenantBlobPrefix(local.id)}blobs/${sha256(Buffer.from('local bytes'))}`,
    ]);

    const got = await eu.strata.app.inject({
      method: 'GET',
      url: filesUrl(t, 'reports/2026.pdf'),
      headers: { authorization: `Bearer ${token}` },
    });
    expect(got.statusCode).toBe(200);
    expect(got.headers['content-type']).toBe('application/pdf');
    expect(got.rawPayload.equals(bytes)).toBe(true);

    // Overwrite, sweep (through the bucket's listing) and purge, all against the bucket.
    const next = Buffer.from('second edition');
    await eu.strata.app.inject({
      method: 'PUT',
      url: filesUrl(t, 'reports/2026.pdf'),
      headers: { authorization: `Bearer ${token}` },
      payload: next,
    });
    const later = new Date(Date.now() + 2 * 3600_000);
    expect(await sweepOrphanBlobs(eu.strata.platform, { tenantId: t.id, now: later })).toMatchObject({ deleted: 1 });
    expect(await bucketKeys()).toEqual([`${tenantBlobPrefix(t.id)}blobs/${sha256(next)}`]);
    await eu.call(eu.operatorToken, 'DELETE', `/v1/tenants/${t.id}`);
    await eu.strata.services.tenants.purgeDue(new Date(Date.now() + (eu.config.purgeGraceHours + 1) * 3600_000));
    expect(await bucketKeys()).toEqual([]);
  });
});
