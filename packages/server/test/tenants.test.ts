import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, type Harness, startHarness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe('tenant lifecycle', () => {
  it('creates, reads, lists with pagination, renames and changes plan', async () => {
    const a = await createTenant(h, { plan: 'starter' });
    await createTenant(h);
    await createTenant(h);
    const got = await h.call(a.adminKey, 'GET', `/v1/tenants/${a.id}`);
    expect(got.statusCode).toBe(200);
    expect(got.json()).toMatchObject({
      id: a.id,
      slug: a.slug,
      plan: 'starter',
      status: 'active',
      data_region: 'local',
    });

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const qs: string = cursor ? `&cursor=${cursor}` : '';
      const page = await h.call(h.operatorToken, 'GET', `/v1/tenants?limit=2${qs}`);
      expect(page.statusCode).toBe(200);
      const body = page.json();
      expect(body.data.length).toBeLessThanOrEqual(2);
      seen.push(...body.data.map((t: { id: string }) => t.id));
      cursor = body.next_cursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(seen).toContain(a.id);

    const renamed = await h.call(a.sessions.owner, 'PATCH', `/v1/tenants/${a.id}`, { name: 'Renamed' });
    expect(renamed.statusCode).toBe(200);
    expect(renamed.json().name).toBe('Renamed');
    const planByTenant = await h.call(a.sessions.owner, 'PATCH', `/v1/tenants/${a.id}`, { plan: 'enterprise' });
    expect(planByTenant.statusCode).toBe(403);
    const planByOperator = await h.call(h.operatorToken, 'PATCH', `/v1/tenants/${a.id}`, { plan: 'professional' });
    expect(planByOperator.json().plan).toBe('professional');
    const ent = await h.call(a.adminKey, 'GET', `/v1/tenants/${a.id}/entitlements`);
    expect(ent.json()).toMatchObject({
      plan: 'professional',
      features: { field_encryption: true, byod_datastore: false },
    });
  });

  it('refuses a taken slug, an unknown plan and a region outside the allowed set', async () => {
    const a = await createTenant(h);
    const dup = await h.call(h.operatorToken, 'POST', '/v1/tenants', { slug: a.slug, name: 'x' });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().code).toBe('slug_taken');
    const plan = await h.call(h.operatorToken, 'POST', '/v1/tenants', { slug: 'noplan', name: 'x', plan: 'gold' });
    expect(plan.json().code).toBe('unknown_plan');
    const region = await h.call(h.operatorToken, 'POST', '/v1/tenants', {
      slug: 'noregion',
      name: 'x',
      data_region: 'mars',
    });
    expect(region.json().code).toBe('region_not_allowed');
    const list = await h.call(h.operatorToken, 'GET', '/v1/tenants?limit=200');
    expect(list.json().data.map((t: { slug: string }) => t.slug)).not.toContain('noplan');
  });

  it('suspends: tenant credentials get 403 tenant_suspended until resumed; the operator still reads it', async () => {
    const a = await createTenant(h);
    const s = await h.call(h.operatorToken, 'POST', `/v1/tenants/${a.id}/suspend`);
    expect(s.json().status).toBe('suspended');
    for (const token of [a.adminKey, a.sessions.owner]) {
      const r = await h.call(token, 'GET', `/v1/tenants/${a.id}`);
      expect(r.statusCode).toBe(403);
      expect(r.json().code).toBe('tenant_suspended');
    }
    expect((await h.call(h.operatorToken, 'GET', `/v1/tenants/${a.id}`)).statusCode).toBe(200);
    const again = await h.call(h.operatorToken, 'POST', `/v1/tenants/${a.id}/suspend`);
    expect(again.json().code).toBe('conflict');
    await h.call(h.operatorToken, 'POST', `/v1/tenants/${a.id}/resume`);
    expect((await h.call(a.adminKey, 'GET', `/v1/tenants/${a.id}`)).statusCode).toBe(200);
  });

  it('deletes softly, can restore within the grace period, and purges after it', async () => {
    const a = await createTenant(h);
    const del = await h.call(h.operatorToken, 'DELETE', `/v1/tenants/${a.id}`);
    expect(del.json()).toMatchObject({ status: 'deleted' });
    expect(Date.parse(del.json().purge_after)).toBeGreaterThan(Date.now());
    expect((await h.call(a.adminKey, 'GET', `/v1/tenants/${a.id}`)).statusCode).toBe(404);
    await h.call(h.operatorToken, 'POST', `/v1/tenants/${a.id}/restore`);
    expect((await h.call(a.adminKey, 'GET', `/v1/tenants/${a.id}`)).statusCode).toBe(200);

    await h.call(h.operatorToken, 'DELETE', `/v1/tenants/${a.id}`);
    expect(await h.strata.services.tenants.purgeDue(new Date())).not.toContain(a.id);
    const later = new Date(Date.now() + (h.config.purgeGraceHours + 1) * 3600_000);
    expect(await h.strata.services.tenants.purgeDue(later)).toContain(a.id);
    expect((await h.call(h.operatorToken, 'GET', `/v1/tenants/${a.id}`)).statusCode).toBe(404);
    const keys = await h.db.query('SELECT 1 FROM strata.api_keys WHERE tenant_id = $1', [a.id]);
    expect(keys.rows).toHaveLength(0);
  });
});
