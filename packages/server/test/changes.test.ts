import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Change } from '../src/modules/changes/service.js';
import { withTenant } from '../src/platform/db/tenant-context.js';
import { createTenant, type Harness, startHarness, type TestTenant } from './harness.js';

let h: Harness;
let origin: string;
beforeAll(async () => {
  h = await startHarness();
  origin = await listen(h);
});
afterAll(async () => {
  await h?.close();
});

interface Page {
  changes: Change[];
  checkpoint: { epoch: number; seq: number };
  has_more: boolean;
}

async function listen(harness: Harness): Promise<string> {
  await harness.strata.app.listen({ port: 0, host: '127.0.0.1' });
  const address = harness.strata.app.server.address() as AddressInfo;
  return `http://127.0.0.1:${address.port}`;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** [from, from + 1, ..., to] */
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

/** Polls until probe() is truthy; fails (rather than hangs) if that takes more than `ms`. */
async function until<T>(what: string, probe: () => T | undefined | null | false, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Awaits a promise, failing (rather than hanging) if it takes more than `ms`. */
async function within<T>(promise: Promise<T>, what: string, ms = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A small seeded generator, so the concurrent workload is the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function setup(collections: Record<string, Record<string, unknown>> = { notes: {} }): Promise<TestTenant> {
  const t = await createTenant(h);
  for (const [name, body] of Object.entries(collections)) {
    const r = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/collections`, { name, ...body });
    expect(r.statusCode, r.body).toBe(201);
  }
  return t;
}

const docs = (t: TestTenant, collection: string) => `/v1/tenants/${t.id}/collections/${collection}/documents`;
const feedUrl = (t: TestTenant, query = '') => `/v1/tenants/${t.id}/changes${query ? `?${query}` : ''}`;
const streamPath = (t: TestTenant, query = '') => `/v1/tenants/${t.id}/changes/stream${query ? `?${query}` : ''}`;

async function feed(t: TestTenant, query = ''): Promise<Page> {
  const r = await h.call(t.adminKey, 'GET', feedUrl(t, query));
  expect(r.statusCode, r.body).toBe(200);
  return r.json();
}

async function write(t: TestTenant, method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown) {
  const r = await h.call(t.adminKey, method, url, body);
  expect(r.statusCode, `${method} ${url}: ${r.body}`).toBeLessThan(300);
  return r;
}

const countChanges = (tenantId: string) =>
  withTenant(h.db, tenantId, async (tx) =>
    Number((await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM strata_data.changes')).rows[0]?.n),
  );

const summary = (changes: Change[]) => changes.map((c) => [c.seq, c.collection, c.id, c.version, c.deleted]);

// --- Server-Sent Events over a real socket -------------------------------------------------------

interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
}

interface Stream {
  status: number;
  headers: Headers;
  /** The problem document when the stream was refused. */
  problem: Record<string, unknown> | undefined;
  events: SseEvent[];
  comments: string[];
  retry: number | undefined;
  /** The server ended the response (or the client aborted). */
  ended: boolean;
  /** Set when the connection broke instead of ending cleanly. */
  error: unknown;
  done: Promise<void>;
  changes(): Change[];
  abort(): Promise<void>;
}

function parseBlock(s: Stream, block: string) {
  let id: string | undefined;
  let event: string | undefined;
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) {
      s.comments.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'retry') s.retry = Number(value);
  }
  if (event !== undefined || data.length > 0) s.events.push({ id, event: event ?? 'message', data: data.join('\n') });
}

/** Feeds text as it arrives; each complete block (ended by a blank line) becomes an event or a comment. */
function sseParser(s: Stream): (text: string) => void {
  let buffer = '';
  return (text) => {
    buffer += text;
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      parseBlock(s, buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  };
}

function newStream(status: number, headers: Headers, abort: () => void): Stream {
  const s: Stream = {
    status,
    headers,
    problem: undefined,
    events: [],
    comments: [],
    retry: undefined,
    ended: false,
    error: undefined,
    done: Promise.resolve(),
    changes() {
      return s.events.filter((e) => e.event === 'change').map((e) => JSON.parse(e.data) as Change);
    },
    async abort() {
      abort();
      await s.done;
    },
  };
  return s;
}

async function openStream(
  token: string,
  path: string,
  headers: Record<string, string> = {},
  server = origin,
): Promise<Stream> {
  const controller = new AbortController();
  const res = await fetch(`${server}${path}`, {
    headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  });
  const s = newStream(res.status, res.headers, () => controller.abort());
  if (res.status !== 200 || !res.body) {
    s.problem = await res.json();
    s.ended = true;
    return s;
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const parse = sseParser(s);
  s.done = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parse(decoder.decode(value, { stream: true }));
      }
    } catch (err) {
      if (!controller.signal.aborted) s.error = err;
    } finally {
      s.ended = true;
    }
  })();
  return s;
}

/** Every change event carries its seq as the event id. */
function expectIdsMatch(s: Stream) {
  for (const e of s.events.filter((x) => x.event === 'change')) {
    expect(e.id).toBe(String((JSON.parse(e.data) as Change).seq));
  }
}

// --- Tests ---------------------------------------------------------------------------------------

describe('change feed', () => {
  it('lists changes in commit order with tombstones, pages with limit and since, filters by collection', async () => {
    const t = await setup({ notes: {}, tasks: {} });
    const none = { changes: [], checkpoint: { epoch: 1, seq: 0 }, has_more: false };
    expect(await feed(t)).toEqual(none);
    expect(await feed(t, 'collection=tasks&limit=1')).toEqual(none);

    const notes = docs(t, 'notes');
    const tasks = docs(t, 'tasks');
    await write(t, 'POST', notes, { id: 'a', data: { title: 'A' } });
    await write(t, 'POST', notes, { id: 'b', data: { title: 'B' } });
    await write(t, 'POST', tasks, { id: 't1', data: { done: false } });
    await write(t, 'PUT', `${notes}/a`, { data: { title: 'A2' } });
    await write(t, 'PATCH', `${tasks}/t1`, { done: true });
    await write(t, 'DELETE', `${notes}/b`);

    const all = await feed(t);
    expect(all.has_more).toBe(false);
    expect(all.checkpoint).toEqual({ epoch: 1, seq: 6 });
    expect(summary(all.changes)).toEqual([
      [1, 'notes', 'a', 1, false],
      [2, 'notes', 'b', 1, false],
      [3, 'tasks', 't1', 1, false],
      [4, 'notes', 'a', 2, false],
      [5, 'tasks', 't1', 2, false],
      [6, 'notes', 'b', 2, true],
    ]);
    expect(all.changes.map((c) => c.data)).toEqual([
      { title: 'A' },
      { title: 'B' },
      { done: false },
      { title: 'A2' },
      { done: true },
      null,
    ]);
    for (const c of all.changes) {
      expect(c).toMatchObject({ client_id: null, mutation_id: null });
      expect(new Date(c.at).toISOString()).toBe(c.at);
    }

    // Paging: the checkpoint of a full page is its last change; the rest follows from there.
    const p1 = await feed(t, 'limit=4');
    expect(p1.changes.map((c) => c.seq)).toEqual([1, 2, 3, 4]);
    expect(p1).toMatchObject({ has_more: true, checkpoint: { epoch: 1, seq: 4 } });
    const p2 = await feed(t, `since=${p1.checkpoint.seq}&limit=4`);
    expect(p2.changes.map((c) => c.seq)).toEqual([5, 6]);
    expect(p2).toMatchObject({ has_more: false, checkpoint: { epoch: 1, seq: 6 } });
    expect([...p1.changes, ...p2.changes]).toEqual(all.changes);
    // A page that holds exactly the rest has nothing more.
    expect(await feed(t, 'since=2&limit=4')).toEqual({
      changes: all.changes.slice(2),
      checkpoint: { epoch: 1, seq: 6 },
      has_more: false,
    });
    expect(await feed(t, 'since=6')).toEqual({ changes: [], checkpoint: { epoch: 1, seq: 6 }, has_more: false });

    // A collection filter: the checkpoint still moves past other collections' changes once it has seen them all.
    const onlyTasks = await feed(t, 'collection=tasks');
    expect(onlyTasks.changes.map((c) => c.seq)).toEqual([3, 5]);
    expect(onlyTasks).toMatchObject({ has_more: false, checkpoint: { epoch: 1, seq: 6 } });
    const tp1 = await feed(t, 'collection=tasks&limit=1');
    expect(tp1.changes.map((c) => c.seq)).toEqual([3]);
    expect(tp1).toMatchObject({ has_more: true, checkpoint: { epoch: 1, seq: 3 } });
    const tp2 = await feed(t, `collection=tasks&limit=1&since=${tp1.checkpoint.seq}`);
    expect(tp2.changes.map((c) => c.seq)).toEqual([5]);
    expect(tp2).toMatchObject({ has_more: false, checkpoint: { epoch: 1, seq: 6 } });
    expect(await feed(t, 'collection=tasks&since=5')).toEqual({
      changes: [],
      checkpoint: { epoch: 1, seq: 6 },
      has_more: false,
    });
    expect(await feed(t, 'collection=nothing_here')).toEqual({
      changes: [],
      checkpoint: { epoch: 1, seq: 6 },
      has_more: false,
    });
  });

  it('refuses bad parameters, missing credentials and other tenants', async () => {
    const t = await setup();
    for (const query of ['limit=0', 'limit=1001', 'since=-1', 'since=x', 'epoch=0', 'collection=Bad!', 'foo=1']) {
      const r = await h.call(t.adminKey, 'GET', feedUrl(t, query));
      expect(r.statusCode, query).toBe(400);
      expect(r.json().code, query).toBe('validation_failed');
    }
    expect((await h.call(undefined, 'GET', feedUrl(t))).statusCode).toBe(401);
    const other = await createTenant(h);
    const foreign = await h.call(other.adminKey, 'GET', feedUrl(t));
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json().code).toBe('not_found');
    const push = await h.call(other.adminKey, 'POST', `/v1/tenants/${t.id}/sync/push`, {
      client_id: 'c',
      mutations: [{ mutation_id: 'm', collection: 'notes', id: 'x', base_version: 0, data: {} }],
    });
    expect(push.statusCode).toBe(404);
    expect(await countChanges(t.id)).toBe(0);
  });

  it('concurrent writers and a concurrent reader: every write appears once, gapless, with versions in order', async () => {
    const t = await setup({ alpha: {}, beta: {} });
    const writers = 6;
    const perWriter = 25;
    let succeeded = 0;
    let writersDone = false;

    const writer = async (w: number) => {
      const random = prng(1000 + w);
      for (let i = 0; i < perWriter; i++) {
        // A few shared ids per collection, so writers collide on the same documents.
        const collection = random() < 0.5 ? 'alpha' : 'beta';
        const id = `d${Math.floor(random() * 5)}`;
        const url = docs(t, collection);
        const kind = Math.floor(random() * 4);
        const r =
          kind === 0
            ? await h.call(t.adminKey, 'POST', url, { id, data: { by: w, i, created: true } })
            : kind === 1
              ? await h.call(t.adminKey, 'PUT', `${url}/${id}`, { data: { by: w, i } })
              : kind === 2
                ? await h.call(t.adminKey, 'PATCH', `${url}/${id}`, { [`w${w}`]: i })
                : await h.call(t.adminKey, 'DELETE', `${url}/${id}`);
        if (r.statusCode < 300) succeeded++;
        // A create of a live id is 409; a patch or delete of a missing one is 404. Nothing else.
        else expect([404, 409], r.body).toContain(r.statusCode);
      }
    };

    const read: Change[] = [];
    const readAlpha: Change[] = [];
    const reader = async () => {
      let cursor = 0;
      for (;;) {
        const finished = writersDone; // a page read after the writers finished sees every write
        const page = await feed(t, `since=${cursor}&limit=7`);
        // No filter: a page is exactly the next seqs, and its checkpoint is right after the last one.
        expect(page.changes.map((c) => c.seq)).toEqual(range(cursor + 1, cursor + page.changes.length));
        expect(page.checkpoint.seq).toBe(cursor + page.changes.length);
        read.push(...page.changes);
        cursor = page.checkpoint.seq;
        if (finished && !page.has_more) return;
        if (page.changes.length === 0) await sleep(2);
      }
    };
    const alphaReader = async () => {
      let cursor = 0;
      for (;;) {
        const finished = writersDone;
        const page = await feed(t, `since=${cursor}&limit=5&collection=alpha`);
        for (const c of page.changes) expect(c.collection).toBe('alpha');
        const seqs = page.changes.map((c) => c.seq);
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
        if (seqs.length) expect(seqs[0]).toBeGreaterThan(cursor);
        expect(page.checkpoint.seq).toBeGreaterThanOrEqual(seqs.at(-1) ?? cursor);
        readAlpha.push(...page.changes);
        cursor = page.checkpoint.seq;
        if (finished && !page.has_more) return;
        if (page.changes.length === 0) await sleep(2);
      }
    };

    await Promise.all([
      Promise.all(range(1, writers).map(writer)).then(() => {
        writersDone = true;
      }),
      reader(),
      alphaReader(),
    ]);

    expect(succeeded).toBeGreaterThan(writers * perWriter * 0.4);
    expect(read.map((c) => c.seq)).toEqual(range(1, succeeded));
    expect(await countChanges(t.id)).toBe(succeeded);
    const final = await feed(t, 'limit=1000');
    expect(final.checkpoint).toEqual({ epoch: 1, seq: succeeded });
    expect(final.changes).toEqual(read);
    expect(readAlpha).toEqual(read.filter((c) => c.collection === 'alpha'));
    expect(read.some((c) => c.deleted)).toBe(true);

    // Each document's versions appear once each, in order, tombstones included.
    const versions = new Map<string, number[]>();
    for (const c of read) {
      const key = `${c.collection}/${c.id}`;
      versions.set(key, [...(versions.get(key) ?? []), c.version]);
    }
    for (const [key, vs] of versions) expect(vs, key).toEqual(range(1, vs.length));

    // Replaying the feed rebuilds exactly the documents the API lists.
    const replica = new Map<string, Change>();
    for (const c of read) replica.set(`${c.collection}/${c.id}`, c);
    const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    for (const collection of ['alpha', 'beta']) {
      const listed = await h.call(t.adminKey, 'GET', `${docs(t, collection)}?limit=500`);
      expect(listed.statusCode).toBe(200);
      const actual = (
        listed.json().data as { id: string; version: number; data: unknown; deleted: boolean; updated_at: string }[]
      )
        .map((d) => ({ id: d.id, version: d.version, deleted: d.deleted, data: d.data, updated_at: d.updated_at }))
        .sort(byId);
      const rebuilt = [...replica.values()]
        .filter((c) => c.collection === collection && !c.deleted)
        .map((c) => ({ id: c.id, version: c.version, deleted: false, data: c.data, updated_at: c.at }))
        .sort(byId);
      expect(actual, collection).toEqual(rebuilt);
    }
  });
});

describe('sync push', () => {
  const pushUrl = (t: TestTenant) => `/v1/tenants/${t.id}/sync/push`;

  it('applies mutations compare-and-set: versions and seqs, conflicts with the current document, tombstones', async () => {
    const t = await setup();
    const push = (body: unknown) => h.call(t.adminKey, 'POST', pushUrl(t), body);

    const first = await push({
      client_id: 'device-1',
      mutations: [
        { mutation_id: 'm1', collection: 'notes', id: 'a', base_version: 0, data: { title: 'A' } },
        { mutation_id: 'm2', collection: 'notes', id: 'b', base_version: 0, data: { title: 'B' } },
        { mutation_id: 'm3', collection: 'notes', id: 'a', base_version: 1, data: { title: 'A2' } },
      ],
    });
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toEqual({
      results: [
        { mutation_id: 'm1', status: 'applied', version: 1, seq: 1 },
        { mutation_id: 'm2', status: 'applied', version: 1, seq: 2 },
        { mutation_id: 'm3', status: 'applied', version: 2, seq: 3 },
      ],
      checkpoint: { epoch: 1, seq: 3 },
    });
    const changes = (await feed(t)).changes;
    expect(changes.map((c) => [c.seq, c.id, c.version, c.client_id, c.mutation_id])).toEqual([
      [1, 'a', 1, 'device-1', 'm1'],
      [2, 'b', 1, 'device-1', 'm2'],
      [3, 'a', 2, 'device-1', 'm3'],
    ]);
    const a = (await h.call(t.adminKey, 'GET', `${docs(t, 'notes')}/a`)).json();
    expect(a).toMatchObject({ version: 2, data: { title: 'A2' } });

    // Stale base versions: each conflict carries the server's document and nothing is written.
    const stale = await push({
      client_id: 'device-2',
      mutations: [
        { mutation_id: 'x1', collection: 'notes', id: 'a', base_version: 1, data: { title: 'stale' } },
        { mutation_id: 'x2', collection: 'notes', id: 'b', base_version: 0, data: { title: 'new?' } },
        { mutation_id: 'x3', collection: 'notes', id: 'never', base_version: 3, deleted: true },
      ],
    });
    expect(stale.statusCode, stale.body).toBe(200);
    const [x1, x2, x3] = stale.json().results;
    expect(x1).toEqual({ mutation_id: 'x1', status: 'conflict', current: a });
    expect(x2).toMatchObject({ mutation_id: 'x2', status: 'conflict', current: { id: 'b', version: 1 } });
    expect(x3).toEqual({ mutation_id: 'x3', status: 'conflict', current: null });
    expect(stale.json().checkpoint).toEqual({ epoch: 1, seq: 3 });
    expect(await countChanges(t.id)).toBe(3);
    expect((await h.call(t.adminKey, 'GET', `${docs(t, 'notes')}/a`)).json()).toEqual(a);

    // deleted: true leaves a tombstone; its version is what a re-create must be based on.
    const del = await push({
      client_id: 'device-1',
      mutations: [{ mutation_id: 'm4', collection: 'notes', id: 'b', base_version: 1, deleted: true }],
    });
    expect(del.json()).toEqual({
      results: [{ mutation_id: 'm4', status: 'applied', version: 2, seq: 4 }],
      checkpoint: { epoch: 1, seq: 4 },
    });
    expect((await h.call(t.adminKey, 'GET', `${docs(t, 'notes')}/b`)).statusCode).toBe(404);
    expect((await feed(t, 'since=3')).changes).toEqual([
      expect.objectContaining({
        seq: 4,
        id: 'b',
        version: 2,
        deleted: true,
        data: null,
        client_id: 'device-1',
        mutation_id: 'm4',
      }),
    ]);
    const recreate = await push({
      client_id: 'device-1',
      mutations: [
        { mutation_id: 'm5', collection: 'notes', id: 'b', base_version: 0, data: { title: 'B again' } },
        { mutation_id: 'm6', collection: 'notes', id: 'b', base_version: 2, data: { title: 'B again' } },
      ],
    });
    const [m5, m6] = recreate.json().results;
    expect(m5).toMatchObject({ status: 'conflict', current: { id: 'b', version: 2, deleted: true, data: null } });
    expect(m6).toEqual({ mutation_id: 'm6', status: 'applied', version: 3, seq: 5 });
    expect(recreate.json().checkpoint).toEqual({ epoch: 1, seq: 5 });
    expect((await h.call(t.adminKey, 'GET', `${docs(t, 'notes')}/b`)).json()).toMatchObject({
      version: 3,
      data: { title: 'B again' },
    });
  });

  it('a retried push returns the first results and writes nothing, whatever order its members are in', async () => {
    const t = await setup();
    const push = (body: unknown) => h.call(t.adminKey, 'POST', pushUrl(t), body);
    const body = {
      client_id: 'device-1',
      mutations: [
        { mutation_id: 'm1', collection: 'notes', id: 'a', base_version: 0, data: { title: 'A', tags: ['x'] } },
        { mutation_id: 'm2', collection: 'notes', id: 'a', base_version: 1, data: { title: 'A2', n: { p: 1, q: 2 } } },
        { mutation_id: 'm3', collection: 'notes', id: 'a', base_version: 1, data: { title: 'lost' } },
      ],
    };
    const first = await push(body);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json().results.map((r: { status: string }) => r.status)).toEqual(['applied', 'applied', 'conflict']);
    expect(await countChanges(t.id)).toBe(2);

    // Something else writes in between; the retry still answers what happened the first time.
    await write(t, 'PUT', `${docs(t, 'notes')}/other`, { data: {} });
    const retry = await push(body);
    expect(retry.statusCode).toBe(200);
    expect(retry.json().results).toEqual(first.json().results);
    expect(retry.json().checkpoint).toEqual({ epoch: 1, seq: 3 });
    expect(await countChanges(t.id)).toBe(3);

    // The same mutations serialized with their members in another order are the same mutations.
    const reordered = {
      mutations: body.mutations.map((m) => ({
        data: Object.fromEntries(
          Object.entries(m.data)
            .reverse()
            .map(([k, v]) =>
              typeof v === 'object' && v !== null && !Array.isArray(v)
                ? [k, Object.fromEntries(Object.entries(v).reverse())]
                : [k, v],
            ),
        ),
        base_version: m.base_version,
        id: m.id,
        collection: m.collection,
        mutation_id: m.mutation_id,
      })),
      client_id: body.client_id,
    };
    const again = await push(reordered);
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json().results).toEqual(first.json().results);
    expect(await countChanges(t.id)).toBe(3);
    expect((await h.call(t.adminKey, 'GET', `${docs(t, 'notes')}/a`)).json().version).toBe(2);

    // Concurrent retries of one push also apply it once.
    const fresh = {
      client_id: 'device-2',
      mutations: [{ mutation_id: 'n1', collection: 'notes', id: 'c', base_version: 0, data: { c: 1 } }],
    };
    const racing = await Promise.all(range(1, 4).map(() => push(fresh)));
    for (const r of racing) {
      expect(r.json().results).toEqual([{ mutation_id: 'n1', status: 'applied', version: 1, seq: 4 }]);
    }
    expect(await countChanges(t.id)).toBe(4);
  });

  it('a mutation id reused with other content is rejected on its own; the rest of the push applies', async () => {
    const t = await setup();
    const push = (body: unknown) => h.call(t.adminKey, 'POST', pushUrl(t), body);
    const original = {
      client_id: 'device-1',
      mutations: [{ mutation_id: 'm1', collection: 'notes', id: 'a', base_version: 0, data: { title: 'A' } }],
    };
    const first = await push(original);
    expect(first.json().results).toEqual([{ mutation_id: 'm1', status: 'applied', version: 1, seq: 1 }]);

    const reused = await push({
      client_id: 'device-1',
      mutations: [
        { mutation_id: 'm1', collection: 'notes', id: 'a', base_version: 1, data: { title: 'different' } },
        { mutation_id: 'm2', collection: 'notes', id: 'b', base_version: 0, data: { title: 'B' } },
      ],
    });
    expect(reused.statusCode, reused.body).toBe(200);
    expect(reused.json()).toEqual({
      results: [
        {
          mutation_id: 'm1',
          status: 'rejected',
          error: { code: 'idempotency_key_reused', detail: expect.stringContaining('m1') },
        },
        { mutation_id: 'm2', status: 'applied', version: 1, seq: 2 },
      ],
      checkpoint: { epoch: 1, seq: 2 },
    });
    expect((await h.call(t.adminKey, 'GET', `${docs(t, 'notes')}/a`)).json()).toMatchObject({
      version: 1,
      data: { title: 'A' },
    });
    // The id keeps its first result: retrying the original mutation still answers it.
    const retry = await push(original);
    expect(retry.json().results).toEqual(first.json().results);
    expect(await countChanges(t.id)).toBe(2);

    // Within one push too: the second use of an id with other content is refused, the first stands.
    const twice = await push({
      client_id: 'device-1',
      mutations: [
        { mutation_id: 'm3', collection: 'notes', id: 'b', base_version: 1, data: { title: 'B2' } },
        { mutation_id: 'm3', collection: 'notes', id: 'b', base_version: 1, data: { title: 'B3' } },
      ],
    });
    expect(twice.json().results).toEqual([
      { mutation_id: 'm3', status: 'applied', version: 2, seq: 3 },
      expect.objectContaining({
        mutation_id: 'm3',
        status: 'rejected',
        error: expect.objectContaining({ code: 'idempotency_key_reused' }),
      }),
    ]);
    expect(await countChanges(t.id)).toBe(3);

    // Mutation ids are per client: another client's m1 is a different mutation.
    const otherClient = await push({
      client_id: 'device-2',
      mutations: [{ mutation_id: 'm1', collection: 'notes', id: 'c', base_version: 0, data: {} }],
    });
    expect(otherClient.json().results).toEqual([{ mutation_id: 'm1', status: 'applied', version: 1, seq: 4 }]);
  });

  it('rejects a mutation with neither or both of data and deleted, invalid data, or an unknown collection', async () => {
    const t = await setup({
      notes: {},
      strict: { json_schema: { type: 'object', required: ['title'], properties: { title: { type: 'string' } } } },
    });
    await write(t, 'PUT', `${docs(t, 'notes')}/existing`, { data: {} });
    const r = await h.call(t.adminKey, 'POST', pushUrl(t), {
      client_id: 'device-1',
      mutations: [
        { mutation_id: 'r1', collection: 'notes', id: 'e', base_version: 0 },
        { mutation_id: 'r2', collection: 'notes', id: 'e', base_version: 0, data: { x: 1 }, deleted: true },
        { mutation_id: 'r3', collection: 'strict', id: 'e', base_version: 0, data: { title: 7 } },
        { mutation_id: 'r4', collection: 'missing', id: 'e', base_version: 0, data: {} },
        { mutation_id: 'r5', collection: 'strict', id: 'e', base_version: 0, data: { title: 'ok' } },
      ],
    });
    expect(r.statusCode, r.body).toBe(200);
    const [r1, r2, r3, r4, r5] = r.json().results;
    expect(r1).toMatchObject({ mutation_id: 'r1', status: 'rejected', error: { code: 'validation_failed' } });
    expect(r2).toMatchObject({ mutation_id: 'r2', status: 'rejected', error: { code: 'validation_failed' } });
    expect(r3).toMatchObject({ mutation_id: 'r3', status: 'rejected', error: { code: 'validation_failed' } });
    expect(r3.error.detail).toContain('data/title');
    expect(r4).toMatchObject({ mutation_id: 'r4', status: 'rejected', error: { code: 'not_found' } });
    expect(r5).toEqual({ mutation_id: 'r5', status: 'applied', version: 1, seq: 2 });
    expect(r.json().checkpoint).toEqual({ epoch: 1, seq: 2 });
    expect(await countChanges(t.id)).toBe(2);

    // A push where nothing applies still answers the committed checkpoint.
    const nothing = await h.call(t.adminKey, 'POST', pushUrl(t), {
      client_id: 'device-1',
      mutations: [{ mutation_id: 'r6', collection: 'notes', id: 'e', base_version: 0 }],
    });
    expect(nothing.json()).toMatchObject({ results: [{ status: 'rejected' }], checkpoint: { epoch: 1, seq: 2 } });

    // The body itself is checked before anything runs.
    for (const body of [
      { client_id: 'device-1', mutations: [] },
      { client_id: 'bad id!', mutations: [{ mutation_id: 'm', collection: 'notes', id: 'x', base_version: 0 }] },
      { client_id: 'c', mutations: [{ mutation_id: 'm', collection: 'notes', id: 'x', base_version: -1, data: {} }] },
      {
        client_id: 'c',
        mutations: [{ mutation_id: 'm', collection: 'notes', id: 'x', base_version: 0, deleted: false }],
      },
      { client_id: 'c', mutations: [{ mutation_id: 'm', collection: 'notes', id: 'x', base_version: 0, extra: 1 }] },
    ]) {
      const bad = await h.call(t.adminKey, 'POST', pushUrl(t), body);
      expect(bad.statusCode, JSON.stringify(body)).toBe(400);
      expect(bad.json().code).toBe('validation_failed');
    }
    expect(await countChanges(t.id)).toBe(2);
  });
});

describe('epochs', () => {
  it('a checkpoint from another epoch, or ahead of the last change, gets 409 resync_required', async () => {
    const t = await setup();
    await write(t, 'PUT', `${docs(t, 'notes')}/a`, { data: { n: 1 } });
    await write(t, 'PUT', `${docs(t, 'notes')}/b`, { data: { n: 2 } });
    expect((await feed(t, 'epoch=1&since=1')).checkpoint).toEqual({ epoch: 1, seq: 2 });

    await withTenant(h.db, t.id, (tx) => tx.query('UPDATE strata_data.tenant_sequences SET epoch = 2'));
    for (const query of ['epoch=1&since=2', 'epoch=1', 'epoch=3&since=0']) {
      const stale = await h.call(t.adminKey, 'GET', feedUrl(t, query));
      expect(stale.statusCode, query).toBe(409);
      expect(stale.headers['content-type']).toContain('application/problem+json');
      expect(stale.json(), query).toMatchObject({ code: 'resync_required', status: 409, epoch: 2 });
    }
    const current = await feed(t, 'epoch=2');
    expect(current.checkpoint).toEqual({ epoch: 2, seq: 2 });
    expect(current.changes.map((c) => c.seq)).toEqual([1, 2]);
    expect((await feed(t)).checkpoint).toEqual({ epoch: 2, seq: 2 });
    expect(await feed(t, 'since=2')).toEqual({ changes: [], checkpoint: { epoch: 2, seq: 2 }, has_more: false });

    for (const query of ['since=3', 'since=3&epoch=2', 'since=99&collection=notes']) {
      const ahead = await h.call(t.adminKey, 'GET', feedUrl(t, query));
      expect(ahead.statusCode, query).toBe(409);
      expect(ahead.json(), query).toMatchObject({ code: 'resync_required', epoch: 2 });
    }

    const pushed = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/sync/push`, {
      client_id: 'c',
      mutations: [{ mutation_id: 'm', collection: 'notes', id: 'a', base_version: 1, data: { n: 3 } }],
    });
    expect(pushed.json().checkpoint).toEqual({ epoch: 2, seq: 3 });

    // Epochs are per tenant.
    const other = await setup();
    expect((await feed(other, 'epoch=1')).checkpoint).toEqual({ epoch: 1, seq: 0 });
  });
});

describe('change stream (SSE)', () => {
  it('streams past changes and then each write as it commits, ids being seqs', async () => {
    const t = await setup({ notes: {}, tasks: {} });
    await write(t, 'PUT', `${docs(t, 'notes')}/a`, { data: { n: 1 } });

    const s = await openStream(t.adminKey, streamPath(t));
    expect(s.status).toBe(200);
    expect(s.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(s.headers.get('cache-control')).toContain('no-cache');
    expect(s.headers.get('x-request-id')).toBeTruthy();
    await until('the change made before connecting', () => s.changes().length >= 1);
    expect(s.retry).toBe(1000);

    await write(t, 'PUT', `${docs(t, 'tasks')}/t1`, { data: { done: false } });
    await write(t, 'PATCH', `${docs(t, 'notes')}/a`, { n: 2 });
    await write(t, 'DELETE', `${docs(t, 'notes')}/a`);
    const pushed = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/sync/push`, {
      client_id: 'device-1',
      mutations: [{ mutation_id: 'm1', collection: 'tasks', id: 't2', base_version: 0, data: { done: true } }],
    });
    expect(pushed.json().results[0].status).toBe('applied');

    await until('five changes', () => s.changes().length >= 5);
    expect(s.changes()).toEqual((await feed(t)).changes);
    expect(s.changes().at(-1)).toMatchObject({ seq: 5, id: 't2', client_id: 'device-1', mutation_id: 'm1' });
    expect(s.changes()[3]).toMatchObject({ seq: 4, id: 'a', deleted: true, data: null });
    expectIdsMatch(s);
    expect(s.ended).toBe(false);
    await s.abort();
    expect(s.error).toBeUndefined();
  });

  it('filters by collection and starts after since=', async () => {
    const t = await setup({ notes: {}, tasks: {} });
    const onlyTasks = await openStream(t.adminKey, streamPath(t, 'collection=tasks'));
    expect(onlyTasks.status).toBe(200);
    await write(t, 'PUT', `${docs(t, 'notes')}/a`, { data: {} }); // 1
    await write(t, 'PUT', `${docs(t, 'tasks')}/t1`, { data: {} }); // 2
    await write(t, 'PUT', `${docs(t, 'notes')}/b`, { data: {} }); // 3
    const fromThree = await openStream(t.adminKey, streamPath(t, 'since=3'));
    expect(fromThree.status).toBe(200);
    await write(t, 'PUT', `${docs(t, 'tasks')}/t2`, { data: {} }); // 4
    await write(t, 'PATCH', `${docs(t, 'tasks')}/t1`, { x: 1 }); // 5
    await write(t, 'DELETE', `${docs(t, 'notes')}/a`); // 6

    await until('three task changes', () => onlyTasks.changes().length >= 3);
    await until('the changes after 3', () => fromThree.changes().length >= 3);
    expect(onlyTasks.changes().map((c) => c.seq)).toEqual([2, 4, 5]);
    expect(onlyTasks.changes()).toEqual((await feed(t, 'collection=tasks')).changes);
    expect(fromThree.changes().map((c) => c.seq)).toEqual([4, 5, 6]);

    // Later writes to other collections are skipped; the next task change still arrives.
    await write(t, 'PUT', `${docs(t, 'notes')}/c`, { data: {} }); // 7
    await write(t, 'DELETE', `${docs(t, 'tasks')}/t2`); // 8
    await until('the task delete', () => onlyTasks.changes().length >= 4);
    await until('everything after 3', () => fromThree.changes().length >= 5);
    expect(onlyTasks.changes().map((c) => [c.seq, c.collection])).toEqual([
      [2, 'tasks'],
      [4, 'tasks'],
      [5, 'tasks'],
      [8, 'tasks'],
    ]);
    expect(fromThree.changes().map((c) => c.seq)).toEqual([4, 5, 6, 7, 8]);
    expectIdsMatch(onlyTasks);
    await onlyTasks.abort();
    await fromThree.abort();
  });

  it('a client that drops mid-stream and resumes with Last-Event-ID misses nothing and sees nothing twice', async () => {
    const t = await setup();
    let n = 0;
    const put = () => write(t, 'PUT', `${docs(t, 'notes')}/d${n % 7}`, { data: { n: n++ } });
    const received: number[][] = [];
    let lastId: string | undefined;
    for (let round = 0; round < 4; round++) {
      const s = await openStream(t.adminKey, streamPath(t), lastId ? { 'last-event-id': lastId } : {});
      expect(s.status).toBe(200);
      // Writes run while the client is connected, and it drops while some may still be in flight...
      const batch = Promise.all(range(1, 8).map(put));
      await until('an event', () => s.changes().length > 0);
      await s.abort();
      await batch;
      // ...and more happen while it is away.
      await Promise.all(range(1, 4).map(put));
      const seqs = s.changes().map((c) => c.seq);
      if (lastId !== undefined) expect(seqs[0]).toBe(Number(lastId) + 1);
      received.push(seqs);
      lastId = String(seqs.at(-1));
    }
    const total = n;
    const last = await openStream(t.adminKey, streamPath(t), { 'last-event-id': lastId as string });
    await until('the rest', () => (last.changes().at(-1)?.seq ?? 0) >= total);
    await last.abort();
    received.push(last.changes().map((c) => c.seq));

    expect(received.flat()).toEqual(range(1, total));
    expect(total).toBe(48);
  });

  it('max_seconds ends the stream', async () => {
    const t = await setup();
    await write(t, 'PUT', `${docs(t, 'notes')}/a`, { data: {} });
    const s = await openStream(t.adminKey, streamPath(t, 'max_seconds=0.3'));
    expect(s.status).toBe(200);
    await within(s.done, 'the stream to end');
    expect(s.ended).toBe(true);
    expect(s.error).toBeUndefined();
    expect(s.changes().map((c) => c.seq)).toEqual([1]);
  });

  it('a change of epoch mid-stream sends resync and ends the stream; reconnecting from the old epoch is refused', async () => {
    const t = await setup();
    await write(t, 'PUT', `${docs(t, 'notes')}/a`, { data: {} });
    const s = await openStream(t.adminKey, streamPath(t, 'epoch=1'));
    await until('the first change', () => s.changes().length === 1);
    await withTenant(h.db, t.id, (tx) => tx.query('UPDATE strata_data.tenant_sequences SET epoch = 2'));
    await write(t, 'PUT', `${docs(t, 'notes')}/b`, { data: {} });
    await within(s.done, 'the stream to end');
    expect(s.error).toBeUndefined();
    expect(s.events.at(-1)?.event).toBe('resync');
    expect(JSON.parse(s.events.at(-1)?.data ?? '{}')).toEqual({ epoch: 2, seq: 2 });
    expect(s.changes().map((c) => c.seq)).toEqual([1]);

    // An EventSource reconnects with the URL it was opened with: the stale epoch gets 409, not a silent resume.
    const stale = await openStream(t.adminKey, streamPath(t, 'epoch=1'), { 'last-event-id': '1' });
    expect(stale.status).toBe(409);
    expect(stale.headers.get('content-type')).toContain('application/problem+json');
    expect(stale.problem).toMatchObject({ code: 'resync_required', epoch: 2 });
    const ahead = await openStream(t.adminKey, streamPath(t), { 'last-event-id': '99' });
    expect(ahead.status).toBe(409);
    expect(ahead.problem).toMatchObject({ code: 'resync_required', epoch: 2 });

    // Sequences reset under a new epoch while a stream is ahead of them: resync too.
    const s2 = await openStream(t.adminKey, streamPath(t, 'epoch=2'));
    await until('both changes', () => s2.changes().length === 2);
    await withTenant(h.db, t.id, async (tx) => {
      await tx.query('DELETE FROM strata_data.changes');
      await tx.query('UPDATE strata_data.tenant_sequences SET epoch = 3, last_seq = 0');
    });
    await write(t, 'PUT', `${docs(t, 'notes')}/c`, { data: {} });
    await within(s2.done, 'the second stream to end');
    expect(s2.events.at(-1)?.event).toBe('resync');
    expect(JSON.parse(s2.events.at(-1)?.data ?? '{}')).toMatchObject({ epoch: 3 });
    expect(s2.changes().map((c) => c.seq)).toEqual([1, 2]);
  });

  it('refuses a bad Last-Event-ID, a position past the end, bad parameters and other tenants before streaming', async () => {
    const t = await setup();
    await write(t, 'PUT', `${docs(t, 'notes')}/a`, { data: {} });
    for (const id of ['abc', '-1', '1.5', '9'.repeat(16), '1 2']) {
      const s = await openStream(t.adminKey, streamPath(t), { 'last-event-id': id });
      expect(s.status, id).toBe(400);
      expect(s.headers.get('content-type'), id).toContain('application/problem+json');
      expect(s.problem, id).toMatchObject({ code: 'bad_request', status: 400 });
    }
    const ahead = await openStream(t.adminKey, streamPath(t, 'since=2'));
    expect(ahead.status).toBe(409);
    expect(ahead.problem).toMatchObject({ code: 'resync_required', epoch: 1 });
    for (const query of ['max_seconds=0', 'max_seconds=100000', 'since=-1', 'collection=Bad', 'limit=5']) {
      const s = await openStream(t.adminKey, streamPath(t, query));
      expect(s.status, query).toBe(400);
      expect(s.problem?.code, query).toBe('validation_failed');
    }

    const other = await createTenant(h);
    const foreign = await openStream(other.adminKey, streamPath(t));
    expect(foreign.status).toBe(404);
    expect(foreign.headers.get('content-type')).toContain('application/problem+json');
    expect(foreign.problem).toMatchObject({ code: 'not_found' });
    const anonymous = await fetch(`${origin}${streamPath(t)}`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('content-type')).toContain('application/problem+json');
    await anonymous.body?.cancel();
  });

  it('a client that stops reading holds its stream back: no further reads of the feed until the socket drains', async () => {
    const t = await setup();
    // Enough history (about 10 MB) to fill the socket buffers of a client that does not read.
    const total = 2000;
    await withTenant(h.db, t.id, async (tx) => {
      await tx.query(
        `INSERT INTO strata_data.changes (tenant_id, seq, collection, doc_id, version, deleted, body)
         SELECT $1, g, 'notes', 'd' || g, 1, false, jsonb_build_object('pad', repeat('x', 5000))
           FROM generate_series(1, $2::int) g`,
        [t.id, total],
      );
      await tx.query(
        `INSERT INTO strata_data.tenant_sequences (tenant_id, last_seq) VALUES ($1, $2)
         ON CONFLICT (tenant_id) DO UPDATE SET last_seq = EXCLUDED.last_seq`,
        [t.id, total],
      );
    });
    const path = streamPath(t);
    const log: ('feed' | 'full' | 'drain')[] = [];
    const service = h.strata.services.changes;
    const originalFeed = service.feed.bind(service);
    const feedSpy = vi.spyOn(service, 'feed').mockImplementation((tenantId, input) => {
      if (tenantId === t.id) log.push('feed');
      return originalFeed(tenantId, input);
    });
    const originalWrite = http.ServerResponse.prototype.write;
    const writeSpy = vi.spyOn(http.ServerResponse.prototype, 'write').mockImplementation(function (
      this: http.ServerResponse,
      ...args: unknown[]
    ) {
      const ok = (originalWrite as (...a: unknown[]) => boolean).apply(this, args);
      if (!ok && this.req?.url === path) {
        log.push('full');
        this.once('drain', () => log.push('drain'));
      }
      return ok;
    } as never);
    try {
      const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
        http
          .get(`${origin}${path}`, { agent: false, headers: { authorization: `Bearer ${t.adminKey}` } }, resolve)
          .on('error', reject);
      });
      expect(response.statusCode).toBe(200);
      response.pause();
      await until('the socket to fill up', () => log.includes('full'));

      const s = newStream(200, new Headers(), () => response.destroy());
      const parse = sseParser(s);
      response.setEncoding('utf8');
      response.on('data', parse);
      response.resume();
      await until('every change', () => s.events.length >= total);
      response.destroy();
      expect(s.changes().map((c) => c.seq)).toEqual(range(1, total));

      // After a write the socket could not take, the next read of the feed waits for the drain.
      let waiting = false;
      let readsWhileFull = 0;
      for (const entry of log) {
        if (entry === 'full') waiting = true;
        else if (entry === 'drain') waiting = false;
        else if (waiting) readsWhileFull++;
      }
      expect(log.filter((e) => e === 'full').length).toBeGreaterThan(0);
      expect(readsWhileFull).toBe(0);
    } finally {
      writeSpy.mockRestore();
      feedSpy.mockRestore();
    }
  });

  it('a client gone before its stream starts leaves nothing subscribed or polling', async () => {
    const t = await setup();
    const service = h.strata.services.changes;
    const original = service.feed.bind(service);
    const entered = deferred();
    const gate = deferred();
    const firstDone = deferred();
    let calls = 0;
    // Hold the stream's opening read until the client has gone.
    const spy = vi.spyOn(service, 'feed').mockImplementation(async (tenantId, input) => {
      if (tenantId !== t.id) return original(tenantId, input);
      calls++;
      if (calls > 1) return original(tenantId, input);
      entered.resolve();
      await gate.promise;
      try {
        return await original(tenantId, input);
      } finally {
        firstDone.resolve();
      }
    });
    try {
      let socketClosed = false;
      h.strata.app.server.once('connection', (socket: Socket) => {
        socket.once('close', () => {
          socketClosed = true;
        });
      });
      const req = http.get(`${origin}${streamPath(t)}`, {
        agent: false,
        headers: { authorization: `Bearer ${t.adminKey}` },
      });
      req.on('error', () => {});
      await within(entered.promise, 'the stream to check its position');
      req.destroy();
      await until('the server to see the client go', () => socketClosed);
      gate.resolve();
      await within(firstDone.promise, 'the position check to finish');
      await new Promise((resolve) => setImmediate(resolve));
      expect(calls).toBe(1);
      // A write wakes nothing for that tenant: no stream was left behind.
      await write(t, 'PUT', `${docs(t, 'notes')}/a`, { data: {} });
      expect(calls).toBe(1);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('change stream heartbeats and shutdown', () => {
  let h2: Harness;
  let origin2: string;
  let closed = false;
  beforeAll(async () => {
    h2 = await startHarness({ STRATA_SSE_HEARTBEAT_SECONDS: '0.2' });
    origin2 = await listen(h2);
  });
  afterAll(async () => {
    if (!closed) await h2?.close();
  });

  it('sends heartbeat comments while nothing changes', async () => {
    const t = await createTenant(h2);
    const s = await openStream(t.adminKey, streamPath(t), {}, origin2);
    expect(s.status).toBe(200);
    await until('two heartbeats', () => s.comments.filter((c) => c === 'heartbeat').length >= 2);
    expect(s.events).toEqual([]);
    expect(s.ended).toBe(false);
    await s.abort();
  });

  it('closing the app ends open streams, and closing finishes', async () => {
    const t = await createTenant(h2);
    const streams = await Promise.all([
      openStream(t.adminKey, streamPath(t), {}, origin2),
      openStream(t.adminKey, streamPath(t), {}, origin2),
    ]);
    for (const s of streams) {
      expect(s.status).toBe(200);
      await until('the stream to start', () => s.retry !== undefined);
    }
    closed = true;
    await within(h2.close(), 'the harness to close', 20_000);
    for (const s of streams) {
      await within(s.done, 'the stream to end');
      expect(s.ended).toBe(true);
    }
  });
});
