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
  /** How deeply a value's arrays and objects may nest. */
  valueDepth: 32,
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

// PostgreSQL text cannot hold U+0000, and its JSON parser refuses unpaired surrogates (which JSON.parse lets
// through as \ud800 escapes).
const UNPAIRED_SURROGATE = /\p{Cs}/u;

export function textProblem(text: string): string | undefined {
  return text.includes('\u0000') || UNPAIRED_SURROGATE.test(text)
    ? 'must not contain U+0000 or unpaired surrogates'
    : undefined;
}

/** Why PostgreSQL would refuse a JSON value (undefined if it would not). */
function jsonProblem(value: unknown, depth = 0): string | undefined {
  if (typeof value === 'string') return textProblem(value);
  // JSON.parse reads 1e400 as Infinity, which JSON.stringify would turn into null.
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : 'numbers must be finite';
  if (value === null || typeof value === 'boolean') return undefined;
  if (typeof value !== 'object') return 'must be a JSON value';
  if (depth >= LIMITS.valueDepth) return `must nest at most ${LIMITS.valueDepth} levels`;
  for (const [key, member] of Object.entries(value)) {
    const problem = (Array.isArray(value) ? undefined : textProblem(key)) ?? jsonProblem(member, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

/** Validates a dotted path and returns its segments. */
export function parsePath(path: unknown, where: string): string[] {
  if (typeof path !== 'string' || path.length === 0) fail(where, 'must be a non-empty string');
  const segments = path.split('.');
  if (segments.length > LIMITS.pathSegments) fail(where, `must have at most ${LIMITS.pathSegments} segments`);
  for (const s of segments) {
    if (s.length === 0) fail(where, 'must not have empty segments');
    if (s.length > LIMITS.segmentLength) fail(where, `segments must be at most ${LIMITS.segmentLength} characters`);
    const problem = textProblem(s);
    if (problem) fail(where, problem);
  }
  return segments;
}

function isMeta(path: unknown): path is Meta {
  return typeof path === 'string' && Object.hasOwn(META, path);
}

// Date, then optionally a time (T or space) and a zone: the ISO 8601 forms, and PostgreSQL's own text output.
const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?(?:Z|[+-](\d{2})(?::?(\d{2}))?)?)?$/;

/**
 * Whether `value` is a timestamp PostgreSQL accepts as timestamptz. Stricter than Date.parse, which takes
 * forms PostgreSQL refuses ("1", "2024-02-30", year 0): a value that passes here never fails in SQL.
 */
export function isTimestamp(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const m = TIMESTAMP.exec(value);
  if (!m) return false;
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, zoneHours = 0, zoneMinutes = 0] = m
    .slice(1)
    .map((x) => Number(x ?? 0));
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  return (
    year >= 1 &&
    days !== undefined &&
    day >= 1 &&
    day <= days &&
    hour <= 23 &&
    minute <= 59 &&
    second <= 59 &&
    zoneHours <= 15 &&
    zoneMinutes <= 59
  );
}

function checkBytes(text: string, where: string): void {
  if (Buffer.byteLength(text) > LIMITS.valueBytes) fail(where, `must be at most ${LIMITS.valueBytes} bytes`);
}

/** A string sent as a text parameter: storable, and within LIMITS.valueBytes. */
function checkString(text: string, where: string): void {
  const problem = textProblem(text);
  if (problem) fail(where, problem);
  checkBytes(text, where);
}

function metaValue(meta: Meta, value: unknown, where: string): unknown {
  const { type } = META[meta];
  if (type === 'text') {
    if (typeof value !== 'string') fail(where, `${meta} compares with a string`);
    checkString(value, where);
  }
  // Safe integers only: a larger number would reach PostgreSQL as an invalid bigint.
  if (type === 'bigint' && !Number.isSafeInteger(value)) fail(where, `${meta} compares with an integer`);
  if (type === 'timestamptz' && !isTimestamp(value)) fail(where, `${meta} compares with an ISO 8601 timestamp`);
  return value;
}

/** A JSON value as text that PostgreSQL accepts as jsonb, at most LIMITS.valueBytes long. */
function jsonText(value: unknown, where: string): string {
  const problem = jsonProblem(value);
  if (problem) fail(where, problem);
  const text = JSON.stringify(value);
  checkBytes(text, where);
  return text;
}

function jsonParam(p: Params, value: unknown, where: string): string {
  return `${p.add(jsonText(value, where))}::jsonb`;
}

/** An `in`/`nin` list: 1 to LIMITS.listValues values, each within LIMITS.valueBytes. */
function listValue(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > LIMITS.listValues) {
    fail(where, `must be an array of 1 to ${LIMITS.listValues} values`);
  }
  return value;
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
      const list = listValue(value, where).map((v, i) => metaValue(meta, v, `${where}.${i}`));
      const expr = `(${column} = ANY(${p.add(list)}::${type}[]))`;
      return op === 'in' ? expr : `(NOT ${expr})`;
    }
    case 'exists':
      if (typeof value !== 'boolean') fail(where, 'must be true or false');
      return value ? 'true' : 'false';
    case 'prefix':
      if (meta !== '$id' || typeof value !== 'string') fail(where, 'prefix applies to $id and strings');
      checkString(value, where);
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
  if (isMeta(node.path)) return compileMeta(p, node.path, op, value, `${where}.value`);
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
      // The size limit is per value (the list as a whole is bounded by LIMITS.listValues). The list is one
      // array parameter and the comparison a bare `=`, which a path index can answer (a subquery, or the
      // comparison wrapped in coalesce, would hide it from the index). A missing path gives NULL: not in
      // the list, and `nin` turns that into true.
      const texts = listValue(value, vwhere).map((v, i) => jsonText(v, `${vwhere}.${i}`));
      const expr = `(${e} = ANY(${p.add(texts)}::text[]::jsonb[]))`;
      return op === 'in' ? expr : `(NOT coalesce(${expr}, false))`;
    }
    case 'exists':
      if (typeof value !== 'boolean') fail(vwhere, 'must be true or false');
      return value ? `(${e} IS NOT NULL)` : `(${e} IS NULL)`;
    case 'contains': {
      // An element equal to the value (not jsonb containment, under which [{"a":1,"b":2}] "contains" {"a":1}).
      // CASE keeps jsonb_array_elements away from non-arrays, and a missing path is false, never NULL.
      const element = `EXISTS (SELECT 1 FROM jsonb_array_elements(${e}) AS el(v) WHERE el.v = ${jsonParam(p, value, vwhere)})`;
      const substring =
        typeof value === 'string' ? ` WHEN 'string' THEN strpos(d.body #>> ${k}, ${p.add(value)}) > 0` : '';
      return `(CASE jsonb_typeof(${e}) WHEN 'array' THEN ${element}${substring} ELSE false END)`;
    }
    case 'prefix':
      if (typeof value !== 'string') fail(vwhere, 'must be a string');
      checkString(value, vwhere);
      return `(jsonb_typeof(${e}) = 'string' AND starts_with(d.body #>> ${k}, ${p.add(value)}))`;
  }
}

function compileNode(p: Params, node: unknown, where: string, depth: number, count: { n: number }): string {
  if (depth > LIMITS.depth) fail(where, `filters may nest at most ${LIMITS.depth} levels`);
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
  // Conditions are the leaves; and/or/not only group them (their number is bounded by the depth limit).
  if (++count.n > LIMITS.conditions) fail(where, `a filter may have at most ${LIMITS.conditions} conditions`);
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
  /** Whether a position (from a cursor, so possibly forged) has one value of the right type per key. */
  accepts(position: unknown[]): boolean;
  keys: SortKey[];
}

const POSITION_TYPES: Record<string, (v: unknown) => boolean> = {
  jsonb: (v) => v !== undefined && jsonProblem(v) === undefined,
  text: (v) => typeof v === 'string' && textProblem(v) === undefined,
  bigint: (v) => Number.isSafeInteger(v),
  timestamptz: isTimestamp,
};

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
      if (!isMeta(s.path)) parsePath(s.path, `sort.${i}.path`);
      return { path: s.path as string, order };
    });
    const exprs: { sql: string; cast: string; order: 'asc' | 'desc' }[] = keys.map((key) => {
      if (isMeta(key.path)) {
        const { column, type } = META[key.path];
        return { sql: column, cast: type, order: key.order };
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
      accepts(position: unknown[]) {
        return position.length === exprs.length && exprs.every((x, i) => POSITION_TYPES[x.cast]?.(position[i]));
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

/**
 * The cursor is not signed: anyone can compute a fingerprint and choose a position. That is harmless (the
 * position only says where the page starts, and travels as parameters), so long as every value has the
 * type its key needs; anything else is refused here rather than failing in SQL.
 */
export function decodeQueryCursor(
  cursor: string | undefined,
  fingerprint: string,
  sort: CompiledSort,
): unknown[] | null {
  if (cursor === undefined || cursor === null) return null;
  const bad = () => new AppError('bad_request', 'The cursor is not one this query returned');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString());
  } catch {
    throw bad();
  }
  if (!isPlainObject(parsed) || parsed.f !== fingerprint || !Array.isArray(parsed.p) || !sort.accepts(parsed.p)) {
    throw bad();
  }
  return parsed.p;
}

/** A member of an object, or an element of an array by its decimal index; never an inherited property. */
function child(value: unknown, segment: string): unknown {
  if (Array.isArray(value)) return /^(0|[1-9][0-9]*)$/.test(segment) ? value[Number(segment)] : undefined;
  if (isPlainObject(value)) return Object.hasOwn(value, segment) ? value[segment] : undefined;
  return undefined;
}

/** Sets an own property, even one named __proto__ (plain assignment would change the prototype instead). */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Keeps only the listed paths of a document's data. */
export function project(data: Record<string, unknown>, fields: string[] | undefined): Record<string, unknown> {
  if (!fields) return data;
  const out: Record<string, unknown> = {};
  // Objects this projection built; any other value on the way down is a field already taken whole.
  const built = new WeakSet<object>([out]);
  for (const field of fields) {
    const segments = field.split('.');
    let src: unknown = data;
    for (const s of segments) src = child(src, s);
    if (src === undefined) continue;
    let dst: Record<string, unknown> = out;
    for (const [i, s] of segments.entries()) {
      if (i === segments.length - 1) {
        setOwn(dst, s, src);
        break;
      }
      const next: unknown = Object.hasOwn(dst, s) ? dst[s] : undefined;
      if (next === undefined) {
        const created: Record<string, unknown> = {};
        built.add(created);
        setOwn(dst, s, created);
        dst = created;
      } else if (isPlainObject(next) && built.has(next)) {
        dst = next;
      } else {
        break;
      }
    }
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

export interface QuerySpec {
  filter?: unknown;
  sort?: unknown;
  fields?: unknown;
  limit?: number;
  cursor?: string;
}

export interface CompiledQuery {
  /** One page (one row more than `limit`, to tell whether another follows), each row with its sort values s0, s1, ... */
  sql: string;
  params: unknown[];
  /** How many documents match in all: the same conditions without the cursor. */
  countSql: string;
  countParams: unknown[];
  sort: CompiledSort;
  fields: string[] | undefined;
  fingerprint: string;
  limit: number;
}

/**
 * The statements for one query over a tenant's collection. Tenant, collection, paths and values are all
 * parameters; node-postgres and PGlite send unnamed statements, which PostgreSQL plans with the values
 * bound, so `(d.body #> $1::text[]) = $2::jsonb` is planned as the constant expression a path index is
 * built on, and the tenant and collection equalities imply the index's predicate.
 */
export function compileQuery(tenantId: string, collection: string, input: QuerySpec): CompiledQuery {
  const p = new Params();
  const base = `d.tenant_id = ${p.add(tenantId)}::uuid AND d.collection = ${p.add(collection)} AND NOT d.deleted
                    AND ${compileFilter(p, input.filter)}`;
  // The count takes exactly the parameters its text refers to: PostgreSQL refuses a statement that is sent a
  // parameter it never uses (it cannot tell its type), so the sort's parameters must come after these.
  const countParams = [...p.values];
  const sort = compileSort(p, input.sort);
  const fields = checkFields(input.fields);
  const fingerprint = queryFingerprint(collection, input.filter, input.sort);
  const position = decodeQueryCursor(input.cursor, fingerprint, sort);
  const limit = input.limit ?? 50;
  const keyset = position ? ` AND ${sort.after(p, position)}` : '';
  const sql = `SELECT d.id, d.collection, d.version, d.deleted, d.body, d.created_at, d.updated_at, ${sort.select.join(', ')}
                 FROM strata_data.documents d
                WHERE ${base}${keyset}
                ORDER BY ${sort.orderBy}
                LIMIT ${p.add(limit + 1)}`;
  return {
    sql,
    params: p.values,
    countSql: `SELECT count(*)::int AS n FROM strata_data.documents d WHERE ${base}`,
    countParams,
    sort,
    fields,
    fingerprint,
    limit,
  };
}
