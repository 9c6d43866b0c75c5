import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileQuery, LIMITS, project, queryFingerprint } from '../src/modules/documents/query.js';
import { createTenant, type Harness, startHarness, type TestTenant } from './harness.js';

/**
 * The query language (filters, sorts, cursors, projection, count) against a fixed set of documents, hostile
 * input, and per-collection path indexes. Every expected id list below is written out by hand from the
 * documents, never derived from the implementation.
 */

interface Doc {
  id: string;
  collection: string;
  version: number;
  deleted: boolean;
  created_at: string;
  updated_at: string;
  data: Record<string, unknown>;
}

// Numbers, strings, booleans, nulls, missing fields, nested objects, arrays of scalars and of objects, and
// fields holding different types in different documents.
const DOCS: Record<string, Record<string, unknown>> = {
  d01: {
    n: 1,
    s: 'apple',
    flag: true,
    tags: ['red', 'fruit'],
    addr: { city: 'oslo', zip: '0150' },
    items: [{ sku: 'a1', qty: 2 }],
    mixed: 1,
    opt: null,
  },
  d02: {
    n: 2,
    s: 'banana',
    flag: false,
    tags: ['yellow', 'fruit'],
    addr: { city: 'bergen', zip: '5003' },
    items: [
      { sku: 'b1', qty: 1 },
      { sku: 'a1', qty: 5 },
    ],
    mixed: 'one',
  },
  d03: {
    n: 3.5,
    s: 'cherry',
    flag: true,
    tags: ['red'],
    addr: { city: 'oslo', geo: { lat: 59.9 } },
    mixed: true,
    opt: 'set',
  },
  d04: { n: -1, s: 'date', tags: [], addr: { city: 'tromso' }, mixed: null },
  d05: { n: 10, s: 'elderberry', flag: null, tags: ['purple', 'fruit', 'red'], mixed: { k: 1 } },
  d06: { n: '5', s: 'fig', tags: 'red fruit', mixed: [1, 2] },
  d07: { n: null, s: 'grape', flag: false, tags: ['green'], addr: null },
  d08: { s: 'apricot', flag: true, tags: ['orange', 'fruit'], addr: { city: 'bergen', zip: '5020' } },
  d09: { n: 0, s: 7, tags: [['red']], items: [{ sku: 'a1', qty: 2, note: 'x' }] },
  d10: { n: 2, s: 'Banana', flag: true, addr: { city: 'oslo', zip: '0150' }, opt: 0 },
  d11: { n: 100, s: '10', flag: 'true', mixed: '1' },
  // Everything else missing, but one member whose name and value hold characters that delimit arrays and
  // strings in SQL and in PostgreSQL's array syntax.
  d12: { 'we"ird,{key}\\': { 'a b': 'x,"y"}\\' } },
  d13: { n: 20, s: 'lime', deep: { a: { b: { c: 'x' } } }, tags: ['fruit'] },
  d14: { n: 2, s: 'cherry', list: [1, 2, 3], flag: false, mixed: false },
  d15: { n: 7, s: 'kiwi', tags: ['red', 'green'], addr: { city: 'Oslo' } },
};
const ALL = Object.keys(DOCS);
const FIRST = ['d01', 'd02', 'd03', 'd04', 'd05', 'd06', 'd07', 'd08'];
const SECOND = ['d09', 'd10', 'd11', 'd12', 'd13', 'd14', 'd15'];

// The second tenant has a collection of the same name, one document with the same id, and values that
// match many of the filters below. None of it may ever show up in the first tenant's results.
const OTHER: Record<string, Record<string, unknown>> = {
  d01: { tenant: 'b', n: 1, s: 'apple', tags: ['red', 'fruit'], addr: { city: 'oslo' } },
  b01: { tenant: 'b', n: 2, s: 'banana', flag: true },
  b02: { tenant: 'b', n: 2, s: 'cherry', opt: null },
  b03: { tenant: 'b', n: 3.5, tags: ['red'] },
  b04: { tenant: 'b' },
};

let h: Harness;
let a: TestTenant;
let b: TestTenant;
/** The first tenant's documents as last written, by id. */
const stored = new Map<string, Doc>();
/** The commit times of the second batch and of the batch of updates (millisecond ISO strings). */
let second: string;
let updates: string;

const batch = async (t: TestTenant, operations: unknown[]): Promise<Doc[]> => {
  const r = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/batch`, { operations });
  expect(r.statusCode, r.body).toBe(200);
  return r.json().results.map((x: { document: Doc }) => x.document);
};
const creates = (ids: string[], source: Record<string, Record<string, unknown>>, collection = 'items') =>
  ids.map((id) => ({ op: 'create', collection, id, data: source[id] }));

/** A result of the first tenant must consist of its own documents, exactly as stored. */
function checkOwn(data: Doc[]): void {
  for (const doc of data) {
    const own = stored.get(doc.id);
    expect(own, `${doc.id} is not the first tenant's`).toBeDefined();
    expect(doc.created_at).toBe(own?.created_at);
    expect(doc.data?.tenant).toBeUndefined();
  }
}

async function query(body: Record<string, unknown>, collection = 'items', t: TestTenant = a) {
  const r = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/collections/${collection}/query`, body);
  if (r.statusCode === 200 && t === a) checkOwn(r.json().data);
  return r;
}

/** The ids of every matching document, in one page. */
async function ids(body: Record<string, unknown>): Promise<string[]> {
  const r = await query({ limit: 500, ...body });
  expect(r.statusCode, r.body).toBe(200);
  expect(r.json().next_cursor).toBeNull();
  return r.json().data.map((d: Doc) => d.id);
}

/** Walks every page with a small limit; each cursor is used once, with the same filter and sort. */
async function walk(body: Record<string, unknown>, limit: number): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 100; page++) {
    const r = await query({ ...body, limit, ...(cursor ? { cursor } : {}) });
    expect(r.statusCode, r.body).toBe(200);
    const { data, next_cursor } = r.json();
    expect(data.length).toBeLessThanOrEqual(limit);
    out.push(...data.map((d: Doc) => d.id));
    if (!next_cursor) return out;
    expect(data).toHaveLength(limit);
    cursor = next_cursor;
  }
  throw new Error('pagination did not end');
}

async function invalid(body: Record<string, unknown>, path: string): Promise<void> {
  const r = await query(body);
  expect(r.statusCode, `${JSON.stringify(body).slice(0, 200)} -> ${r.body}`).toBe(400);
  expect(r.json().code).toBe('invalid_filter');
  expect(r.json().errors[0].path).toBe(path);
}

const cond = (path: unknown, op: unknown, value: unknown) => ({ path, op, value });

beforeAll(async () => {
  h = await startHarness();
  a = await createTenant(h);
  b = await createTenant(h);
  for (const t of [a, b]) {
    const r = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/collections`, { name: 'items' });
    expect(r.statusCode, r.body).toBe(201);
  }
  expect((await h.call(a.adminKey, 'POST', `/v1/tenants/${a.id}/collections`, { name: 'other' })).statusCode).toBe(201);
  expect((await h.call(b.adminKey, 'POST', `/v1/tenants/${b.id}/collections`, { name: 'secret' })).statusCode).toBe(
    201,
  );
  await batch(b, [...creates(Object.keys(OTHER), OTHER), ...creates(['s1'], { s1: { n: 2 } }, 'secret')]);

  // Three commits: the first eight documents (two in an earlier shape), the other seven, then updates that
  // bring d03 to version 3 and d07 to version 2.
  const early = { ...DOCS, d03: { ...DOCS.d03, s: 'cherri' }, d07: { s: 'grap' } };
  for (const doc of await batch(a, creates(FIRST, early))) stored.set(doc.id, doc);
  for (const doc of await batch(a, creates(SECOND, DOCS))) stored.set(doc.id, doc);
  const updated = await batch(a, [
    { op: 'patch', collection: 'items', id: 'd03', data: { s: 'cherr' } },
    { op: 'put', collection: 'items', id: 'd03', data: DOCS.d03 },
    { op: 'put', collection: 'items', id: 'd07', data: DOCS.d07 },
  ]);
  for (const doc of updated) stored.set(doc.id, doc);
  second = (stored.get('d09') as Doc).created_at;
  updates = (stored.get('d03') as Doc).updated_at;
  expect(stored.get('d03')?.version).toBe(3);
  expect(stored.get('d07')?.version).toBe(2);
});

afterAll(async () => {
  await h?.close();
});

// [filter, expected ids in id order]
const CASES: [string, unknown, string[]][] = [
  // eq: JSON equality on top-level and nested paths, array indexes, whole arrays and objects
  ['eq number', cond('n', 'eq', 2), ['d02', 'd10', 'd14']],
  ['eq number (one match)', cond('n', 'eq', 1), ['d01']],
  ['eq string "5" is not the number 5', cond('n', 'eq', '5'), ['d06']],
  ['eq number 5 is not the string "5"', cond('n', 'eq', 5), []],
  ['eq null matches JSON null, not a missing field', cond('n', 'eq', null), ['d07']],
  ['eq null on an object field', cond('addr', 'eq', null), ['d07']],
  ['eq nested path', cond('addr.city', 'eq', 'oslo'), ['d01', 'd03', 'd10']],
  ['eq nested number', cond('addr.geo.lat', 'eq', 59.9), ['d03']],
  ['eq deep path', cond('deep.a.b.c', 'eq', 'x'), ['d13']],
  ['eq first array element', cond('tags.0', 'eq', 'red'), ['d01', 'd03', 'd15']],
  ['eq third array element', cond('tags.2', 'eq', 'red'), ['d05']],
  ['eq element of a nested array', cond('tags.0.0', 'eq', 'red'), ['d09']],
  ['eq member of an array element', cond('items.1.sku', 'eq', 'a1'), ['d02']],
  ['eq whole object (member order does not matter)', cond('items.0', 'eq', { qty: 2, sku: 'a1' }), ['d01']],
  ['eq whole array', cond('tags', 'eq', ['red']), ['d03']],
  ['eq whole nested object', cond('addr', 'eq', { city: 'tromso' }), ['d04']],
  ['eq true is not the string "true"', cond('flag', 'eq', true), ['d01', 'd03', 'd08', 'd10']],
  ['eq string "true"', cond('flag', 'eq', 'true'), ['d11']],
  ['eq 1 is not "1"', cond('mixed', 'eq', 1), ['d01']],
  ['eq array element by index', cond('list.1', 'eq', 2), ['d14']],
  // ne matches where the field is missing
  ['ne', cond('n', 'ne', 2), ['d01', 'd03', 'd04', 'd05', 'd06', 'd07', 'd08', 'd09', 'd11', 'd12', 'd13', 'd15']],
  ['ne null', cond('n', 'ne', null), ALL.filter((id) => id !== 'd07')],
  [
    'ne nested (case matters)',
    cond('addr.city', 'ne', 'oslo'),
    ['d02', 'd04', 'd05', 'd06', 'd07', 'd08', 'd09', 'd11', 'd12', 'd13', 'd14', 'd15'],
  ],
  // ranges compare only values of the value's type
  ['gt number', cond('n', 'gt', 2), ['d03', 'd05', 'd11', 'd13', 'd15']],
  ['gte number', cond('n', 'gte', 2), ['d02', 'd03', 'd05', 'd10', 'd11', 'd13', 'd14', 'd15']],
  ['lt number', cond('n', 'lt', 2), ['d01', 'd04', 'd09']],
  ['lte number', cond('n', 'lte', 0), ['d04', 'd09']],
  ['gt 0 skips the string "5"', cond('n', 'gt', 0), ['d01', 'd02', 'd03', 'd05', 'd10', 'd11', 'd13', 'd14', 'd15']],
  ['gt string only sees strings', cond('n', 'gt', '4'), ['d06']],
  ['lt string only sees strings', cond('n', 'lt', '9'), ['d06']],
  ['gt string', cond('s', 'gt', 'b'), ['d02', 'd03', 'd04', 'd05', 'd06', 'd07', 'd13', 'd14', 'd15']],
  ['lt string', cond('s', 'lt', 'b'), ['d01', 'd08', 'd10', 'd11']],
  ['gt number only sees numbers', cond('s', 'gt', 5), ['d09']],
  ['gte nested number', cond('addr.geo.lat', 'gte', 59.9), ['d03']],
  ['string range', { and: [cond('s', 'gte', 'cherry'), cond('s', 'lte', 'date')] }, ['d03', 'd04', 'd14']],
  // in / nin
  ['in mixed types', cond('n', 'in', [1, 2, '5', null]), ['d01', 'd02', 'd06', 'd07', 'd10', 'd14']],
  ['in without matches', cond('n', 'in', [5, '2']), []],
  [
    'nin matches missing fields',
    cond('n', 'nin', [1, 2]),
    ['d03', 'd04', 'd05', 'd06', 'd07', 'd08', 'd09', 'd11', 'd12', 'd13', 'd15'],
  ],
  ['nin null', cond('n', 'nin', [null]), ALL.filter((id) => id !== 'd07')],
  ['in nested', cond('addr.city', 'in', ['oslo', 'bergen']), ['d01', 'd02', 'd03', 'd08', 'd10']],
  ['in objects and arrays', cond('mixed', 'in', [{ k: 1 }, [1, 2]]), ['d05', 'd06']],
  [
    'nin mixed types',
    cond('mixed', 'nin', [1, 'one', true, null]),
    ['d05', 'd06', 'd07', 'd08', 'd09', 'd10', 'd11', 'd12', 'd13', 'd14', 'd15'],
  ],
  // exists: a JSON null exists
  ['exists true (null and 0 exist)', cond('opt', 'exists', true), ['d01', 'd03', 'd10']],
  [
    'exists false',
    cond('opt', 'exists', false),
    ['d02', 'd04', 'd05', 'd06', 'd07', 'd08', 'd09', 'd11', 'd12', 'd13', 'd14', 'd15'],
  ],
  ['exists false (missing only)', cond('n', 'exists', false), ['d08', 'd12']],
  ['exists nested', cond('addr.city', 'exists', true), ['d01', 'd02', 'd03', 'd04', 'd08', 'd10', 'd15']],
  ['exists with a null object', cond('addr', 'exists', true), ['d01', 'd02', 'd03', 'd04', 'd07', 'd08', 'd10', 'd15']],
  [
    'exists array element',
    cond('tags.0', 'exists', true),
    ['d01', 'd02', 'd03', 'd05', 'd07', 'd08', 'd09', 'd13', 'd15'],
  ],
  ['exists deep', cond('deep.a.b', 'exists', true), ['d13']],
  // contains: an array element equal to the value, or a substring of a string
  ['contains array element or substring', cond('tags', 'contains', 'red'), ['d01', 'd03', 'd05', 'd06', 'd15']],
  ['contains (another element)', cond('tags', 'contains', 'fruit'), ['d01', 'd02', 'd05', 'd06', 'd08', 'd13']],
  ['contains an array element that is an array', cond('tags', 'contains', ['red']), ['d09']],
  ['contains an object element (equal, not partial)', cond('items', 'contains', { sku: 'a1', qty: 2 }), ['d01']],
  ['contains does not match part of an element', cond('items', 'contains', { sku: 'a1' }), []],
  ['contains a number', cond('list', 'contains', 2), ['d14']],
  ['contains substring', cond('s', 'contains', 'an'), ['d02', 'd10']],
  ['contains on numbers matches nothing', cond('n', 'contains', 2), []],
  ['contains in a mixed field', cond('mixed', 'contains', 1), ['d06']],
  ['contains a letter: only the string', cond('tags', 'contains', 'e'), ['d06']],
  // prefix: strings only; no wildcards
  ['prefix', cond('s', 'prefix', 'ap'), ['d01', 'd08']],
  ['prefix is case-sensitive', cond('s', 'prefix', 'B'), ['d10']],
  ['prefix nested', cond('addr.zip', 'prefix', '50'), ['d02', 'd08']],
  ['prefix on a string among numbers', cond('n', 'prefix', '5'), ['d06']],
  ['prefix skips numbers', cond('s', 'prefix', '1'), ['d11']],
  ['prefix skips arrays', cond('tags', 'prefix', 're'), ['d06']],
  ['prefix % is not a wildcard', cond('s', 'prefix', '%'), []],
  ['prefix _ is not a wildcard', cond('s', 'prefix', '_'), []],
  // and / or / not
  ['and', { and: [cond('addr.city', 'eq', 'oslo'), cond('flag', 'eq', true)] }, ['d01', 'd03', 'd10']],
  ['or', { or: [cond('n', 'eq', 1), cond('s', 'eq', 'kiwi')] }, ['d01', 'd15']],
  [
    'not eq includes missing',
    { not: cond('n', 'eq', 2) },
    ['d01', 'd03', 'd04', 'd05', 'd06', 'd07', 'd08', 'd09', 'd11', 'd12', 'd13', 'd15'],
  ],
  ['not exists', { not: cond('n', 'exists', true) }, ['d08', 'd12']],
  [
    'not contains',
    { not: cond('tags', 'contains', 'red') },
    ['d02', 'd04', 'd07', 'd08', 'd09', 'd10', 'd11', 'd12', 'd13', 'd14'],
  ],
  [
    'not gt includes other types and missing',
    { not: cond('n', 'gt', 2) },
    ['d01', 'd02', 'd04', 'd06', 'd07', 'd08', 'd09', 'd10', 'd12', 'd14'],
  ],
  [
    'nested and/or/not',
    {
      and: [
        { or: [cond('tags', 'contains', 'fruit'), cond('addr.city', 'eq', 'oslo')] },
        { not: { or: [cond('flag', 'eq', false), cond('n', 'exists', false)] } },
      ],
    },
    ['d01', 'd03', 'd05', 'd06', 'd10', 'd13'],
  ],
  ['not not', { not: { not: cond('n', 'eq', 2) } }, ['d02', 'd10', 'd14']],
  [
    'or of ands',
    { or: [{ and: [cond('n', 'gte', 2), cond('n', 'lte', 3.5)] }, cond('s', 'eq', 7)] },
    ['d02', 'd03', 'd09', 'd10', 'd14'],
  ],
  ['not nin', { not: cond('n', 'nin', [1, 2]) }, ['d01', 'd02', 'd10', 'd14']],
  // metadata
  ['$id prefix', cond('$id', 'prefix', 'd0'), ['d01', 'd02', 'd03', 'd04', 'd05', 'd06', 'd07', 'd08', 'd09']],
  ['$id in', cond('$id', 'in', ['d01', 'd15', 'x99']), ['d01', 'd15']],
  ['$id eq', cond('$id', 'eq', 'd07'), ['d07']],
  ['$id gt', cond('$id', 'gt', 'd13'), ['d14', 'd15']],
  [
    '$id nin',
    cond('$id', 'nin', ['d01', 'd02', 'd03', 'd04', 'd05', 'd06', 'd07', 'd08', 'd09', 'd10']),
    ['d11', 'd12', 'd13', 'd14', 'd15'],
  ],
  ['$id exists', cond('$id', 'exists', true), ALL],
  ['$id does not exist', cond('$id', 'exists', false), []],
  ['$version gt', cond('$version', 'gt', 1), ['d03', 'd07']],
  ['$version eq', cond('$version', 'eq', 3), ['d03']],
  ['$version in', cond('$version', 'in', [2, 3]), ['d03', 'd07']],
  ['$id and a field', { and: [cond('$id', 'prefix', 'd1'), cond('n', 'eq', 2)] }, ['d10', 'd14']],
  ['$version or $id', { or: [cond('$version', 'gte', 2), cond('$id', 'lte', 'd02')] }, ['d01', 'd02', 'd03', 'd07']],
  // odd characters in paths and values
  ['eq on an odd path', cond('we"ird,{key}\\.a b', 'eq', 'x,"y"}\\'), ['d12']],
  ['in with odd values', cond('we"ird,{key}\\.a b', 'in', ['x', 'x,"y"}\\', '{}', '"']), ['d12']],
  ['contains an odd substring', cond('we"ird,{key}\\.a b', 'contains', ',"y"}\\'), ['d12']],
  ['prefix with odd characters', cond('we"ird,{key}\\.a b', 'prefix', 'x,"'), ['d12']],
  ['exists on an odd path', cond('we"ird,{key}\\', 'exists', true), ['d12']],
  // a path that names a column is a path into the document
  ['tenant_id is a document path', cond('tenant_id', 'exists', true), []],
  ['id is a document path', cond('id', 'eq', 'd01'), []],
];

describe('filters', () => {
  it.each(CASES)('%s', async (_name, filter, expected) => {
    expect(await ids({ filter })).toEqual(expected);
  });

  it('the fixture is what the cases assume', async () => {
    const r = await query({ limit: 500, count: true });
    expect(r.json().count).toBe(15);
    for (const doc of r.json().data as Doc[]) {
      expect(doc.data).toEqual(DOCS[doc.id]);
      expect(doc.version).toBe(doc.id === 'd03' ? 3 : doc.id === 'd07' ? 2 : 1);
    }
  });

  it('timestamps: $created_at and $updated_at ranges, with any offset', async () => {
    expect(await ids({ filter: cond('$created_at', 'gte', second) })).toEqual(SECOND);
    expect(await ids({ filter: cond('$created_at', 'lt', second) })).toEqual(FIRST);
    expect(await ids({ filter: cond('$updated_at', 'gte', updates) })).toEqual(['d03', 'd07']);
    expect(await ids({ filter: cond('$updated_at', 'lt', updates) })).toEqual(
      ALL.filter((id) => id !== 'd03' && id !== 'd07'),
    );
    expect(
      await ids({ filter: { and: [cond('$created_at', 'lt', second), cond('$updated_at', 'gte', updates)] } }),
    ).toEqual(['d03', 'd07']);
    // The same instant written with a +02:00 offset.
    const t = new Date(Date.parse(second) + 2 * 3600_000).toISOString().replace('Z', '+02:00');
    expect(await ids({ filter: cond('$created_at', 'gte', t) })).toEqual(SECOND);
    expect(await ids({ filter: cond('$created_at', 'gt', '2000-01-01') })).toEqual(ALL);
    expect(await ids({ filter: cond('$created_at', 'lt', '2000-01-01T00:00:00Z') })).toEqual([]);
  });

  it('nesting up to the depth limit and up to the condition limit is accepted', async () => {
    const nest = (levels: number, leaf: unknown): unknown => (levels === 0 ? leaf : { not: nest(levels - 1, leaf) });
    // The condition sits at depth LIMITS.depth under LIMITS.depth - 1 nots: an odd number, so the complement.
    expect(await ids({ filter: nest(LIMITS.depth - 1, cond('n', 'eq', 2)) })).toEqual([
      'd01',
      'd03',
      'd04',
      'd05',
      'd06',
      'd07',
      'd08',
      'd09',
      'd11',
      'd12',
      'd13',
      'd15',
    ]);
    expect(await ids({ filter: nest(LIMITS.depth - 2, cond('n', 'eq', 2)) })).toEqual(['d02', 'd10', 'd14']);
    const many = Array.from({ length: LIMITS.conditions }, (_, i) => cond('n', 'ne', 1000 + i));
    expect(await ids({ filter: { and: many } })).toEqual(ALL);
    const split = { or: [{ and: many.slice(0, 50) }, { and: [...many.slice(50, 99), cond('n', 'eq', 2)] }] };
    expect(await ids({ filter: split })).toEqual(ALL);
    // 500 values, each short but more than 8 KiB together: the size limit is per value.
    const list = Array.from({ length: LIMITS.listValues }, (_, i) => `a value of some length, number ${i}`);
    expect(JSON.stringify(list).length).toBeGreaterThan(LIMITS.valueBytes);
    expect(await ids({ filter: cond('s', 'in', [...list.slice(1), 'kiwi']) })).toEqual(['d15']);
    // A value of exactly LIMITS.valueBytes bytes as JSON (two of them are the quotes).
    expect(await ids({ filter: cond('s', 'eq', 'x'.repeat(LIMITS.valueBytes - 2)) })).toEqual([]);
    const sixteen = Array.from({ length: LIMITS.pathSegments }, () => 'a').join('.');
    expect(await ids({ filter: cond(sixteen, 'exists', true) })).toEqual([]);
  });
});

describe('sort, cursors, count and projection', () => {
  const SORTS: [string, unknown, string[]][] = [
    [
      'number asc: null and missing first, then strings, then numbers',
      [{ path: 'n' }],
      ['d07', 'd08', 'd12', 'd06', 'd04', 'd09', 'd01', 'd02', 'd10', 'd14', 'd03', 'd15', 'd05', 'd13', 'd11'],
    ],
    [
      'number desc: ties still by id ascending',
      [{ path: 'n', order: 'desc' }],
      ['d11', 'd13', 'd05', 'd15', 'd03', 'd02', 'd10', 'd14', 'd01', 'd09', 'd04', 'd06', 'd07', 'd08', 'd12'],
    ],
    [
      'string asc (byte order), a number last',
      [{ path: 's', order: 'asc' }],
      ['d12', 'd11', 'd10', 'd01', 'd08', 'd02', 'd03', 'd14', 'd04', 'd05', 'd06', 'd07', 'd15', 'd13', 'd09'],
    ],
    [
      'nested path asc',
      [{ path: 'addr.city' }],
      ['d05', 'd06', 'd07', 'd09', 'd11', 'd12', 'd13', 'd14', 'd15', 'd02', 'd08', 'd01', 'd03', 'd10', 'd04'],
    ],
    [
      'two keys: boolean desc, then number asc',
      [{ path: 'flag', order: 'desc' }, { path: 'n' }],
      ['d08', 'd01', 'd10', 'd03', 'd07', 'd02', 'd14', 'd11', 'd12', 'd06', 'd04', 'd09', 'd15', 'd05', 'd13'],
    ],
    [
      'mixed types: null < string < number < boolean < array < object',
      [{ path: 'mixed' }],
      ['d04', 'd07', 'd08', 'd09', 'd10', 'd12', 'd13', 'd15', 'd11', 'd02', 'd01', 'd14', 'd03', 'd06', 'd05'],
    ],
    [
      '$version desc',
      [{ path: '$version', order: 'desc' }],
      ['d03', 'd07', 'd01', 'd02', 'd04', 'd05', 'd06', 'd08', 'd09', 'd10', 'd11', 'd12', 'd13', 'd14', 'd15'],
    ],
    [
      '$created_at desc (one timestamp per commit, ties by id)',
      [{ path: '$created_at', order: 'desc' }],
      [...SECOND, ...FIRST],
    ],
    ['$updated_at asc', [{ path: '$updated_at' }], ['d01', 'd02', 'd04', 'd05', 'd06', 'd08', ...SECOND, 'd03', 'd07']],
    ['$id desc', [{ path: '$id', order: 'desc' }], [...ALL].reverse()],
    [
      'three keys with ties on the first two',
      [{ path: 'tags.0' }, { path: 'flag', order: 'desc' }, { path: '$version', order: 'desc' }],
      // tags.0 is null where tags is missing (d10, d11, d12, d14), empty (d04) or a string (d06); then
      // "fruit" d13, "green" d07, "orange" d08, "purple" d05, "red" d01 d03 d15, "yellow" d02; ["red"] d09.
      // Within null, flag desc: true d10, false d14, "true" d11, then null d04 d06 d12 (all version 1, so
      // by id). Within "red": true d01 d03 ($version desc puts d03 first), then missing d15.
      ['d10', 'd14', 'd11', 'd04', 'd06', 'd12', 'd13', 'd07', 'd08', 'd05', 'd03', 'd01', 'd15', 'd02', 'd09'],
    ],
  ];

  it.each(SORTS)('%s', async (_name, sort, expected) => {
    expect(await ids({ sort })).toEqual(expected);
  });

  it('a filter and a sort together', async () => {
    expect(await ids({ filter: cond('tags', 'contains', 'fruit'), sort: [{ path: 'n', order: 'desc' }] })).toEqual([
      'd13',
      'd05',
      'd02',
      'd01',
      'd06',
      'd08',
    ]);
  });

  it('small pages walk every document exactly once, in the order of one big page', async () => {
    const bodies = [
      ...SORTS.map(([, sort, expected]) => ({ body: { sort }, expected })),
      {
        body: { filter: cond('tags', 'contains', 'fruit'), sort: [{ path: 'n', order: 'desc' }] },
        expected: ['d13', 'd05', 'd02', 'd01', 'd06', 'd08'],
      },
      { body: { filter: cond('n', 'ne', 2) }, expected: ALL.filter((id) => !['d02', 'd10', 'd14'].includes(id)) },
    ];
    for (const { body, expected } of bodies) {
      expect(await ids(body)).toEqual(expected);
      for (const limit of [1, 2, 4]) {
        expect(await walk(body, limit), `${JSON.stringify(body)} limit ${limit}`).toEqual(expected);
      }
    }
  });

  it('a page that ends exactly at the last document has no cursor', async () => {
    const r = await query({ limit: 5, sort: [{ path: 'n' }] });
    const r2 = await query({ limit: 5, sort: [{ path: 'n' }], cursor: r.json().next_cursor });
    const r3 = await query({ limit: 5, sort: [{ path: 'n' }], cursor: r2.json().next_cursor });
    expect(r3.json().data).toHaveLength(5);
    expect(r3.json().next_cursor).toBeNull();
  });

  it('a cursor belongs to its filter, sort and collection: anything else is 400 bad_request', async () => {
    const body = { filter: cond('n', 'exists', true), sort: [{ path: 'n' }], limit: 3 };
    const cursor = (await query(body)).json().next_cursor as string;
    expect(cursor).toEqual(expect.any(String));
    const misuse: [Record<string, unknown>, string][] = [
      [{ ...body, sort: [{ path: 'n', order: 'desc' }] }, 'items'],
      [{ ...body, sort: [{ path: 's' }] }, 'items'],
      [{ ...body, sort: undefined }, 'items'],
      [{ ...body, filter: cond('n', 'exists', false) }, 'items'],
      [{ ...body, filter: undefined }, 'items'],
      [body, 'other'],
    ];
    for (const [other, collection] of misuse) {
      const r = await query({ ...other, cursor }, collection);
      expect(r.statusCode, JSON.stringify(other)).toBe(400);
      expect(r.json().code).toBe('bad_request');
    }
    // The same query with another limit, projection or count continues where the page ended.
    const next = await query({ ...body, cursor, limit: 2, fields: ['n'], count: true });
    expect(next.statusCode).toBe(200);
    // n asc without d08 and d12: d07 (null), d06 ("5"), d04 (-1) | d09 (0), d01 (1), ...
    expect(next.json().data.map((d: Doc) => d.id)).toEqual(['d09', 'd01']);
    // The plain listing's cursor is not a query's.
    const list = await h.call(a.adminKey, 'GET', `/v1/tenants/${a.id}/collections/items/documents?limit=2`);
    const r = await query({ sort: [{ path: 'n' }], cursor: list.json().next_cursor });
    expect(r.statusCode).toBe(400);
  });

  it('count is the total, whatever the page, cursor and sort', async () => {
    const body = { filter: cond('n', 'gt', 2), count: true, limit: 2 };
    const first = await query(body);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json().count).toBe(5);
    expect(first.json().data.map((d: Doc) => d.id)).toEqual(['d03', 'd05']);
    const next = await query({ ...body, cursor: first.json().next_cursor });
    expect(next.json().count).toBe(5);
    expect(next.json().data.map((d: Doc) => d.id)).toEqual(['d11', 'd13']);
    const sorted = await query({ ...body, sort: [{ path: 'n', order: 'desc' }, { path: 'addr.city' }] });
    expect(sorted.statusCode, sorted.body).toBe(200);
    expect(sorted.json()).toMatchObject({ count: 5, data: [{ id: 'd11' }, { id: 'd13' }] });
    const page2 = await query({
      ...body,
      sort: [{ path: 'n', order: 'desc' }, { path: 'addr.city' }],
      cursor: sorted.json().next_cursor,
    });
    expect(page2.json()).toMatchObject({ count: 5, data: [{ id: 'd05' }, { id: 'd15' }] });
    expect((await query({ count: true, limit: 1, sort: [{ path: '$updated_at' }] })).json().count).toBe(15);
    expect((await query({ count: true, filter: cond('n', 'eq', 'none') })).json()).toEqual({
      data: [],
      next_cursor: null,
      count: 0,
    });
    expect((await query({ limit: 1 })).json().count).toBeUndefined();
  });

  it('projection returns only the requested paths, nested too, and always the metadata', async () => {
    const r = await query({ fields: ['addr.city', 's', 'opt'], limit: 500 });
    expect(r.statusCode, r.body).toBe(200);
    const byId = Object.fromEntries((r.json().data as Doc[]).map((d) => [d.id, d.data]));
    expect(byId).toEqual({
      d01: { addr: { city: 'oslo' }, s: 'apple', opt: null },
      d02: { addr: { city: 'bergen' }, s: 'banana' },
      d03: { addr: { city: 'oslo' }, s: 'cherry', opt: 'set' },
      d04: { addr: { city: 'tromso' }, s: 'date' },
      d05: { s: 'elderberry' },
      d06: { s: 'fig' },
      d07: { s: 'grape' },
      d08: { addr: { city: 'bergen' }, s: 'apricot' },
      d09: { s: 7 },
      d10: { addr: { city: 'oslo' }, s: 'Banana', opt: 0 },
      d11: { s: '10' },
      d12: {},
      d13: { s: 'lime' },
      d14: { s: 'cherry' },
      d15: { addr: { city: 'Oslo' }, s: 'kiwi' },
    });
    for (const doc of r.json().data as Doc[]) {
      const own = stored.get(doc.id) as Doc;
      expect(doc).toEqual({ ...own, data: doc.data });
    }
    const deep = await query({ fields: ['deep.a.b.c', 'addr.geo'], filter: cond('$id', 'in', ['d02', 'd03', 'd13']) });
    expect(deep.json().data.map((d: Doc) => d.data)).toEqual([
      {},
      { addr: { geo: { lat: 59.9 } } },
      { deep: { a: { b: { c: 'x' } } } },
    ]);
    // A path and a path inside it: the whole value, whichever comes first.
    for (const fields of [
      ['addr', 'addr.city'],
      ['addr.city', 'addr'],
    ]) {
      const one = await query({ fields, filter: cond('$id', 'eq', 'd01') });
      expect(one.json().data[0].data).toEqual({ addr: { city: 'oslo', zip: '0150' } });
    }
    expect((await query({ fields: [], filter: cond('$id', 'eq', 'd01') })).json().data[0].data).toEqual({});
    // Array elements are reached by index only; properties of the array are not data.
    const arrays = await query({ fields: ['tags.length', 'items.constructor', 's.length'], limit: 500 });
    expect(arrays.json().data.map((d: Doc) => d.data)).toEqual(ALL.map(() => ({})));
  });

  it('projection never reads or writes inherited properties', () => {
    const data = JSON.parse('{"__proto__": {"polluted": "yes"}, "a": {"b": 1}}');
    const out = project(data, ['__proto__.polluted', 'a.b', 'constructor.prototype', 'a.__proto__', 'a.toString']);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(JSON.parse(JSON.stringify(out))).toEqual(JSON.parse('{"__proto__": {"polluted": "yes"}, "a": {"b": 1}}'));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(project({ a: 1 }, ['__proto__.polluted', 'toString', 'hasOwnProperty'])).toEqual({});
  });
});

describe('hostile input', () => {
  const DROP = "a'); DROP TABLE strata_data.documents; --";

  it('SQL in paths, values, sort and fields is data, not SQL', async () => {
    expect(await ids({ filter: cond(DROP, 'eq', 1) })).toEqual([]);
    expect(await ids({ filter: cond(DROP, 'ne', 1) })).toEqual(ALL);
    expect(await ids({ filter: cond(DROP, 'exists', false) })).toEqual(ALL);
    for (const op of ['eq', 'contains', 'prefix', 'gt', 'lt']) {
      expect(await ids({ filter: cond('s', op, "x' OR '1'='1") }), op).toEqual(
        op === 'lt' ? ['d01', 'd02', 'd03', 'd04', 'd05', 'd06', 'd07', 'd08', 'd10', 'd11', 'd13', 'd14', 'd15'] : [],
      );
    }
    expect(await ids({ filter: cond('s', 'in', [DROP, "' OR 1=1 --", { $ne: null }]) })).toEqual([]);
    expect(await ids({ filter: cond('$id', 'eq', "d01' OR '1'='1") })).toEqual([]);
    expect(await ids({ filter: cond('$id', 'in', [DROP, 'd02']) })).toEqual(['d02']);
    expect(await ids({ filter: cond('$id', 'prefix', '%') })).toEqual([]);
    expect(await ids({ sort: [{ path: DROP, order: 'desc' }] })).toEqual(ALL);
    const projected = await query({ fields: [DROP, `${DROP}.x`], limit: 500 });
    expect(projected.json().data.map((d: Doc) => d.data)).toEqual(ALL.map(() => ({})));
    // A path segment may hold any character but the dot.
    expect(await ids({ filter: cond("'; SELECT pg_sleep(10); --", 'exists', true) })).toEqual([]);
  });

  it('malformed filters are 400 invalid_filter with the path of the bad part', async () => {
    const long = 'x'.repeat(LIMITS.valueBytes + 1);
    const bad: [unknown, string][] = [
      // operators
      [cond('n', 'regex', '.*'), 'filter.op'],
      [cond('n', 'eq; DROP TABLE x', 1), 'filter.op'],
      [cond('n', 'EQ', 1), 'filter.op'],
      [{ path: 'n', value: 1 }, 'filter.op'],
      [{}, 'filter.op'],
      [{ and: [cond('n', 'eq', 1), cond('n', 'like', '%')] }, 'filter.and.1.op'],
      [{ or: [cond('n', 'eq', 1), { not: cond('n', 'where', 1) }] }, 'filter.or.1.not.op'],
      // members and structure
      [{ ...cond('n', 'eq', 1), sql: 'DROP' }, 'filter.sql'],
      [{ path: 'n', op: 'eq' }, 'filter.value'],
      [{ and: [] }, 'filter.and'],
      [{ and: 'x' }, 'filter.and'],
      [{ or: [1] }, 'filter.or.0'],
      [{ or: [null] }, 'filter.or.0'],
      [{ not: 'x' }, 'filter.not'],
      [{ not: [cond('n', 'eq', 1)] }, 'filter.not'],
      [{ and: [cond('n', 'eq', 1)], or: [cond('n', 'eq', 1)] }, 'filter.and'],
      // value types
      [cond('n', 'gt', true), 'filter.value'],
      [cond('n', 'lt', null), 'filter.value'],
      [cond('n', 'gte', { a: 1 }), 'filter.value'],
      [cond('n', 'lte', [1]), 'filter.value'],
      [cond('n', 'in', 'x'), 'filter.value'],
      [cond('n', 'in', []), 'filter.value'],
      [cond('n', 'nin', { a: 1 }), 'filter.value'],
      [cond('n', 'exists', 'yes'), 'filter.value'],
      [cond('n', 'exists', 1), 'filter.value'],
      [cond('s', 'prefix', 5), 'filter.value'],
      [cond('$version', 'eq', '1'), 'filter.value'],
      [cond('$version', 'gt', 1.5), 'filter.value'],
      [cond('$version', 'gt', 1e300), 'filter.value'],
      [cond('$version', 'in', [1, 'two']), 'filter.value.1'],
      [cond('$created_at', 'gt', 'yesterday'), 'filter.value'],
      [cond('$created_at', 'gt', '1'), 'filter.value'],
      [cond('$created_at', 'gt', '2024-02-30'), 'filter.value'],
      [cond('$created_at', 'gt', '0000-01-01'), 'filter.value'],
      [cond('$created_at', 'gt', '2024-01-01T25:00:00Z'), 'filter.value'],
      [cond('$created_at', 'gt', "2024-01-01'; DROP TABLE x; --"), 'filter.value'],
      [cond('$updated_at', 'lt', 1700000000000), 'filter.value'],
      [cond('$id', 'eq', 5), 'filter.value'],
      [cond('$id', 'in', ['d01', 5]), 'filter.value.1'],
      [cond('$id', 'contains', 'd'), 'filter.value'],
      [cond('$version', 'prefix', '1'), 'filter.value'],
      [cond('$id', 'exists', 'no'), 'filter.value'],
      // sizes
      [cond('s', 'eq', long), 'filter.value'],
      [cond('s', 'contains', long), 'filter.value'],
      [cond('s', 'prefix', long), 'filter.value'],
      [cond('$id', 'eq', long), 'filter.value'],
      [cond('$id', 'prefix', long), 'filter.value'],
      [cond('s', 'in', ['a', 'b', 'c', long]), 'filter.value.3'],
      [
        cond(
          's',
          'in',
          Array.from({ length: LIMITS.listValues + 1 }, (_, i) => i),
        ),
        'filter.value',
      ],
      [
        cond(
          '$id',
          'in',
          Array.from({ length: LIMITS.listValues + 1 }, (_, i) => `d${i}`),
        ),
        'filter.value',
      ],
      // paths
      [cond('a..b', 'eq', 1), 'filter.path'],
      [cond('.a', 'eq', 1), 'filter.path'],
      [cond('a.', 'eq', 1), 'filter.path'],
      [cond('', 'eq', 1), 'filter.path'],
      [cond(5, 'eq', 1), 'filter.path'],
      [cond(['$id'], 'eq', 'd01'), 'filter.path'],
      [cond(null, 'eq', 1), 'filter.path'],
      [cond('x'.repeat(LIMITS.segmentLength + 1), 'eq', 1), 'filter.path'],
      [cond(Array.from({ length: LIMITS.pathSegments + 1 }, () => 'a').join('.'), 'eq', 1), 'filter.path'],
      [{ and: [cond('n', 'eq', 1), { or: [cond('n', 'eq', 1), cond('a..b', 'eq', 1)] }] }, 'filter.and.1.or.1.path'],
    ];
    for (const [filter, path] of bad) await invalid({ filter }, path);

    const nest = (levels: number, leaf: unknown): unknown => (levels === 0 ? leaf : { not: nest(levels - 1, leaf) });
    await invalid({ filter: nest(LIMITS.depth, cond('n', 'eq', 1)) }, `filter${'.not'.repeat(LIMITS.depth)}`);
    const andNest = (levels: number): unknown => (levels === 0 ? cond('n', 'eq', 1) : { and: [andNest(levels - 1)] });
    await invalid({ filter: andNest(LIMITS.depth) }, `filter${'.and.0'.repeat(LIMITS.depth)}`);
    // Far deeper than the limit is refused just the same (and quickly).
    await invalid({ filter: nest(1000, cond('n', 'eq', 1)) }, `filter${'.not'.repeat(LIMITS.depth)}`);
    const many = Array.from({ length: LIMITS.conditions + 1 }, (_, i) => cond('n', 'ne', i));
    await invalid({ filter: { and: many } }, `filter.and.${LIMITS.conditions}`);
    await invalid(
      { filter: { or: [{ and: many.slice(0, 60) }, { and: many.slice(60) }] } },
      `filter.or.1.and.${LIMITS.conditions - 60}`,
    );
    const wide = Array.from({ length: 20_000 }, () => cond('n', 'eq', 1));
    await invalid({ filter: { or: wide } }, `filter.or.${LIMITS.conditions}`);

    // sort and fields
    await invalid({ sort: [{ path: 'a..b' }] }, 'sort.0.path');
    await invalid({ sort: [{ path: 'n' }, { path: '' }] }, 'sort.1.path');
    await invalid({ sort: Array.from({ length: LIMITS.sortKeys + 1 }, () => ({ path: 'n' })) }, 'sort');
    await invalid({ fields: ['s', 'a..b'] }, 'fields.1');
    await invalid({ fields: Array.from({ length: LIMITS.fields + 1 }, (_, i) => `f${i}`) }, 'fields');
    // Shapes the request schema already refuses.
    for (const body of [{ filter: [] }, { filter: 'x' }, { sort: [{ path: 'n', order: 'sideways' }] }, { limit: 0 }]) {
      const r = await query(body);
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
      expect(r.json().code).toBe('validation_failed');
    }
  });

  it('values PostgreSQL cannot hold are refused before they reach it', async () => {
    // Raw bodies: these are JSON that JSON.stringify cannot produce.
    const raw = (payload: string) =>
      h.strata.app.inject({
        method: 'POST',
        url: `/v1/tenants/${a.id}/collections/items/query`,
        headers: { authorization: `Bearer ${a.adminKey}`, 'content-type': 'application/json' },
        payload,
      });
    const nested = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
    const bad: [string, string][] = [
      // 1e400 parses as Infinity, which would otherwise become null
      ['{"filter":{"path":"n","op":"eq","value":1e400}}', 'filter.value'],
      ['{"filter":{"path":"n","op":"gt","value":-1e400}}', 'filter.value'],
      ['{"filter":{"path":"n","op":"in","value":[1,1e400]}}', 'filter.value.1'],
      ['{"filter":{"path":"n","op":"eq","value":{"a":[1e400]}}}', 'filter.value'],
      // U+0000 and unpaired surrogates, in values, member names and paths
      ['{"filter":{"path":"s","op":"eq","value":"a\\u0000b"}}', 'filter.value'],
      ['{"filter":{"path":"s","op":"eq","value":{"a\\u0000":1}}}', 'filter.value'],
      ['{"filter":{"path":"s","op":"prefix","value":"a\\u0000b"}}', 'filter.value'],
      ['{"filter":{"path":"s","op":"contains","value":"a\\u0000b"}}', 'filter.value'],
      ['{"filter":{"path":"$id","op":"eq","value":"a\\u0000b"}}', 'filter.value'],
      ['{"filter":{"path":"$id","op":"in","value":["d01","a\\u0000b"]}}', 'filter.value.1'],
      ['{"filter":{"path":"a\\u0000b","op":"exists","value":true}}', 'filter.path'],
      ['{"filter":{"path":"s","op":"eq","value":"a\\ud800b"}}', 'filter.value'],
      ['{"filter":{"path":"s","op":"in","value":["\\udc00"]}}', 'filter.value.0'],
      ['{"filter":{"path":"a\\ud800b","op":"exists","value":true}}', 'filter.path'],
      ['{"sort":[{"path":"a\\u0000b"}]}', 'sort.0.path'],
      ['{"fields":["a\\u0000b"]}', 'fields.0'],
      // nesting far beyond any document
      [`{"filter":{"path":"n","op":"eq","value":${nested(LIMITS.valueDepth + 1)}}}`, 'filter.value'],
      [`{"filter":{"path":"n","op":"contains","value":${nested(20_000)}}}`, 'filter.value'],
    ];
    for (const [payload, path] of bad) {
      const r = await raw(payload);
      expect(r.statusCode, `${payload.slice(0, 80)} -> ${r.body}`).toBe(400);
      expect(r.json()).toMatchObject({ code: 'invalid_filter', errors: [{ path }] });
    }
    for (const payload of [
      `{"filter":{"path":"n","op":"eq","value":${nested(LIMITS.valueDepth)}}}`,
      '{"filter":{"path":"s","op":"eq","value":"\\ud83d\\ude00 paired surrogates are fine"}}',
      '{"filter":{"path":"n","op":"eq","value":1e300}}',
    ]) {
      const r = await raw(payload);
      expect(r.statusCode, `${payload.slice(0, 80)} -> ${r.body}`).toBe(200);
      expect(r.json().data).toEqual([]);
    }
  });

  it('filters naming the tenant or another tenant never reach beyond the caller', async () => {
    expect(await ids({ filter: cond('tenant_id', 'eq', b.id) })).toEqual([]);
    expect(await ids({ filter: cond('tenant_id', 'ne', b.id) })).toEqual(ALL);
    expect(await ids({ filter: cond('$tenant_id', 'eq', b.id) })).toEqual([]);
    expect(await ids({ filter: cond('tenant', 'eq', 'b') })).toEqual([]);
    expect(await ids({ filter: cond('$id', 'in', Object.keys(OTHER)) })).toEqual(['d01']);
    expect(await ids({ filter: { or: [cond('$id', 'prefix', 'b'), cond('n', 'exists', false)] } })).toEqual([
      'd08',
      'd12',
    ]);
    expect(await ids({ filter: { not: cond('$id', 'prefix', 'zzz') } })).toEqual(ALL);
    // The other tenant sees only its own, through the same filters.
    const theirs = await query({ filter: cond('n', 'eq', 2), limit: 500 }, 'items', b);
    expect(theirs.json().data.map((d: Doc) => d.id)).toEqual(['b01', 'b02']);
    // Another tenant's collection is not found, and another tenant's URL is not reachable.
    const secret = await query({}, 'secret');
    expect(secret.statusCode).toBe(404);
    const cross = await h.call(a.adminKey, 'POST', `/v1/tenants/${b.id}/collections/items/query`, {});
    expect(cross.statusCode).toBeGreaterThanOrEqual(400);
    expect(cross.statusCode).toBeLessThan(500);
    expect(cross.body).not.toContain('"tenant":"b"');
  });

  it('forged cursors are refused or harmless', async () => {
    const sort = [{ path: 'n' }];
    const forge = (p: unknown, f: string) => Buffer.from(JSON.stringify({ p, f })).toString('base64url');
    const refused = [
      'not-a-cursor',
      '',
      randomBytes(48).toString('base64url'),
      Buffer.from('[]').toString('base64url'),
      Buffer.from('{"p":null}').toString('base64url'),
      forge([DROP, 'd01'], 'whatever'),
      forge([DROP, 'd01'], queryFingerprint('items', { path: 'n', op: 'eq', value: 1 }, sort)),
      // The right fingerprint, but not a position of this sort.
      forge(['d01'], queryFingerprint('items', undefined, sort)),
      forge([1, 'd01', 'd02'], queryFingerprint('items', undefined, sort)),
      forge([1, 5], queryFingerprint('items', undefined, sort)),
      forge([1, null], queryFingerprint('items', undefined, sort)),
      forge({ 0: 1, 1: 'd01' }, queryFingerprint('items', undefined, sort)),
      // Values PostgreSQL cannot take, in the right places.
      forge(['a\u0000', 'd01'], queryFingerprint('items', undefined, sort)),
      forge([1, 'd01\u0000'], queryFingerprint('items', undefined, sort)),
      forge(['\ud800', 'd01'], queryFingerprint('items', undefined, sort)),
      Buffer.from(`{"p":[1e400,"d01"],"f":"${queryFingerprint('items', undefined, sort)}"}`).toString('base64url'),
    ];
    for (const cursor of refused) {
      const r = await query({ sort, cursor });
      expect(r.statusCode, cursor).toBe(400);
      expect(r.json().code).toBe('bad_request');
    }
    const typed: [unknown, unknown][] = [
      [[{ path: '$version' }], ['1; DROP TABLE strata_data.documents', 'd01']],
      [[{ path: '$version' }], [1e300, 'd01']],
      [[{ path: '$version' }], [1.5, 'd01']],
      [[{ path: '$created_at' }], ['yesterday', 'd01']],
      [[{ path: '$created_at' }], ["2024-01-01'); DROP TABLE x; --", 'd01']],
      [[{ path: '$id' }], [5, 'd01']],
      [undefined, [{ a: 1 }]],
      [undefined, [[DROP]]],
    ];
    for (const [s, p] of typed) {
      const r = await query({ ...(s ? { sort: s } : {}), cursor: forge(p, queryFingerprint('items', undefined, s)) });
      expect(r.statusCode, JSON.stringify(p)).toBe(400);
      expect(r.json().code).toBe('bad_request');
    }
    // A well-typed forged position only chooses where the page starts. The string sorts after "5" and
    // before every number.
    const harmless = await query({ sort, cursor: forge([DROP, DROP], queryFingerprint('items', undefined, sort)) });
    expect(harmless.statusCode, harmless.body).toBe(200);
    expect(harmless.json().data.map((d: Doc) => d.id)).toEqual([
      'd04',
      'd09',
      'd01',
      'd02',
      'd10',
      'd14',
      'd03',
      'd15',
      'd05',
      'd13',
      'd11',
    ]);
    const byId = await query({ cursor: forge(["d05' OR '1'='1"], queryFingerprint('items', undefined, undefined)) });
    expect(byId.json().data.map((d: Doc) => d.id)).toEqual(['d06', 'd07', 'd08', 'd09', ...SECOND.slice(1)]);
    const stamp = await query({
      sort: [{ path: '$created_at' }],
      cursor: forge(['2000-01-01 00:00:00+00', 'zzz'], queryFingerprint('items', undefined, [{ path: '$created_at' }])),
    });
    expect(stamp.json().data.map((d: Doc) => d.id)).toEqual(ALL);
    const list = await h.call(a.adminKey, 'GET', `/v1/tenants/${a.id}/collections/items/documents?cursor=${DROP}`);
    expect(list.statusCode).toBe(400);
  });

  it('after all of it, both tenants have exactly their documents', async () => {
    const mine = await query({ limit: 500, count: true });
    expect(mine.json().count).toBe(15);
    for (const doc of mine.json().data as Doc[]) expect(doc).toEqual(stored.get(doc.id));
    const theirs = await query({ limit: 500, count: true }, 'items', b);
    expect(theirs.json().count).toBe(5);
    expect(Object.fromEntries((theirs.json().data as Doc[]).map((d) => [d.id, d.data]))).toEqual(OTHER);
    const tables = await h.db.query<{ t: string | null }>("SELECT to_regclass('strata_data.documents')::text AS t");
    expect(tables.rows[0]?.t).toBe('strata_data.documents');
    const rows = await h.db.query<{ tenant_id: string; n: number }>(
      'SELECT tenant_id::text, count(*)::int AS n FROM strata_data.documents WHERE tenant_id IN ($1, $2) GROUP BY 1',
      [a.id, b.id],
    );
    expect(Object.fromEntries(rows.rows.map((r) => [r.tenant_id, r.n]))).toEqual({ [a.id]: 15, [b.id]: 6 });
  });
});

describe('indexes', () => {
  let c: TestTenant;
  const TOTAL = 2000;
  const pad = (i: number) => `o${String(i).padStart(4, '0')}`;
  const url = () => `/v1/tenants/${c.id}/collections/orders`;
  const run = async (body: Record<string, unknown>): Promise<string[]> => {
    const r = await h.call(c.adminKey, 'POST', `${url()}/query`, { limit: 500, ...body });
    expect(r.statusCode, r.body).toBe(200);
    const data = r.json().data as Doc[];
    for (const doc of data) expect(doc.id).toMatch(/^o\d{4}$/);
    return data.map((d) => d.id);
  };
  const eq42 = { filter: cond('a.b', 'eq', 42) };
  // Queries whose answers must not change with the index; the expectations follow from how the documents
  // are generated (a.b = i % 100, kind = even/odd).
  const probes: [Record<string, unknown>, string[]][] = [
    [eq42, Array.from({ length: 20 }, (_, k) => pad(42 + 100 * k))],
    [
      { filter: cond('a.b', 'in', [7, 8]) },
      Array.from({ length: 20 }, (_, k) => [pad(7 + 100 * k), pad(8 + 100 * k)]).flat(),
    ],
    [
      { filter: { and: [cond('a.b', 'gte', 98), cond('kind', 'eq', 'odd')] } },
      Array.from({ length: 20 }, (_, k) => pad(99 + 100 * k)),
    ],
    [{ filter: cond('a.b', 'eq', '42') }, []],
    [
      { filter: cond('a.b', 'eq', 42), sort: [{ path: 'n', order: 'desc' }], limit: 3 },
      [pad(1942), pad(1842), pad(1742)],
    ],
  ];
  const before: string[][] = [];

  beforeAll(async () => {
    c = await createTenant(h);
    const made = await h.call(c.adminKey, 'POST', `/v1/tenants/${c.id}/collections`, { name: 'orders' });
    expect(made.statusCode, made.body).toBe(201);
    for (let start = 0; start < TOTAL; start += 500) {
      const operations = Array.from({ length: 500 }, (_, k) => {
        const i = start + k;
        return {
          op: 'create',
          collection: 'orders',
          id: pad(i),
          data: { a: { b: i % 100 }, n: i, kind: i % 2 ? 'odd' : 'even' },
        };
      });
      await batch(c, operations);
    }
    for (const [body, expected] of probes) {
      const got = await run(body);
      expect(got, JSON.stringify(body)).toEqual(expected);
      before.push(got);
    }
  });

  /** The names of the partial indexes on the documents table that are scoped to the tenant. */
  const tenantIndexes = async () =>
    (
      await h.db.query<{ indexname: string }>(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'strata_data' AND indexdef LIKE '%' || $1 || '%' ORDER BY 1",
        [c.id],
      )
    ).rows.map((r) => r.indexname);

  it('declaring an index keeps every answer the same; the compiled filter matches the index', async () => {
    const r = await h.call(c.adminKey, 'POST', `${url()}/indexes`, { name: 'by_ab', path: 'a.b' });
    expect(r.statusCode, r.body).toBe(201);
    expect(r.json().indexes).toEqual([{ name: 'by_ab', path: 'a.b' }]);
    const names = await tenantIndexes();
    expect(names).toHaveLength(1);
    const name = names[0] as string;
    expect(name).toMatch(/^strata_ix_[0-9a-f]{24}$/);
    await h.db.exec('ANALYZE strata_data.documents');

    for (const [i, [body]] of probes.entries()) expect(await run(body), JSON.stringify(body)).toEqual(before[i]);

    // The statement a query sends, with its parameters bound as they are at execution, planned by the test
    // database's superuser (to whom row-level security does not apply): on PGlite and PostgreSQL alike, eq,
    // in and range conditions on the path are index conditions. That is the compiler's part: the same
    // expression as the index, and tenant and collection values that imply the index's predicate.
    for (const body of [eq42, { filter: cond('a.b', 'in', [7, 8]) }, { filter: cond('a.b', 'gte', 98) }]) {
      const q = compileQuery(c.id, 'orders', { ...body, limit: 50 });
      const plan = (await h.db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${q.sql}`, q.params)).rows
        .map((row) => row['QUERY PLAN'])
        .join('\n');
      expect(plan, JSON.stringify(body)).toContain(name);
      expect(plan).toMatch(/Index Cond: .*body #> '\{a,b\}'::text\[\]/);
    }

    // Through the service, as the tenant: the plan text comes back, and the answers are right either way.
    const plan = await h.strata.services.documents.explainQuery(c.id, 'orders', eq42);
    expect(plan).toMatch(/Scan/);
  });

  /*
   * As the tenant (role strata_app, under row-level security) a condition can be an index condition only if
   * its functions are leakproof; tenant migration 0004 marks jsonb's path extraction and comparisons so
   * (both test databases run migrations as a superuser), and the tenant's query uses its index.
   */
  it('as the tenant, eq, in and range filters on an indexed path are index conditions', async () => {
    for (const body of [eq42, { filter: cond('a.b', 'in', [7, 8]) }, { filter: cond('a.b', 'gte', 98) }]) {
      const plan = await h.strata.services.documents.explainQuery(c.id, 'orders', body);
      expect(plan, JSON.stringify(body)).toMatch(/strata_ix_[0-9a-f]{24}/);
      expect(plan).toMatch(/Index Cond: .*body #> '\{a,b\}'::text\[\]/);
    }
  });

  it('a second index with the same name is 409, a bad path is 400, an unknown collection is 404', async () => {
    for (const body of [
      { name: 'by_ab', path: 'a.b' },
      { name: 'by_ab', path: 'kind' },
    ]) {
      const r = await h.call(c.adminKey, 'POST', `${url()}/indexes`, body);
      expect(r.statusCode, r.body).toBe(409);
      expect(r.json().code).toBe('conflict');
    }
    for (const path of ['a..b', 'a-b', '', "a'); DROP TABLE strata_data.documents; --", 'a.$b', '.a']) {
      const r = await h.call(c.adminKey, 'POST', `${url()}/indexes`, { name: 'bad', path });
      expect(r.statusCode, path).toBe(400);
    }
    const badName = await h.call(c.adminKey, 'POST', `${url()}/indexes`, { name: 'Bad-Name', path: 'kind' });
    expect(badName.statusCode).toBe(400);
    const missing = await h.call(c.adminKey, 'POST', `/v1/tenants/${c.id}/collections/nope/indexes`, {
      name: 'x',
      path: 'a',
    });
    expect(missing.statusCode).toBe(404);
    expect(await tenantIndexes()).toHaveLength(1);
    const listed = await h.call(c.adminKey, 'GET', url());
    expect(listed.json().indexes).toEqual([{ name: 'by_ab', path: 'a.b' }]);
  });

  it('dropping: an unknown index is 404; after the drop the answers are the same', async () => {
    expect((await h.call(c.adminKey, 'DELETE', `${url()}/indexes/nope`)).statusCode).toBe(404);
    expect((await h.call(c.adminKey, 'DELETE', `/v1/tenants/${c.id}/collections/nope/indexes/by_ab`)).statusCode).toBe(
      404,
    );
    // Another tenant cannot drop it.
    expect(
      (await h.call(a.adminKey, 'DELETE', `/v1/tenants/${a.id}/collections/orders/indexes/by_ab`)).statusCode,
    ).toBe(404);
    expect(await tenantIndexes()).toHaveLength(1);
    expect((await h.call(c.adminKey, 'DELETE', `${url()}/indexes/by_ab`)).statusCode).toBe(204);
    expect(await tenantIndexes()).toEqual([]);
    expect((await h.call(c.adminKey, 'DELETE', `${url()}/indexes/by_ab`)).statusCode).toBe(404);
    for (const [i, [body]] of probes.entries()) expect(await run(body), JSON.stringify(body)).toEqual(before[i]);
    const plan = await h.strata.services.documents.explainQuery(c.id, 'orders', eq42);
    expect(plan).not.toMatch(/strata_ix_/);
    // The name is free again.
    const again = await h.call(c.adminKey, 'POST', `${url()}/indexes`, { name: 'by_ab', path: 'kind' });
    expect(again.statusCode, again.body).toBe(201);
    expect(await run({ filter: cond('kind', 'eq', 'odd'), count: true, limit: 1 })).toEqual([pad(1)]);
  });
});
