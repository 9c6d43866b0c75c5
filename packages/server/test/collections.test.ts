import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTenant } from '../src/platform/db/tenant-context.js';
import { createTenant, type Harness, startHarness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe('collections', () => {
  it('creates, lists, reads, changes the schema of and deletes a collection', async () => {
    const t = await createTenant(h);
    const base = `/v1/tenants/${t.id}/collections`;
    const schema = { type: 'object', required: ['title'], properties: { title: { type: 'string' } } };
    const created = await h.call(t.adminKey, 'POST', base, { name: 'articles', json_schema: schema });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ name: 'articles', json_schema: schema });
    await h.call(t.adminKey, 'POST', base, { name: 'authors' });

    const list = await h.call(t.adminKey, 'GET', base);
    expect(list.json().data.map((c: { name: string }) => c.name)).toEqual(['articles', 'authors']);
    expect((await h.call(t.adminKey, 'GET', `${base}/authors`)).json().json_schema).toBeNull();

    const patched = await h.call(t.adminKey, 'PATCH', `${base}/articles`, { json_schema: null });
    expect(patched.json().json_schema).toBeNull();
    expect(Date.parse(patched.json().updated_at)).toBeGreaterThanOrEqual(Date.parse(created.json().updated_at));

    expect((await h.call(t.adminKey, 'DELETE', `${base}/articles`)).statusCode).toBe(204);
    expect((await h.call(t.adminKey, 'GET', `${base}/articles`)).json().code).toBe('not_found');
    expect((await h.call(t.adminKey, 'DELETE', `${base}/articles`)).statusCode).toBe(404);
  });

  it('refuses a duplicate name, a bad name and a schema that is not JSON Schema, writing nothing', async () => {
    const t = await createTenant(h);
    const base = `/v1/tenants/${t.id}/collections`;
    await h.call(t.adminKey, 'POST', base, { name: 'things' });
    const dup = await h.call(t.adminKey, 'POST', base, { name: 'things' });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().code).toBe('conflict');
    for (const name of ['Things', '1things', 'a-b', 'x'.repeat(64), "t'; drop table x; --"]) {
      const bad = await h.call(t.adminKey, 'POST', base, { name });
      expect(bad.statusCode, name).toBe(400);
      expect(bad.json().code).toBe('validation_failed');
    }
    const badSchema = await h.call(t.adminKey, 'POST', base, { name: 'bad', json_schema: { type: 'no-such-type' } });
    expect(badSchema.statusCode).toBe(400);
    expect(badSchema.json().errors[0].path).toBe('body/json_schema');
    const list = await h.call(t.adminKey, 'GET', base);
    expect(list.json().data.map((c: { name: string }) => c.name)).toEqual(['things']);
  });

  it("enforces the plan's collection quota and names the plan that allows more", async () => {
    const t = await createTenant(h, { plan: 'free' });
    const base = `/v1/tenants/${t.id}/collections`;
    for (let i = 0; i < 10; i++) {
      expect((await h.call(t.sessions.owner, 'POST', base, { name: `c${i}` })).statusCode).toBe(201);
    }
    const over = await h.call(t.sessions.owner, 'POST', base, { name: 'c10' });
    expect(over.statusCode).toBe(403);
    expect(over.json()).toMatchObject({
      code: 'quota_exceeded',
      limit: 'collections',
      limit_value: 10,
      usage: 10,
      required_plan: 'starter',
    });
    expect((await h.call(t.sessions.owner, 'GET', base)).json().data).toHaveLength(10);
  });

  it("is removed with the tenant's data, documents, change feed and indexes when the tenant is purged", async () => {
    const t = await createTenant(h);
    const base = `/v1/tenants/${t.id}/collections`;
    await h.call(t.adminKey, 'POST', base, { name: 'doomed', vector: { field: 'e', dimensions: 2 } });
    expect((await h.call(t.adminKey, 'POST', `${base}/doomed/indexes`, { name: 'by_k', path: 'k' })).statusCode).toBe(
      201,
    );
    await h.call(t.adminKey, 'POST', `${base}/doomed/documents`, { data: { k: 1, e: [1, 2] } });
    const indexesOf = async () =>
      (
        await h.db.query<{ indexname: string }>(
          "SELECT indexname FROM pg_indexes WHERE schemaname = 'strata_data' AND strpos(indexdef, $1) > 0",
          [t.id],
        )
      ).rows.map((r) => r.indexname);
    expect((await indexesOf()).length).toBeGreaterThanOrEqual(1);

    await h.call(h.operatorToken, 'DELETE', `/v1/tenants/${t.id}`);
    const later = new Date(Date.now() + (h.config.purgeGraceHours + 1) * 3600_000);
    expect(await h.strata.services.tenants.purgeDue(later)).toContain(t.id);
    for (const table of ['collections', 'documents', 'changes', 'tenant_sequences']) {
      const left = await withTenant(h.db, t.id, (tx) => tx.query(`SELECT * FROM strata_data.${table}`));
      expect(left.rows, table).toEqual([]);
    }
    expect(await indexesOf()).toEqual([]);
  });
});
