import { createHash } from 'node:crypto';
import { AppError } from '../../platform/errors.js';
import { isPlainObject } from './merge-patch.js';

/**
 * The query language, compiled to parameterized SQL over `strata_data.documents d`.
 *
 *   filter   { "path": "a.b", "op": "gte", "value": 3 }  |  { "and": [...] }  |  { "or": [...] }  |  { "not": {...} }
 *   sort     [{ "path": "a.b", "order": "desc" }]         (ties broken by id)
 *   fields   ["a.b", "c"]                                  (projection of `data`)
 *
 * Paths are dotted (`address.city`, `tags.0`); `$id`, `$version`, `$created_at` and `$updated_at` address
 * the document's metadata. No user string ever becomes SQL text: paths and values travel as parameters,
 * and only operator names chosen from a fixed table pick the SQL shape.
 */

export const OPERATORS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'nin', 'exists', 'contains', 'prefix'] as const;
export type Operator = (typeof OPERATORS)[number];

export const LIMITS = {
  depth: 8,
  conditions: 100,
  listValues: 500,
  pathSegments: 16,
  segmentLength: 128,
  sortKeys: 4,
  fields: 50,
  valueBytes: 8192,
};

type Meta = '$id' | '$version' | '$created_at' | '$updated_at';
const META: Record<Meta, { column: string; type: 'text' | 'bigint' | 'timestamptz' }> = {
  $id: { column: 'd.id', type: 'text' },
  $version: { column: 'd.version', type: 'bigint' },
  $created_at: { column: 'd.created_at', type: 'timestamptz' },
  $updated_at: { column: 'd.updated_at', type: 'timestamptz' },
};

export interface SortKey {
  path: string;
  order: 'asc' | 'desc';
}

/** Collects parameters; every value in the SQL is one of these placeholders. */
export class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

class FilterError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

function fail(path: string, message: string): never {
  throw new FilterError(path, message);
}

/** Validates a dotted path and returns its segments. */
export function parsePath(path: unknown, where: string): string[] {
  if (typeof path !== 'string' || path.length === 0) fail(where, 'must be a non-empty string');
  const segments = path.split('.');
  if (segments.length > LIMITS.pathSegments) fail(where, `must have at most ${LIMITS.pathSegments} segments`);
  for (const s of segments) {
    if (s.length === 0) fail(where, 'must not have empty segments');
    if (s.length > LIMITS.segmentLength) fail(where, `segments must be at most ${LIMITS.segmentLength} characters`);
  }
  return segments;
}

function isMeta(path: string): path is Meta {
  return Object.hasOwn(META, path);
}

function metaValue(meta: Meta, value: unknown, where: string): unknown {
  const { type } = META[meta];
  if (type === 'text' && typeof value !== 'string') fail(where, `${meta} compares with a string`);
  if (type === 'bigint' && !Number.isInteger(value)) fail(where, `${meta} compares with an integer`);
  if (type === 'timestamptz' && (typeof value !== 'string' || Number.isNaN(Date.parse(value)))) {
    fail(where, `${meta} compares with an ISO 8601 timestamp`);
  }
  return value;
}

function jsonParam(p: Params, value: unknown, where: string): string {
  const text = JSON.stringify(value);
  if (text === undefined) fail(where, 'must be a JSON value');
  if (Buffer.byteLength(text) > LIMITS.valueBytes) fail(where, `must be at most ${LIMITS.valueBytes} bytes`);
  return `${p.add(text)}::jsonb`;
}

function compileMeta(p: Params, meta: Meta, op: Operator, value: unknown, where: string): string {
  const { column, type } = META[meta];
  const cmp = { eq: '=', ne: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;
  switch (op) {
    case 'eq':
    case 'ne':
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte':
      return `(${column} ${cmp[op]} ${p.add(metaValue(meta, value, where))}::${type})`;
    case 'in':
    case 'nin': {
      if (!Array.isArray(value) || value.length === 0 || value.length > LIMITS.listValues) {
        fail(where, `must be an array of 1 to ${LIMITS.listValues} values`);
      }
      const list = value.map((v, i) => metaValue(meta, v, `${where}.${i}`));
      const expr = `(${column} = ANY(${p.add(list)}::${type}[]))`;
      return op === 'in' ? expr : `(NOT ${expr})`;
    }
    case 'exists':
      if (typeof value !== 'boolean') fail(where, 'must be true or false');
      return value ? 'true' : 'false';
    case 'prefix':
      if (meta !== '$id' || typeof value !== 'string') fail(where, 'prefix applies to $id and strings');
      return `starts_with(${column}, ${p.add(value)})`;
    case 'contains':
      fail(where, `contains does not apply to ${meta}`);
  }
}

function compileCondition(p: Params, node: Record<string, unknown>, where: string): string {
  for (const key of Object.keys(node)) {
    if (key !== 'path' && key !== 'op' && key !== 'value') fail(`${where}.${key}`, 'is not a filter member');
  }
  const op = node.op as Operator;
  if (!OPERATORS.includes(op)) fail(`${where}.op`, `must be one of ${OPERATORS.join(', ')}`);
  const value = node.value;
  if (value === undefined) fail(`${where}.value`, 'is required');
  if (isMeta(node.path as string)) return compileMeta(p, node.path as Meta, op, value, `${where}.value`);
  const segments = parsePath(node.path, `${where}.path`);
  const k = `${p.add(segments)}::text[]`;
  const e = `(d.body #> ${k})`;
  const vwhere = `${where}.value`;
  switch (op) {
    case 'eq':
      return `(${e} = ${jsonParam(p, value, vwhere)})`;
    case 'ne':
      return `(${e} IS DISTINCT FROM ${jsonParam(p, value, vwhere)})`;
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte': {
      if (typeof value !== 'number' && typeof value !== 'string') fail(vwhere, 'must be a number or a string');
      const cmp = { gt: '>', gte: '>=', lt: '<', lte: '<=' }[op];
      return `(jsonb_typeof(${e}) = ${p.add(typeof value)} AND ${e} ${cmp} ${jsonParam(p, value, vwhere)})`;
    }
    case 'in':
    case 'nin': {
      if (!Array.isArray(value) || value.length === 0 || value.length > LIMITS.listValues) {
        fail(vwhere, `must be an array of 1 to ${LIMITS.listValues} values`);
      }
      const expr = `coalesce(${e} IN (SELECT jsonb_array_elements(${jsonParam(p, value, vwhere)})), false)`;
      return op === 'in' ? `(${expr})` : `(NOT ${expr})`;
    }
    case 'exists':
      if (typeof value !== 'boolean') fail(vwhere, 'must be true or false');
      return value ? `(${e} IS NOT NULL)` : `(${e} IS NULL)`;
    case 'contains': {
      const inArray = `(jsonb_typeof(${e}) = 'array' AND ${e} @> jsonb_build_array(${jsonParam(p, value, vwhere)}))`;
      if (typeof value !== 'string') return inArray;
      return `(${inArray} OR (jsonb_typeof(${e}) = 'string' AND strpos(d.body #>> ${k}, ${p.add(value)}) > 0))`;
    }
    case 'prefix':
      if (typeof value !== 'string') fail(vwhere, 'must be a string');
      return `(jsonb_typeof(${e}) = 'string' AND starts_with(d.body #>> ${k}, ${p.add(value)}))`;
  }
}

function compileNode(p: Params, node: unknown, where: string, depth: number, count: { n: number }): string {
  if (depth > LIMITS.depth) fail(where, `filters may nest at most ${LIMITS.depth} levels`);
  if (++count.n > LIMITS.conditions) fail(where, `a filter may have at most ${LIMITS.conditions} conditions`);
  if (!isPlainObject(node)) fail(where, 'must be an object');
  const keys = Object.keys(node);
  if (keys.length === 1 && (keys[0] === 'and' || keys[0] === 'or')) {
    const key = keys[0];
    const list = node[key];
    if (!Array.isArray(list) || list.length === 0) fail(`${where}.${key}`, 'must be a non-empty array');
    const parts = list.map((child, i) => compileNode(p, child, `${where}.${key}.${i}`, depth + 1, count));
    return `(${parts.join(key === 'and' ? ' AND ' : ' OR ')})`;
  }
  if (keys.length === 1 && keys[0] === 'not') {
    return `(NOT coalesce(${compileNode(p, node.not, `${where}.not`, depth + 1, count)}, false))`;
  }
  return compileCondition(p, node, where);
}

/** Compiles a filter to a SQL boolean expression whose values are in `p`. */
export function compileFilter(p: Params, filter: unknown): string {
  if (filter === undefined || filter === null) return 'true';
  return guard(() => compileNode(p, filter, 'filter', 1, { n: 0 }));
}

function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof FilterError) {
      throw new AppError('invalid_filter', `${err.path} ${err.message}`, {
        errors: [{ path: err.path, message: err.message }],
      });
    }
    throw err;
  }
}

export interface CompiledSort {
  /** SELECT-list expressions, one per key (id last), aliased s0, s1, ... */
  select: string[];
  orderBy: string;
  /** Keyset condition for rows after the cursor's position. */
  after(p: Params, position: unknown[]): string;
  keys: SortKey[];
}

/** Sort keys (ties always broken by id ascending) and keyset pagination over them. */
export function compileSort(p: Params, sort: unknown): CompiledSort {
  return guard(() => {
    const list = sort ?? [];
    if (!Array.isArray(list) || list.length > LIMITS.sortKeys)
      fail('sort', `must be an array of at most ${LIMITS.sortKeys} keys`);
    const keys: SortKey[] = list.map((s, i) => {
      if (!isPlainObject(s)) fail(`sort.${i}`, 'must be an object');
      const order = s.order ?? 'asc';
      if (order !== 'asc' && order !== 'desc') fail(`sort.${i}.order`, 'must be asc or desc');
      if (!isMeta(s.path as string)) parsePath(s.path, `sort.${i}.path`);
      return { path: s.path as string, order };
    });
    const exprs: { sql: string; cast: string; order: 'asc' | 'desc' }[] = keys.map((key) => {
      if (isMeta(key.path)) {
        const { column, type } = META[key.path];
        return { sql: type === 'timestamptz' ? column : column, cast: type, order: key.order };
      }
      return {
        sql: `coalesce(d.body #> ${p.add(key.path.split('.'))}::text[], 'null'::jsonb)`,
        cast: 'jsonb',
        order: key.order,
      };
    });
    exprs.push({ sql: 'd.id', cast: 'text', order: 'asc' });
    return {
      keys,
      // Timestamps travel as text so the cursor keeps their microseconds.
      select: exprs.map((x, i) => `${x.cast === 'timestamptz' ? `${x.sql}::text` : x.sql} AS s${i}`),
      orderBy: exprs.map((x) => `${x.sql} ${x.order === 'asc' ? 'ASC' : 'DESC'}`).join(', '),
      after(q: Params, position: unknown[]) {
        const values = exprs.map((x, i) => {
          const v = position[i];
          return x.cast === 'jsonb' ? `${q.add(JSON.stringify(v))}::jsonb` : `${q.add(v)}::${x.cast}`;
        });
        const ors = exprs.map((x, i) => {
          const eqs = exprs.slice(0, i).map((y, j) => `${y.sql} = ${values[j]}`);
          eqs.push(`${x.sql} ${x.order === 'asc' ? '>' : '<'} ${values[i]}`);
          return `(${eqs.join(' AND ')})`;
        });
        return `(${ors.join(' OR ')})`;
      },
    };
  });
}

/** A cursor carries the last row's sort values and a fingerprint of the query it belongs to. */
export function queryFingerprint(collection: string, filter: unknown, sort: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify([collection, filter ?? null, sort ?? []]))
    .digest('base64url')
    .slice(0, 16);
}

export function encodeQueryCursor(position: unknown[], fingerprint: string): string {
  return Buffer.from(JSON.stringify({ p: position, f: fingerprint })).toString('base64url');
}

export function decodeQueryCursor(cursor: string | undefined, fingerprint: string, keys: number): unknown[] | null {
  if (cursor === undefined || cursor === null) return null;
  const bad = () => new AppError('bad_request', 'The cursor is not one this query returned');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString());
  } catch {
    throw bad();
  }
  if (!isPlainObject(parsed) || parsed.f !== fingerprint || !Array.isArray(parsed.p) || parsed.p.length !== keys) {
    throw bad();
  }
  return parsed.p;
}

/** Keeps only the listed paths of a document's data. */
export function project(data: Record<string, unknown>, fields: string[] | undefined): Record<string, unknown> {
  if (!fields) return data;
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    const segments = field.split('.');
    let src: unknown = data;
    for (const s of segments)
      src = isPlainObject(src) || Array.isArray(src) ? (src as Record<string, unknown>)[s] : undefined;
    if (src === undefined) continue;
    let dst = out;
    segments.forEach((s, i) => {
      if (i === segments.length - 1) dst[s] = src;
      else {
        if (!isPlainObject(dst[s])) dst[s] = {};
        dst = dst[s] as Record<string, unknown>;
      }
    });
  }
  return out;
}

export function checkFields(fields: unknown): string[] | undefined {
  return guard(() => {
    if (fields === undefined) return undefined;
    if (!Array.isArray(fields) || fields.length > LIMITS.fields)
      fail('fields', `must be an array of at most ${LIMITS.fields} paths`);
    fields.forEach((f, i) => {
      parsePath(f, `fields.${i}`);
    });
    return fields as string[];
  });
}
