import { randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, type Harness, startHarness, type TestTenant, tokenFromMail } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const invite = (token: string | undefined, t: TestTenant, email: string, role: string) =>
  h.call(token, 'POST', `/v1/tenants/${t.id}/invitations`, { email, role });
const accept = (token: string) => h.call(undefined, 'POST', '/v1/invitations/accept', { token });
const memberUrl = (t: TestTenant, userId: string | undefined) => `/v1/tenants/${t.id}/members/${userId}`;

function expectProblem(res: LightMyRequestResponse, status: number, code: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ status, code, type: `https://strata.dev/errors/${code}` });
}

/** Follows next_cursor with limit=1 and returns every item, checking each page holds exactly one. */
async function collect<T>(token: string | undefined, url: string): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const qs: string = cursor ? `&cursor=${cursor}` : '';
    const res = await h.call(token, 'GET', `${url}?limit=1${qs}`);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.data).toHaveLength(1);
    items.push(...body.data);
    cursor = body.next_cursor;
  } while (cursor && items.length < 100);
  return items;
}

async function rolesOf(t: TestTenant): Promise<Record<string, string>> {
  const res = await h.call(h.operatorToken, 'GET', `/v1/tenants/${t.id}/members?limit=200`);
  return Object.fromEntries(res.json().data.map((m: { email: string; role: string }) => [m.email, m.role]));
}

describe('invitations', () => {
  it('mails a single-use token; accepting answers a session that works as a bearer token', async () => {
    const t = await createTenant(h);
    const email = `dev@${t.slug}.test`;
    const before = h.mail().length;
    const inv = await invite(t.sessions.owner, t, `DEV@${t.slug}.test`, 'developer');
    expect(inv.statusCode).toBe(201);
    expect(inv.json()).toMatchObject({ email, role: 'developer', status: 'pending' });
    expect(Date.parse(inv.json().expires_at)).toBeGreaterThan(Date.now() + 24 * 3600_000);

    const mails = h.mail().slice(before);
    expect(mails).toHaveLength(1);
    expect(mails[0]?.to).toBe(email);
    expect(mails[0]?.text).toContain('as developer');
    const token = tokenFromMail(h, email, 'sti');
    const stored = await h.db.query<Record<string, unknown>>('SELECT * FROM strata.invitations WHERE id = $1', [
      inv.json().id,
    ]);
    expect(stored.rows).toHaveLength(1);
    expect(JSON.stringify(stored.rows[0])).not.toContain(token.slice(17));

    const acc = await accept(token);
    expect(acc.statusCode).toBe(201);
    const session = acc.json();
    expect(session).toMatchObject({ tenant_id: t.id, role: 'developer', user: { email } });
    expect(session.token).toMatch(/^sts_[a-z2-7]{12}_[A-Za-z0-9_-]{43}$/);
    const me = await h.call(session.token, 'GET', '/v1/me');
    expect(me.statusCode).toBe(200);
    expect(me.json()).toEqual({
      kind: 'user',
      id: session.user.id,
      email,
      memberships: [{ tenant_id: t.id, role: 'developer' }],
    });
    const members = await h.call(session.token, 'GET', `/v1/tenants/${t.id}/members`);
    expect(members.statusCode).toBe(200);
    expect(members.json().data).toContainEqual(
      expect.objectContaining({ user_id: session.user.id, email, role: 'developer' }),
    );
    // The session carries the developer role: it may read members but not invite.
    expectProblem(await invite(session.token, t, `x@${t.slug}.test`, 'viewer'), 403, 'forbidden');
    const invs = await h.call(t.sessions.owner, 'GET', `/v1/tenants/${t.id}/invitations?limit=200`);
    expect(invs.json().data.find((i: { id: string }) => i.id === inv.json().id)?.status).toBe('accepted');
  });

  it('a token is single-use: the second accept is 410 invitation_invalid', async () => {
    const t = await createTenant(h);
    const email = `once@${t.slug}.test`;
    expect((await invite(t.sessions.owner, t, email, 'viewer')).statusCode).toBe(201);
    const token = tokenFromMail(h, email, 'sti');
    expect((await accept(token)).statusCode).toBe(201);
    expectProblem(await accept(token), 410, 'invitation_invalid');
    expectProblem(await accept(`sti_${'a'.repeat(12)}_${'A'.repeat(43)}`), 410, 'invitation_invalid');
    expectProblem(await accept('not-a-token-at-all'), 410, 'invitation_invalid');
    const rows = await h.db.query('SELECT 1 FROM strata.memberships WHERE tenant_id = $1', [t.id]);
    expect(rows.rows).toHaveLength(2);
  });

  it('a revoked invitation cannot be accepted; an accepted one cannot be revoked', async () => {
    const t = await createTenant(h);
    const email = `revoked@${t.slug}.test`;
    const inv = await invite(t.sessions.owner, t, email, 'analyst');
    const token = tokenFromMail(h, email, 'sti');
    const rev = await h.call(t.sessions.owner, 'DELETE', `/v1/tenants/${t.id}/invitations/${inv.json().id}`);
    expect(rev.statusCode).toBe(200);
    expect(rev.json()).toMatchObject({ id: inv.json().id, status: 'revoked' });
    expectProblem(await accept(token), 410, 'invitation_invalid');
    expect(await rolesOf(t)).not.toHaveProperty(email);

    const ownerInv = (await h.call(t.sessions.owner, 'GET', `/v1/tenants/${t.id}/invitations?limit=200`))
      .json()
      .data.find((i: { email: string }) => i.email === `owner@${t.slug}.test`);
    expect(ownerInv.status).toBe('accepted');
    const late = await h.call(t.sessions.owner, 'DELETE', `/v1/tenants/${t.id}/invitations/${ownerInv.id}`);
    expectProblem(late, 404, 'not_found');
  });

  it('an expired invitation is listed as expired and answers 410', async () => {
    const t = await createTenant(h);
    const email = `late@${t.slug}.test`;
    const inv = await invite(t.sessions.owner, t, email, 'viewer');
    expect(inv.json().status).toBe('pending');
    const token = tokenFromMail(h, email, 'sti');
    await h.db.query(`UPDATE strata.invitations SET expires_at = now() - interval '1 minute' WHERE id = $1`, [
      inv.json().id,
    ]);
    const list = await h.call(t.sessions.owner, 'GET', `/v1/tenants/${t.id}/invitations?limit=200`);
    expect(list.json().data.find((i: { id: string }) => i.id === inv.json().id)?.status).toBe('expired');
    expectProblem(await accept(token), 410, 'invitation_invalid');
    expect(await rolesOf(t)).not.toHaveProperty(email);
  });

  it('inviting a member of this tenant is 409 already_member; a member of another tenant may be invited', async () => {
    const t = await createTenant(h, { roles: ['admin'] });
    const before = h.mail().length;
    expectProblem(await invite(t.sessions.owner, t, `OWNER@${t.slug}.test`, 'viewer'), 409, 'already_member');
    expectProblem(await invite(h.operatorToken, t, `admin@${t.slug}.test`, 'viewer'), 409, 'already_member');
    expect(h.mail().length).toBe(before);

    const other = await createTenant(h);
    const cross = await invite(other.sessions.owner, other, `owner@${t.slug}.test`, 'viewer');
    expect(cross.statusCode).toBe(201);
    const acc = await accept(tokenFromMail(h, `owner@${t.slug}.test`, 'sti'));
    expect(acc.statusCode).toBe(201);
    expect(acc.json().user.id).toBe(t.userIds.owner);
    const me = await h.call(acc.json().token, 'GET', '/v1/me');
    expect(me.json().memberships).toHaveLength(2);
    expect(me.json().memberships).toEqual(
      expect.arrayContaining([
        { tenant_id: t.id, role: 'owner' },
        { tenant_id: other.id, role: 'viewer' },
      ]),
    );
  });
});

describe('members', () => {
  it('changes a role and removes a member', async () => {
    const t = await createTenant(h, { roles: ['developer', 'viewer'] });
    const url = memberUrl(t, t.userIds.viewer);
    const changed = await h.call(t.sessions.owner, 'PATCH', url, { role: 'analyst' });
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toMatchObject({ user_id: t.userIds.viewer, role: 'analyst' });
    expect(changed.json().email).toBe(`viewer@${t.slug}.test`);
    expect((await h.call(t.sessions.viewer, 'GET', '/v1/me')).json().memberships).toEqual([
      { tenant_id: t.id, role: 'analyst' },
    ]);
    expectProblem(await h.call(t.sessions.developer, 'PATCH', url, { role: 'admin' }), 403, 'forbidden');
    const unknown = memberUrl(t, randomUUID());
    expectProblem(await h.call(t.sessions.owner, 'PATCH', unknown, { role: 'admin' }), 404, 'not_found');
    expect((await rolesOf(t))[`viewer@${t.slug}.test`]).toBe('analyst');

    const removed = await h.call(t.sessions.owner, 'DELETE', url);
    expect(removed.statusCode).toBe(204);
    expect(await rolesOf(t)).not.toHaveProperty(`viewer@${t.slug}.test`);
    expectProblem(await h.call(t.sessions.viewer, 'GET', `/v1/tenants/${t.id}`), 404, 'not_found');
    expect((await h.call(t.sessions.viewer, 'GET', '/v1/me')).json().memberships).toEqual([]);
    expectProblem(await h.call(t.sessions.owner, 'DELETE', url), 404, 'not_found');
  });

  it('the last owner can be neither removed nor demoted until a second owner exists', async () => {
    const t = await createTenant(h);
    const first = memberUrl(t, t.userIds.owner);
    expectProblem(await h.call(t.sessions.owner, 'PATCH', first, { role: 'admin' }), 409, 'last_owner');
    expectProblem(await h.call(t.sessions.owner, 'DELETE', first), 409, 'last_owner');
    expectProblem(await h.call(h.operatorToken, 'DELETE', first), 409, 'last_owner');
    expect((await rolesOf(t))[`owner@${t.slug}.test`]).toBe('owner');

    const email = `second@${t.slug}.test`;
    expect((await invite(t.sessions.owner, t, email, 'owner')).statusCode).toBe(201);
    const second = (await accept(tokenFromMail(h, email, 'sti'))).json();
    expect(second.role).toBe('owner');
    const demoted = await h.call(t.sessions.owner, 'PATCH', first, { role: 'admin' });
    expect(demoted.statusCode).toBe(200);
    expect(demoted.json().role).toBe('admin');

    // Now the second owner is the last one.
    const secondUrl = memberUrl(t, second.user.id);
    expectProblem(await h.call(second.token, 'DELETE', secondUrl), 409, 'last_owner');
    expectProblem(await h.call(second.token, 'PATCH', secondUrl, { role: 'viewer' }), 409, 'last_owner');
    expect((await h.call(second.token, 'PATCH', first, { role: 'owner' })).statusCode).toBe(200);
    expect((await h.call(t.sessions.owner, 'DELETE', secondUrl)).statusCode).toBe(204);
    expect(await rolesOf(t)).toEqual({ [`owner@${t.slug}.test`]: 'owner' });
  });

  it('an admin cannot grant the owner role or change or remove an owner; an owner can', async () => {
    const t = await createTenant(h, { roles: ['admin', 'developer'] });
    const owner = memberUrl(t, t.userIds.owner);
    const dev = memberUrl(t, t.userIds.developer);
    for (const token of [t.sessions.admin, t.adminKey]) {
      expectProblem(await h.call(token, 'PATCH', dev, { role: 'owner' }), 403, 'forbidden');
      expectProblem(await h.call(token, 'PATCH', owner, { role: 'admin' }), 403, 'forbidden');
      expectProblem(await h.call(token, 'DELETE', owner), 403, 'forbidden');
      expectProblem(await invite(token, t, `boss@${t.slug}.test`, 'owner'), 403, 'forbidden');
    }
    expect(await rolesOf(t)).toEqual({
      [`owner@${t.slug}.test`]: 'owner',
      [`admin@${t.slug}.test`]: 'admin',
      [`developer@${t.slug}.test`]: 'developer',
    });
    // Below owner, an admin manages roles freely.
    expect((await h.call(t.sessions.admin, 'PATCH', dev, { role: 'viewer' })).json().role).toBe('viewer');

    const promoted = await h.call(t.sessions.owner, 'PATCH', dev, { role: 'owner' });
    expect(promoted.statusCode).toBe(200);
    expect(promoted.json().role).toBe('owner');
    expectProblem(await h.call(t.sessions.admin, 'PATCH', dev, { role: 'developer' }), 403, 'forbidden');
    expect((await h.call(t.sessions.owner, 'PATCH', dev, { role: 'developer' })).json().role).toBe('developer');
    expect((await h.call(t.sessions.owner, 'PATCH', dev, { role: 'owner' })).statusCode).toBe(200);
    expect((await h.call(t.sessions.owner, 'DELETE', dev)).statusCode).toBe(204);
    expect((await invite(t.sessions.owner, t, `boss@${t.slug}.test`, 'owner')).statusCode).toBe(201);
  });

  it('the free plan allows 3 seats (members plus pending invitations); the 4th invite is quota_exceeded', async () => {
    const t = await createTenant(h, { plan: 'free' });
    const ent = await h.call(t.sessions.owner, 'GET', `/v1/tenants/${t.id}/entitlements`);
    expect(ent.json().quotas.members).toBe(3);
    expect((await invite(t.sessions.owner, t, `a@${t.slug}.test`, 'viewer')).statusCode).toBe(201);
    expect((await accept(tokenFromMail(h, `a@${t.slug}.test`, 'sti'))).statusCode).toBe(201);
    const b = await invite(t.sessions.owner, t, `b@${t.slug}.test`, 'viewer');
    expect(b.statusCode).toBe(201);

    const before = h.mail().length;
    const over = await invite(t.sessions.owner, t, `c@${t.slug}.test`, 'viewer');
    expectProblem(over, 403, 'quota_exceeded');
    expect(over.json()).toMatchObject({
      limit: 'members',
      limit_value: 3,
      usage: 3,
      current_plan: 'free',
      required_plan: 'starter',
    });
    expectProblem(await invite(h.operatorToken, t, `c@${t.slug}.test`, 'viewer'), 403, 'quota_exceeded');
    expect(h.mail().length).toBe(before);

    // A revoked or expired invitation frees its seat.
    await h.call(t.sessions.owner, 'DELETE', `/v1/tenants/${t.id}/invitations/${b.json().id}`);
    const c = await invite(t.sessions.owner, t, `c@${t.slug}.test`, 'viewer');
    expect(c.statusCode).toBe(201);
    await h.db.query(`UPDATE strata.invitations SET expires_at = now() - interval '1 minute' WHERE id = $1`, [
      c.json().id,
    ]);
    expect((await invite(t.sessions.owner, t, `d@${t.slug}.test`, 'viewer')).statusCode).toBe(201);
    expectProblem(await invite(t.sessions.owner, t, `e@${t.slug}.test`, 'viewer'), 403, 'quota_exceeded');
  });

  it('lists members and invitations page by page', async () => {
    const t = await createTenant(h, { roles: ['admin', 'developer', 'analyst', 'viewer'] });
    await createTenant(h, { roles: ['admin'] });
    expect((await invite(t.sessions.owner, t, `pending@${t.slug}.test`, 'viewer')).statusCode).toBe(201);

    const members = await collect<{ user_id: string; role: string }>(t.sessions.viewer, `/v1/tenants/${t.id}/members`);
    expect(members.map((m) => m.user_id).sort()).toEqual(Object.values(t.userIds).sort());
    expect(members.map((m) => m.role).sort()).toEqual(['admin', 'analyst', 'developer', 'owner', 'viewer']);
    const all = await h.call(t.sessions.viewer, 'GET', `/v1/tenants/${t.id}/members?limit=200`);
    expect(all.json()).toMatchObject({ next_cursor: null });
    expect(all.json().data).toEqual(members);

    const invitations = await collect<{ id: string; email: string; status: string }>(
      t.sessions.owner,
      `/v1/tenants/${t.id}/invitations`,
    );
    expect(new Set(invitations.map((i) => i.id)).size).toBe(6);
    expect(invitations.every((i) => i.email.endsWith(`@${t.slug}.test`))).toBe(true);
    expect(invitations.filter((i) => i.status === 'pending').map((i) => i.email)).toEqual([`pending@${t.slug}.test`]);
    expect(invitations.filter((i) => i.status === 'accepted')).toHaveLength(5);

    const bad = await h.call(t.sessions.owner, 'GET', `/v1/tenants/${t.id}/members?limit=1&cursor=bm90LWEtdXVpZA`);
    expectProblem(bad, 400, 'bad_request');
  });
});
