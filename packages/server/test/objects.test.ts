import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/platform/logger.js';
import { LocalObjectStore } from '../src/platform/objects/local.js';
import { ObjectStores, openObjectStore } from '../src/platform/objects/open.js';
import { S3ObjectStore } from '../src/platform/objects/s3.js';
import { keyProblem, type ObjectStore } from '../src/platform/objects/store.js';
import { parseObjectStoreUrl, redactObjectStoreUrl } from '../src/platform/objects/url.js';
import { type S3Server, startS3Server } from './s3-server.js';

let s3: S3Server;
const scratch = mkdtempSync(join(tmpdir(), 'strata-objects-'));
beforeAll(async () => {
  s3 = await startS3Server(['contract', 'prefixed', 'stores']);
});
afterAll(async () => {
  await s3?.close();
  rmSync(scratch, { recursive: true, force: true });
});

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

const implementations: [string, () => Promise<ObjectStore>][] = [
  ['LocalObjectStore', () => new LocalObjectStore(mkdtempSync(join(scratch, 'local-'))).open()],
  ['S3ObjectStore (s3rver)', () => openObjectStore(s3.url('contract'))],
  ['S3ObjectStore with a key prefix (s3rver)', () => openObjectStore(s3.url('prefixed', 'some/prefix'))],
];

describe.each(implementations)('the ObjectStore contract: %s', (_name, make) => {
  let store: ObjectStore;
  beforeAll(async () => {
    store = await make();
  });
  afterAll(async () => {
    await store?.close();
  });

  it('puts and gets bytes exactly, every byte value and a larger random buffer, with their content type', async () => {
    const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await store.put('round/every-byte.bin', every, { size: every.length, contentType: 'application/x-test' });
    const got = await store.get('round/every-byte.bin');
    expect(got).not.toBeNull();
    expect(got?.size).toBe(256);
    expect(got?.contentType).toBe('application/x-test');
    expect((await bytesOf(got?.body as Readable)).equals(every)).toBe(true);

    const random = randomBytes(300_000);
    await store.put('round/random.bin', random, { size: random.length });
    const back = await store.get('round/random.bin');
    expect((await bytesOf(back?.body as Readable)).equals(random)).toBe(true);
    expect(back?.contentType).toBe('application/octet-stream');

    const empty = Buffer.alloc(0);
    await store.put('round/empty', empty, { size: 0 });
    expect(await bytesOf((await store.get('round/empty'))?.body as Readable)).toHaveLength(0);
  });

  it('puts from a file path, and refuses a source whose size is not the one announced', async () => {
    const path = join(scratch, `source-${randomBytes(4).toString('hex')}`);
    const bytes = randomBytes(70_000);
    writeFileSync(path, bytes);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    await store.put('from/file', path, { size: bytes.length, contentType: 'image/png', sha256 });
    expect((await bytesOf((await store.get('from/file'))?.body as Readable)).equals(bytes)).toBe(true);
    await expect(store.put('from/wrong-size', Buffer.from('abc'), { size: 4 })).rejects.toThrow(/3 bytes, not 4/);
    expect(await store.head('from/wrong-size')).toBeNull();
  });

  it('heads, replaces, deletes (twice without error), and answers null for a missing key', async () => {
    const before = Date.now() - 2000;
    await store.put('life/cycle.txt', Buffer.from('one'), { size: 3, contentType: 'text/plain' });
    const head = await store.head('life/cycle.txt');
    expect(head).toMatchObject({ size: 3, contentType: 'text/plain' });
    expect(head?.lastModified.getTime()).toBeGreaterThanOrEqual(before);
    await store.put('life/cycle.txt', Buffer.from('second'), { size: 6, contentType: 'text/markdown' });
    expect(await store.head('life/cycle.txt')).toMatchObject({ size: 6, contentType: 'text/markdown' });
    expect((await bytesOf((await store.get('life/cycle.txt'))?.body as Readable)).toString()).toBe('second');
    await store.delete('life/cycle.txt');
    await store.delete('life/cycle.txt');
    await store.delete('never/was/there');
    expect(await store.get('life/cycle.txt')).toBeNull();
    expect(await store.head('life/cycle.txt')).toBeNull();
    expect(await store.get('no/such/key')).toBeNull();
    // A "folder" (the start of other keys) is not an object.
    await store.put('folder/inside', Buffer.from('x'), { size: 1 });
    expect(await store.get('folder')).toBeNull();
    expect(await store.head('folder')).toBeNull();
  });

  it('lists by prefix, in byte order of the keys, a page at a time', async () => {
    // (s3rver's pages follow its folder walk, not byte order, where a key such as `p/b.d` sorts before a folder
    // `p/b/`; real S3 and the local store list in byte order, which the local-only test below checks.)
    const keys = ['p/a', 'p/b/c', 'p/bz', 'p/é', 'p/z z', 'p/0', 'pp/other', 'p2/not-this'];
    for (const key of keys) await store.put(key, Buffer.from(key), { size: Buffer.byteLength(key) });
    const listed = await all(store.list('p/', { pageSize: 2 }));
    const expected = keys
      .filter((k) => k.startsWith('p/'))
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(listed.map((o) => o.key)).toEqual(expected);
    expect(listed.find((o) => o.key === 'p/é')?.size).toBe(Buffer.byteLength('p/é'));
    expect(listed.every((o) => o.lastModified instanceof Date)).toBe(true);
    // A prefix that ends inside a segment, and one that matches nothing.
    expect((await all(store.list('p/b'))).map((o) => o.key)).toEqual(['p/b/c', 'p/bz']);
    expect(await all(store.list('nothing/here/'))).toEqual([]);
    expect((await all(store.list('pp'))).map((o) => o.key)).toEqual(['pp/other']);
  });

  it('keys may hold spaces, unicode and punctuation; bad keys are refused before anything is stored', async () => {
    for (const key of ['sp ace/ünï cödé/日本.txt', 'q?x=1&y#frag', 'percent%2e%2e/x', '...', 'a/.../b']) {
      await store.put(key, Buffer.from(key), { size: Buffer.byteLength(key) });
      expect((await bytesOf((await store.get(key))?.body as Readable)).toString(), key).toBe(key);
    }
    for (const bad of [
      '',
      '/abs',
      'a//b',
      'a/',
      '.',
      '..',
      '../up',
      'a/../../up',
      'a/./b',
      'nul\u0000',
      'x'.repeat(1025),
    ]) {
      await expect(store.put(bad, Buffer.from('x'), { size: 1 }), JSON.stringify(bad)).rejects.toThrow(/object key/);
      await expect(store.get(bad)).rejects.toThrow(/object key/);
    }
  });
});

describe('LocalObjectStore keeps to its directory', () => {
  it('lists in byte order of the keys, as S3 does (a key `a.b` before the folder `a/`)', async () => {
    const store = await new LocalObjectStore(mkdtempSync(join(scratch, 'order-'))).open();
    const keys = ['p/b/c', 'p/b.d', 'p/b', 'p/b0', 'p/B', 'p/é', 'p/-'];
    for (const key of keys.filter((k) => k !== 'p/b')) await store.put(key, Buffer.from('x'), { size: 1 });
    const expected = keys.filter((k) => k !== 'p/b').sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect((await all(store.list('p/'))).map((o) => o.key)).toEqual(expected);
  });

  it('maps keys to paths under the directory, leaves no temporary files, and escapes are refused', async () => {
    const dir = mkdtempSync(join(scratch, 'escape-'));
    const outside = join(dir, '..', `outside-${randomBytes(4).toString('hex')}`);
    const store = await new LocalObjectStore(join(dir, 'store')).open();
    await store.put('tenants/t1/blobs/abc', Buffer.from('hi'), { size: 2 });
    expect(existsSync(join(dir, 'store', 'tenants', 't1', 'blobs', 'abc'))).toBe(true);
    expect(readdirSync(join(dir, 'store', '.tmp'))).toEqual([]);
    for (const key of ['../outside', `..${'/..'.repeat(5)}/etc/passwd`, 'a/../../outside', '.tmp/x', '.meta/x']) {
      await expect(store.put(key, Buffer.from('x'), { size: 1 }), key).rejects.toThrow();
      await expect(store.get(key)).rejects.toThrow();
      await expect(store.delete(key)).rejects.toThrow();
    }
    expect(existsSync(outside)).toBe(false);
    expect(readdirSync(dir)).toEqual(['store']);
    // The reserved folders never show up as objects.
    expect((await all(store.list(''))).map((o) => o.key)).toEqual(['tenants/t1/blobs/abc']);
    // Deleting the last object of a folder removes the folders it leaves empty.
    await store.delete('tenants/t1/blobs/abc');
    expect(readdirSync(join(dir, 'store')).sort()).toEqual(['.meta', '.tmp']);
  });

  it('a reader that has opened an object keeps reading it whole while it is replaced or deleted', async () => {
    const store = await new LocalObjectStore(mkdtempSync(join(scratch, 'atomic-'))).open();
    const first = randomBytes(200_000);
    await store.put('k', first, { size: first.length });
    const reading = await store.get('k');
    await store.put('k', Buffer.from('new'), { size: 3 });
    expect((await bytesOf(reading?.body as Readable)).equals(first)).toBe(true);
    const again = await store.get('k');
    await store.delete('k');
    expect((await bytesOf(again?.body as Readable)).toString()).toBe('new');
  });
});

describe('object store URLs', () => {
  it('parses file: and s3:// URLs with their options', () => {
    expect(parseObjectStoreUrl('file:./x/objects')).toEqual({ kind: 'file', dir: join(process.cwd(), 'x/objects') });
    expect(parseObjectStoreUrl('file:///var/objects')).toEqual({ kind: 'file', dir: '/var/objects' });
    expect(
      parseObjectStoreUrl(
        's3://AKIA:se%2Fcr%2Bet@my-bucket?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true',
      ),
    ).toEqual({
      kind: 's3',
      bucket: 'my-bucket',
      prefix: '',
      endpoint: 'http://127.0.0.1:9000',
      region: 'eu-west-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'AKIA', secretAccessKey: 'se/cr+et' },
    });
    // No credentials: the SDK's default chain. No endpoint: AWS, virtual-hosted style. A path is a key prefix.
    expect(parseObjectStoreUrl('s3://bucket.with.dots/tenant-files')).toEqual({
      kind: 's3',
      bucket: 'bucket.with.dots',
      prefix: 'tenant-files/',
      region: 'us-east-1',
      forcePathStyle: false,
    });
  });

  it('refuses bad URLs with a message naming the problem, never the secret', () => {
    const cases: [string, RegExp][] = [
      ['ftp://x', /must start with file: or s3:\/\//],
      ['file:', /needs a directory/],
      ['s3://AK:topsecret@Bad_Bucket', /not a valid bucket name/],
      ['s3://AK:top/secret@bucket', /not a valid URL|bucket name/],
      ['s3://AK:topsecret@bucket?endpoint=ftp://x', /endpoint "ftp:\/\/x" must be an http/],
      ['s3://AK:topsecret@bucket?region=Not%20A%20Region', /region .* is not a region name/],
      ['s3://AK:topsecret@bucket?path_style=yes', /path_style must be true or false/],
      ['s3://AK:topsecret@bucket?bucket_owner=x', /unknown parameter\(s\) bucket_owner/],
      ['s3://AK@bucket', /the secret is missing/],
      ['s3://AK:top%ZZsecret@bucket', /malformed %-escape/],
    ];
    for (const [url, message] of cases) {
      let error: Error | undefined;
      try {
        parseObjectStoreUrl(url);
      } catch (err) {
        error = err as Error;
      }
      expect(error?.message, url).toMatch(message);
      expect(error?.message, url).not.toMatch(/topsecret|top\/secret|top%ZZsecret/);
    }
    expect(redactObjectStoreUrl('s3://AK:top/secret@bucket?region=x')).toBe('s3://AK:***@bucket?region=x');
  });

  it('opening checks the bucket and the credentials, and says which is wrong', async () => {
    await expect(openObjectStore(s3.url('no-such-bucket'))).rejects.toThrow(/the bucket does not exist/);
    // (s3rver checks the access key but not version-4 signatures, so it is the key that is wrong here.)
    const wrong = s3.url('contract').replace('S3RVER:S3RVER@', 'unknown-key:not-the-secret@');
    const error = await openObjectStore(wrong).catch((err: Error) => err);
    expect((error as Error).message).toMatch(
      /^object store s3:\/\/contract\/ at http:\/\/127\.0\.0\.1:\d+: the credentials are refused for this bucket$/,
    );
    expect((error as Error).message).not.toContain('not-the-secret');
  });

  it('keyProblem names what is wrong with a key', () => {
    expect(keyProblem('a/b.txt')).toBeUndefined();
    expect(keyProblem('')).toBe('is empty');
    expect(keyProblem('/a')).toBe('starts with "/"');
    expect(keyProblem('a//b')).toBe('has an empty segment ("//")');
    expect(keyProblem('a/')).toBe('ends with "/"');
    expect(keyProblem('a/../b')).toBe('has a ".." segment');
    expect(keyProblem('a/./b')).toBe('has a "." segment');
    expect(keyProblem('tab\there')).toBe('contains the control character U+0009 at position 3');
    expect(keyProblem('é'.repeat(513))).toBe('is 1026 bytes long; at most 1024 are allowed');
    expect(keyProblem('\uD800x')).toMatch(/unpaired surrogate/);
  });
});

describe('ObjectStores', () => {
  it('opens each region once, finds a tenant through its region, and retries a store that failed to open', async () => {
    const regions: Record<string, string> = { a: 'pending' };
    const stores = new ObjectStores(
      { local: `file:${join(scratch, 'stores-local')}`, eu: s3.url('stores'), broken: s3.url('missing-bucket') },
      { placementOf: async (tenantId) => ({ region: regions[tenantId] ?? 'local', datastoreId: null }) },
      createLogger('silent'),
    );
    try {
      const local = await stores.forRegion('local');
      expect(local).toBeInstanceOf(LocalObjectStore);
      expect(await stores.forRegion('local')).toBe(local);
      const eu = await stores.forRegion('eu');
      expect(eu).toBeInstanceOf(S3ObjectStore);
      expect(eu.description).not.toContain('S3RVER@');
      regions.a = 'eu';
      expect(await stores.forTenant('a')).toBe(eu);
      expect(await stores.forTenant('b')).toBe(local);
      await expect(stores.forRegion('mars')).rejects.toThrow(/no object store is configured for region "mars"/);
      await expect(stores.forRegion('broken')).rejects.toThrow(/bucket does not exist/);
      await expect(stores.forRegion('broken')).rejects.toThrow(/bucket does not exist/);
    } finally {
      await stores.close();
    }
  });
});
