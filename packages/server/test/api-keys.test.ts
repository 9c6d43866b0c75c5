import { createHash, randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, type Harness, startHarness, type TestTenant } from './harness.js';

let h: Harness;
let t: TestTenant;
beforeAll(async () => {
  h = await startHarness();
  t = await createTenant(h, { roles: ['developer', 'analyst'] });
});
afterAll(async () => {
  await h?.close();
});

const keysUrl = (tenant: TestTenant) => `/v1/tenants/${tenant.id}/api-keys`;
const create = (token: string | undefined, body: unknown, tenant = t) => h.call(token, 'POST', keysUrl(tenant), body);
/** Moves a key's expiry into the past behind the server's back, so the node's auth cache is cleared too. */
async function expire(id: string) {
  await h.db.query(`UPDATE strata.api_keys SET expires_at = now() - interval '1 minute' WHERE id = $1`, [id]);
  h.strata.platform.authCache.clear();
}

function expectProblem(res: LightMyRequestResponse, status: number, code: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ status, code, type: `https://strata.dev/errors/${code}` });
}

async function newKey(scopes: string[] = ['data:read'], token = t.sessions.owner, tenant = t) {
  const res = await create(token, { name: `k-${randomUUID().slice(0, 8)}`, scopes }, tenant);
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as { id: string; name: string; secret: string; prefix: string; last_used_at: string | null };
}

describe('API keys', () => {
  it('shows the secret once: creation answers it, list and get never do', async () => {
    const res = await create(t.sessions.owner, { name: 'reader', scopes: ['data:read'] });
    expect(res.statusCode).toBe(201);
    const { secret, ...key } = res.json();
    expect(secret).toMatch(/^stk_[a-z2-7]{12}_[A-Za-z0-9_-]{43}$/);
    expect(key).toMatchObject({
      name: 'reader',
      prefix: secret.slice(0, 16),
      scopes: ['data:read'],
      expires_at: null,
      revoked_at: null,
      last_used_at: null,
    });
    const got = await h.call(t.sessions.owner, 'GET', `${keysUrl(t)}/${key.id}`);
    expect(got.statusCode).toBe(200);
    expect(got.json()).toEqual(key);
    const list = await h.call(t.sessions.owner, 'GET', `${keysUrl(t)}?limit=200`);
    expect(list.statusCode).toBe(200);
    expect(list.json().data).toContainEqual(key);
    expect(list.json().data.length).toBeGreaterThanOrEqual(2);
    for (const item of list.json().data) expect(item).not.toHaveProperty('secret');
    expect(list.body).not.toContain(secret.slice(17));
    expect(got.body).not.toContain(secret.slice(17));

    const works = await h.call(secret, 'GET', `/v1/tenants/${t.id}`);
    expect(works.statusCode).toBe(200);
    expect((await newKey()).secret).not.toBe(secret);
  });

  it('stores only a SHA-256 of the secret', async () => {
    const key = await newKey();
    const secretPart = key.secret.slice(17);
    const { rows } = await h.db.query<Record<string, unknown>>('SELECT * FROM strata.api_keys WHERE id = $1', [key.id]);
    expect(rows).toHaveLength(1);
    const row = rows[0] as Record<string, unknown>;
    expect(row.public_id).toBe(key.secret.slice(4, 16));
    expect(row.secret_hash).toBe(createHash('sha256').update(secretPart).digest('hex'));
    for (const [column, value] of Object.entries(row)) {
      const text = value instanceof Date ? value.toISOString() : JSON.stringify(value);
      expect(text, column).not.toContain(secretPart);
    }
    const all = await h.db.query<{ t: string }>(`SELECT string_agg(k::text, ' ') AS t FROM strata.api_keys k`);
    expect(all.rows[0]?.t).toContain(key.secret.slice(4, 16));
    expect(all.rows[0]?.t).not.toContain(secretPart);
  });

  it('a revoked key gets 401; revoking is idempotent', async () => {
    const key = await newKey();
    expect((await h.call(key.secret, 'GET', `/v1/tenants/${t.id}`)).statusCode).toBe(200);
    // Revoking needs api_keys:revoke, which a developer lacks.
    const url = `${keysUrl(t)}/${key.id}`;
    expectProblem(await h.call(t.sessions.developer, 'DELETE', url), 403, 'forbidden');
    expect((await h.call(key.secret, 'GET', `/v1/tenants/${t.id}`)).statusCode).toBe(200);

    const rev = await h.call(t.sessions.owner, 'DELETE', url);
    expect(rev.statusCode).toBe(200);
    expect(Date.parse(rev.json().revoked_at)).toBeGreaterThan(Date.now() - 60_000);
    expectProblem(await h.call(key.secret, 'GET', `/v1/tenants/${t.id}`), 401, 'unauthenticated');
    expectProblem(await h.call(key.secret, 'GET', '/v1/me'), 401, 'unauthenticated');
    const again = await h.call(t.sessions.owner, 'DELETE', url);
    expect(again.statusCode).toBe(200);
    expect(again.json().revoked_at).toBe(rev.json().revoked_at);
    expect((await h.call(t.sessions.owner, 'GET', url)).json().revoked_at).toBe(rev.json().revoked_at);
    expectProblem(await h.call(t.sessions.owner, 'DELETE', `${keysUrl(t)}/${randomUUID()}`), 404, 'not_found');
  });

  it('expires: a key past expires_at gets 401; expires_at must be in the future at creation', async () => {
    const future = new Date(Date.now() + 3600_000).toISOString();
    const res = await create(t.sessions.owner, { name: 'temp', scopes: ['data:read'], expires_at: future });
    expect(res.statusCode).toBe(201);
    expect(res.json().expires_at).toBe(future);
    const secret = res.json().secret;
    expect((await h.call(secret, 'GET', `/v1/tenants/${t.id}`)).statusCode).toBe(200);
    await expire(res.json().id);
    expectProblem(await h.call(secret, 'GET', `/v1/tenants/${t.id}`), 401, 'unauthenticated');

    const past = new Date(Date.now() - 60_000).toISOString();
    const refused = await create(t.sessions.owner, { name: 'stale', scopes: ['data:read'], expires_at: past });
    expectProblem(refused, 400, 'validation_failed');
    expect(refused.json().errors).toEqual([{ path: 'body/expires_at', message: 'must be in the future' }]);
    const garbled = await create(t.sessions.owner, { name: 'stale', scopes: ['data:read'], expires_at: 'tomorrow' });
    expectProblem(garbled, 400, 'validation_failed');
    const list = await h.call(t.sessions.owner, 'GET', `${keysUrl(t)}?limit=200`);
    expect(list.json().data.map((k: { name: string }) => k.name)).not.toContain('stale');
  });

  it('records last_used_at when the key is used', async () => {
    const key = await newKey();
    expect(key.last_used_at).toBeNull();
    const url = `${keysUrl(t)}/${key.id}`;
    expect((await h.call(t.sessions.owner, 'GET', url)).json().last_used_at).toBeNull();
    const before = Date.now();
    expect((await h.call(key.secret, 'GET', '/v1/me')).statusCode).toBe(200);
    const used = (await h.call(t.sessions.owner, 'GET', url)).json().last_used_at;
    expect(used).not.toBeNull();
    expect(Date.parse(used)).toBeGreaterThan(before - 60_000);
    expect(Date.parse(used)).toBeLessThan(Date.now() + 60_000);
  });

  it('no privilege escalation: a credential cannot mint a key that can do more than it can', async () => {
    const reader = await newKey(['data:read']);
    const byReader = await create(reader.secret, { name: 'x', scopes: ['data:read'] });
    expectProblem(byReader, 403, 'forbidden');
    expect(byReader.json().permission).toBe('api_keys:create');
    expectProblem(await h.call(reader.secret, 'GET', keysUrl(t)), 403, 'forbidden');
    expectProblem(await create(t.sessions.analyst, { name: 'x', scopes: ['data:read'] }), 403, 'forbidden');

    const dev = t.sessions.developer;
    for (const scopes of [['tenant:admin'], ['data:read', 'tenant:admin']]) {
      const esc = await create(dev, { name: 'escalated', scopes });
      expectProblem(esc, 403, 'forbidden');
      expect(esc.json().scopes).toEqual(['tenant:admin']);
    }
    const list = await h.call(t.sessions.owner, 'GET', `${keysUrl(t)}?limit=200`);
    expect(list.json().data.map((k: { name: string }) => k.name)).not.toContain('escalated');

    const devRead = await newKey(['data:read'], dev);
    expect((await h.call(devRead.secret, 'GET', '/v1/me')).json().scopes).toEqual(['data:read']);
    await newKey(['data:write'], dev);
    // A tenant:admin key holds every admin permission, so it may mint another.
    const admin = await newKey(['tenant:admin'], t.adminKey);
    expect((await h.call(admin.secret, 'GET', keysUrl(t))).statusCode).toBe(200);
  });

  it('the free plan allows 2 active keys; the 3rd is quota_exceeded', async () => {
    const f = await createTenant(h, { plan: 'free' });
    const ent = await h.call(f.adminKey, 'GET', `/v1/tenants/${f.id}/entitlements`);
    expect(ent.json().quotas.api_keys).toBe(2);
    // createTenant made the first key.
    const second = await newKey(['data:read'], f.sessions.owner, f);
    const over = await create(f.sessions.owner, { name: 'third', scopes: ['data:read'] }, f);
    expectProblem(over, 403, 'quota_exceeded');
    expect(over.json()).toMatchObject({
      limit: 'api_keys',
      limit_value: 2,
      usage: 2,
      current_plan: 'free',
      required_plan: 'starter',
    });
    expectProblem(await create(h.operatorToken, { name: 'third', scopes: ['data:read'] }, f), 403, 'quota_exceeded');

    // Revoked and expired keys are not active, so they free their place.
    await h.call(f.sessions.owner, 'DELETE', `${keysUrl(f)}/${second.id}`);
    const third = await newKey(['data:read'], f.sessions.owner, f);
    await expire(third.id);
    await newKey(['data:read'], f.sessions.owner, f);
    expectProblem(await create(f.sessions.owner, { name: 'fifth', scopes: ['data:read'] }, f), 403, 'quota_exceeded');
  });
});
