import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, type Harness, startHarness, type TestTenant } from './harness.js';

let h: Harness;
let t: TestTenant;
beforeAll(async () => {
  h = await startHarness({ STRATA_BODY_LIMIT_BYTES: '4096' });
  t = await createTenant(h);
});
afterAll(async () => {
  await h?.close();
});

interface BadRequest {
  name: string;
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  url: () => string;
  token?: () => string | undefined;
  headers?: Record<string, string>;
  payload?: string;
  status: number;
  code: string;
}

const op = () => h.operatorToken;
const json = { 'content-type': 'application/json' };
const forged = () => `${h.operatorToken.slice(0, -4)}AAAA`;

const cases: BadRequest[] = [
  {
    name: 'malformed JSON',
    method: 'POST',
    url: () => '/v1/tenants',
    token: op,
    headers: json,
    payload: '{"slug": "x",',
    status: 400,
    code: 'invalid_json',
  },
  {
    name: 'empty JSON body',
    method: 'POST',
    url: () => '/v1/tenants',
    token: op,
    headers: json,
    payload: '',
    status: 400,
    code: 'invalid_json',
  },
  {
    name: 'JSON that is not an object',
    method: 'POST',
    url: () => '/v1/tenants',
    token: op,
    headers: json,
    payload: '[1,2]',
    status: 400,
    code: 'validation_failed',
  },
  {
    name: 'wrong type',
    method: 'POST',
    url: () => '/v1/tenants',
    token: op,
    headers: json,
    payload: '{"slug":"ok-slug","name":42}',
    status: 400,
    code: 'validation_failed',
  },
  {
    name: 'number where a string is expected is not coerced',
    method: 'POST',
    url: () => '/v1/tenants',
    token: op,
    headers: json,
    payload: '{"slug":123,"name":"x"}',
    status: 400,
    code: 'validation_failed',
  },
  {
    name: 'unknown field',
    method: 'POST',
    url: () => '/v1/tenants',
    token: op,
    headers: json,
    payload: '{"slug":"ok-slug","name":"x","admin":true}',
    status: 400,
    code: 'validation_failed',
  },
  {
    name: 'unknown nested field',
    method: 'POST',
    url: () => '/v1/tenants',
    token: op,
    headers: json,
    payload: '{"slug":"ok-slug","name":"x","plan_overrides":{"quotas":{"bogus":1}}}',
    status: 400,
    code: 'validation_failed',
  },
  {
    name: 'invalid slug (SQL in it)',
    method: 'POST',
    url: () => '/v1/tenants',
    token: op,
    headers: json,
    payload: `{"slug":"x'; DROP TABLE strata.tenants; --","name":"x"}`,
    status: 400,
    code: 'validation_failed',
  },
  {
    name: 'oversized body',
    method: 'POST',
    url: () => '/v1/tenants',
    token: op,
    headers: json,
    payload: JSON.stringify({ slug: 'big', name: 'x'.repeat(10_000) }),
    status: 413,
    code: 'payload_too_large',
  },
  {
    name: 'wrong content type',
    method: 'POST',
    url: () => '/v1/tenants',
    token: op,
    headers: { 'content-type': 'text/plain' },
    payload: 'slug=x',
    status: 415,
    code: 'unsupported_media_type',
  },
  {
    name: 'empty PATCH',
    method: 'PATCH',
    url: () => `/v1/tenants/${t.id}`,
    token: op,
    headers: json,
    payload: '{}',
    status: 400,
    code: 'validation_failed',
  },
  {
    name: 'malformed tenant id',
    method: 'GET',
    url: () => '/v1/tenants/not-a-uuid',
    token: op,
    status: 400,
    code: 'validation_failed',
  },
  {
    name: 'malformed tenant id with SQL',
    method: 'GET',
    url: () => `/v1/tenants/${encodeURIComponent("1' OR '1'='1")}/members`,
    token: op,
    status: 400,
    code: 'validation_failed',
  },
  {
    name: 'malformed key id',
    method: 'DELETE',
    url: () => `/v1/tenants/${t.id}/api-keys/123`,
    token: op,
    status: 400,
    code: 'validation_failed',
  },
  {
    name: 'unknown tenant id',
    method: 'GET',
    url: () => `/v1/tenants/${crypto.randomUUID()}`,
    token: op,
    status: 404,
    code: 'not_found',
  },
  {
    name: 'limit out of range',
    method: 'GET',
    url: () => '/v1/tenants?limit=100000',
    token: op,
    status: 400,
    code: 'validation_failed',
  },
  {
    name: 'unknown query parameter',
    method: 'GET',
    url: () => '/v1/tenants?sort=evil',
    token: op,
    status: 400,
    code: 'validation_failed',
  },
  {
    name: 'forged cursor',
    method: 'GET',
    url: () => `/v1/tenants?cursor=${Buffer.from("' OR 1=1").toString('base64url')}`,
    token: op,
    status: 400,
    code: 'bad_request',
  },
  { name: 'unknown route', method: 'GET', url: () => '/v1/nope', token: op, status: 404, code: 'not_found' },
  {
    name: 'missing credential',
    method: 'GET',
    url: () => '/v1/tenants',
    token: () => undefined,
    status: 401,
    code: 'unauthenticated',
  },
  {
    name: 'not a bearer scheme',
    method: 'GET',
    url: () => '/v1/tenants',
    headers: { authorization: 'Basic dXNlcjpwYXNz' },
    status: 401,
    code: 'unauthenticated',
  },
  {
    name: 'garbage token',
    method: 'GET',
    url: () => '/v1/tenants',
    token: () => 'hello',
    status: 401,
    code: 'unauthenticated',
  },
  {
    name: 'forged secret on a real key id',
    method: 'GET',
    url: () => '/v1/tenants',
    token: forged,
    status: 401,
    code: 'unauthenticated',
  },
  {
    name: 'tenant key on an operator route',
    method: 'GET',
    url: () => '/v1/tenants',
    token: () => t.adminKey,
    status: 403,
    code: 'forbidden',
  },
  {
    name: 'tenant key creating a tenant',
    method: 'POST',
    url: () => '/v1/tenants',
    token: () => t.adminKey,
    headers: json,
    payload: '{"slug":"sneaky","name":"x"}',
    status: 403,
    code: 'forbidden',
  },
];

async function state() {
  const { rows } = await h.db.query(
    `SELECT (SELECT count(*) FROM strata.tenants)::int AS tenants, (SELECT count(*) FROM strata.api_keys)::int AS keys,
            (SELECT max(updated_at) FROM strata.tenants)::text AS touched`,
  );
  return rows[0];
}

describe('bad requests get 4xx problem+json with a stable code and change nothing', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    const before = await state();
    const token = c.token?.();
    const res = await h.strata.app.inject({
      method: c.method,
      url: c.url(),
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(c.headers ?? {}) },
      ...(c.payload !== undefined ? { payload: c.payload } : {}),
    });
    expect(res.statusCode, res.body).toBe(c.status);
    expect(res.headers['content-type']).toContain('application/problem+json');
    const problem = res.json();
    expect(problem).toMatchObject({ code: c.code, status: c.status });
    expect(problem.type).toMatch(new RegExp(`/${c.code}$`));
    expect(problem.request_id).toBe(res.headers['x-request-id']);
    expect(await state()).toEqual(before);
  });

  it('validation problems name every failing field', async () => {
    const res = await h.call(h.operatorToken, 'POST', '/v1/tenants', { slug: 'Bad Slug', name: 5, extra: 1 });
    const paths = res.json().errors.map((e: { path: string }) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['body/slug', 'body/name', 'body/extra']));
  });
});
