import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, type Harness, startHarness, tokenFromMail } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const login = (email: string) => h.call(undefined, 'POST', '/v1/auth/login', { email });
const exchange = (token: string) => h.call(undefined, 'POST', '/v1/auth/sessions', { token });
/** The same public id with another secret. Tokens are `<kind>_<12-char id>_<43-char secret>`. */
const forge = (token: string) => `${token.slice(0, 17)}${token.slice(17, 18) === 'A' ? 'B' : 'A'}${token.slice(18)}`;

function expectProblem(res: LightMyRequestResponse, status: number, code: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ status, code, type: `https://strata.dev/errors/${code}` });
}

async function signIn(email: string): Promise<{ token: string; user: { id: string; email: string } }> {
  expect((await login(email)).statusCode).toBe(202);
  const res = await exchange(tokenFromMail(h, email, 'stl'));
  expect(res.statusCode).toBe(201);
  return res.json();
}

describe('sign-in', () => {
  it('mails a single-use stl_ token to a known user and answers 202 without mail for an unknown email', async () => {
    const t = await createTenant(h);
    const email = `owner@${t.slug}.test`;
    const before = h.mail().length;
    const res = await login(email);
    expect(res.statusCode).toBe(202);
    expect(res.body).toBe('');
    const mails = h.mail().slice(before);
    expect(mails).toHaveLength(1);
    expect(mails[0]).toMatchObject({ to: email, subject: 'Your Strata sign-in token' });
    const token = tokenFromMail(h, email, 'stl');
    expect(mails[0]?.text).toContain(token);
    const stored = await h.db.query('SELECT * FROM strata.login_tokens WHERE user_id = $1', [t.userIds.owner]);
    expect(stored.rows).toHaveLength(1);
    expect(JSON.stringify(stored.rows)).not.toContain(token.slice(17));

    // Case does not matter; each request mails a new token.
    expect((await login(email.toUpperCase())).statusCode).toBe(202);
    expect(h.mail().length).toBe(before + 2);
    expect(tokenFromMail(h, email, 'stl')).not.toBe(token);

    // Invited but not yet accepted is not a user yet either.
    const pending = `pending@${t.slug}.test`;
    await h.call(t.sessions.owner, 'POST', `/v1/tenants/${t.id}/invitations`, { email: pending, role: 'viewer' });
    for (const unknown of [`nobody@${t.slug}.test`, pending]) {
      const count = h.mail().length;
      const r = await login(unknown);
      expect(r.statusCode).toBe(202);
      expect(r.body).toBe('');
      expect(h.mail().length).toBe(count);
      expect(() => tokenFromMail(h, unknown, 'stl')).toThrow();
    }
    expectProblem(await login('not-an-email'), 400, 'validation_failed');
  });

  it('exchanges a sign-in token for a session exactly once', async () => {
    const t = await createTenant(h);
    const email = `owner@${t.slug}.test`;
    await login(email);
    const token = tokenFromMail(h, email, 'stl');
    const started = Date.now();
    const res = await exchange(token);
    expect(res.statusCode).toBe(201);
    const session = res.json();
    expect(session.user).toEqual({ id: t.userIds.owner, email });
    expect(session.token).toMatch(/^sts_[a-z2-7]{12}_[A-Za-z0-9_-]{43}$/);
    const ttl = h.config.sessionTtlHours * 3600_000;
    expect(Date.parse(session.expires_at)).toBeGreaterThan(started + ttl - 60_000);
    expect(Date.parse(session.expires_at)).toBeLessThan(Date.now() + ttl + 60_000);
    const me = await h.call(session.token, 'GET', '/v1/me');
    expect(me.statusCode).toBe(200);
    expect(me.json()).toMatchObject({ kind: 'user', id: t.userIds.owner, email });

    expectProblem(await exchange(token), 401, 'token_invalid');
    // A sign-in token is no bearer credential, and other tokens are no sign-in tokens.
    expectProblem(await h.call(token, 'GET', '/v1/me'), 401, 'unauthenticated');
    expectProblem(await exchange(session.token), 401, 'token_invalid');
    expectProblem(await exchange(`stl_${'a'.repeat(12)}_${'A'.repeat(43)}`), 401, 'token_invalid');

    await login(email);
    const late = tokenFromMail(h, email, 'stl');
    await h.db.query(
      `UPDATE strata.login_tokens SET expires_at = now() - interval '1 minute' WHERE user_id = $1 AND used_at IS NULL`,
      [t.userIds.owner],
    );
    expectProblem(await exchange(late), 401, 'token_invalid');
  });
});

describe('identity and sessions', () => {
  it('GET /v1/me describes an operator key, an API key and a user session', async () => {
    const op = await h.call(h.operatorToken, 'GET', '/v1/me');
    expect(op.statusCode).toBe(200);
    expect(op.json()).toEqual({ kind: 'operator', id: expect.any(String), name: 'first operator key' });
    const opRow = await h.db.query<{ id: string }>('SELECT id FROM strata.operator_keys WHERE public_id = $1', [
      h.operatorToken.slice(4, 16),
    ]);
    expect(opRow.rows[0]?.id).toBe(op.json().id);

    const a = await createTenant(h);
    const b = await createTenant(h);
    const admin = await h.call(a.adminKey, 'GET', '/v1/me');
    expect(admin.json()).toMatchObject({ kind: 'api_key', name: 'admin', tenant_id: a.id });
    expect(admin.json().scopes).toEqual(['tenant:admin', 'data:write']);
    const created = await h.call(a.adminKey, 'POST', `/v1/tenants/${a.id}/api-keys`, {
      name: 'reader',
      scopes: ['data:read'],
    });
    const reader = await h.call(created.json().secret, 'GET', '/v1/me');
    expect(reader.json()).toEqual({
      kind: 'api_key',
      id: created.json().id,
      name: 'reader',
      tenant_id: a.id,
      scopes: ['data:read'],
    });

    // A's owner joins B as a viewer: one user, two memberships.
    const email = `owner@${a.slug}.test`;
    await h.call(b.sessions.owner, 'POST', `/v1/tenants/${b.id}/invitations`, { email, role: 'viewer' });
    await h.call(undefined, 'POST', '/v1/invitations/accept', { token: tokenFromMail(h, email, 'sti') });
    const me = await h.call(a.sessions.owner, 'GET', '/v1/me');
    expect(me.json()).toMatchObject({ kind: 'user', id: a.userIds.owner, email });
    expect(me.json().memberships).toEqual(
      [
        { tenant_id: a.id, role: 'owner' },
        { tenant_id: b.id, role: 'viewer' },
      ].sort((x, y) => x.tenant_id.localeCompare(y.tenant_id)),
    );
    // A deleted tenant's membership is no longer listed.
    expect((await h.call(h.operatorToken, 'DELETE', `/v1/tenants/${b.id}`)).statusCode).toBe(200);
    expect((await h.call(a.sessions.owner, 'GET', '/v1/me')).json().memberships).toEqual([
      { tenant_id: a.id, role: 'owner' },
    ]);
  });

  it('signing out revokes only the current session', async () => {
    const t = await createTenant(h);
    const email = `owner@${t.slug}.test`;
    const other = await signIn(email);
    const out = await h.call(t.sessions.owner, 'DELETE', '/v1/auth/sessions/current');
    expect(out.statusCode).toBe(204);
    expectProblem(await h.call(t.sessions.owner, 'GET', '/v1/me'), 401, 'unauthenticated');
    expectProblem(await h.call(t.sessions.owner, 'GET', `/v1/tenants/${t.id}`), 401, 'unauthenticated');
    expectProblem(await h.call(t.sessions.owner, 'DELETE', '/v1/auth/sessions/current'), 401, 'unauthenticated');
    expect((await h.call(other.token, 'GET', `/v1/tenants/${t.id}`)).statusCode).toBe(200);
    const revoked = await h.db.query<{ revoked_at: Date | null }>(
      'SELECT revoked_at FROM strata.sessions WHERE user_id = $1 ORDER BY created_at',
      [t.userIds.owner],
    );
    expect(revoked.rows.map((r) => r.revoked_at !== null)).toEqual([true, false]);

    // API keys cannot sign out; an expired session is refused like a revoked one.
    expectProblem(await h.call(t.adminKey, 'DELETE', '/v1/auth/sessions/current'), 400, 'bad_request');
    await h.db.query(`UPDATE strata.sessions SET expires_at = now() - interval '1 minute' WHERE public_id = $1`, [
      other.token.slice(4, 16),
    ]);
    h.strata.platform.authCache.clear(); // the expiry above went behind the server's back
    expectProblem(await h.call(other.token, 'GET', '/v1/me'), 401, 'unauthenticated');
  });

  it('missing, malformed, garbage and forged bearer tokens are 401 unauthenticated', async () => {
    const t = await createTenant(h);
    const real = [h.operatorToken, t.adminKey, t.sessions.owner as string];
    const urls = ['/v1/me', '/v1/tenants', `/v1/tenants/${t.id}`, `/v1/tenants/${t.id}/members`];
    for (const token of real) {
      for (const url of urls.slice(2)) expect((await h.call(token, 'GET', url)).statusCode).toBe(200);
    }
    const headers: (string | undefined)[] = [
      undefined,
      'Bearer',
      'Bearer garbage',
      `Basic ${Buffer.from('user:pass').toString('base64')}`,
      `Bearer ${h.operatorToken} extra`,
      `Bearer ${t.adminKey}x`,
      `Bearer sto_${'a'.repeat(12)}_${'A'.repeat(43)}`,
      // A session's id and secret presented as an operator key.
      `Bearer sto_${(t.sessions.owner as string).slice(4)}`,
      ...real.map((token) => `Bearer ${forge(token)}`),
    ];
    const details = new Set<string>();
    for (const authorization of headers) {
      for (const url of urls) {
        const res = await h.strata.app.inject({
          method: 'GET',
          url,
          headers: authorization ? { authorization } : {},
        });
        expectProblem(res, 401, 'unauthenticated');
        expect(res.json().instance).toBe(url);
        if (authorization && /^Bearer \S+$/.test(authorization)) details.add(res.json().detail);
      }
    }
    // A well-formed header with a bad token: one answer, whether or not the public id exists.
    expect(details.size).toBe(1);
    // The forged attempts changed nothing: the real credentials still work.
    for (const token of real) expect((await h.call(token, 'GET', '/v1/me')).statusCode).toBe(200);
  });
});

describe('auth cache', () => {
  it('serves a busy key from memory, yet a revoked key, a removed member or a suspended tenant is refused at once', async () => {
    const t = await createTenant(h, { roles: ['viewer'] });
    const created = await h.call(t.sessions.owner, 'POST', `/v1/tenants/${t.id}/api-keys`, {
      name: 'busy',
      scopes: ['data:read'],
    });
    const key = created.json().secret as string;
    const url = `/v1/tenants/${t.id}`;
    expect((await h.call(key, 'GET', url)).statusCode).toBe(200);
    // Remembered: a change made behind the server's back (another node, say) is not seen until the entry expires.
    await h.db.query('UPDATE strata.api_keys SET revoked_at = now() WHERE id = $1', [created.json().id]);
    expect((await h.call(key, 'GET', url)).statusCode).toBe(200);
    await h.db.query('UPDATE strata.api_keys SET revoked_at = NULL WHERE id = $1', [created.json().id]);

    // Changes through the API clear the node's memory before their response is sent.
    expect((await h.call(t.sessions.owner, 'DELETE', `${url}/api-keys/${created.json().id}`)).statusCode).toBe(200);
    expectProblem(await h.call(key, 'GET', url), 401, 'unauthenticated');

    const viewer = t.sessions.viewer as string;
    expect((await h.call(viewer, 'GET', url)).statusCode).toBe(200);
    expect((await h.call(t.sessions.owner, 'DELETE', `${url}/members/${t.userIds.viewer}`)).statusCode).toBe(204);
    expectProblem(await h.call(viewer, 'GET', url), 404, 'not_found');

    expect((await h.call(t.adminKey, 'GET', url)).statusCode).toBe(200);
    expect((await h.call(h.operatorToken, 'POST', `${url}/suspend`)).statusCode).toBe(200);
    expectProblem(await h.call(t.adminKey, 'GET', url), 403, 'tenant_suspended');
  });
});
