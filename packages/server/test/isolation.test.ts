import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TENANT_DATA_TABLES } from '../src/modules/tenants/service.js';
import { sqlLiteral } from '../src/platform/db/driver.js';
import { openPostgres } from '../src/platform/db/pg-driver.js';
import { APP_ROLE, readInTenant, withTenant } from '../src/platform/db/tenant-context.js';
import { createTenant, type Harness, startHarness, type TestTenant } from './harness.js';
import { operationsOf } from './openapi-examples.js';

let h: Harness;
let a: TestTenant;
let b: TestTenant;

beforeAll(async () => {
  h = await startHarness();
  a = await createTenant(h, { roles: ['admin'] });
  b = await createTenant(h, { roles: ['admin', 'viewer'] });
});
afterAll(async () => {
  await h?.close();
});

/** Tables (schema-qualified) that have a tenant_id column, found from the catalog so new tables are covered. */
async function tenantTables(): Promise<string[]> {
  const { rows } = await h.db.query<{ t: string }>(
    `SELECT format('%I.%I', table_schema, table_name) AS t FROM information_schema.columns
     WHERE column_name = 'tenant_id' AND table_schema IN ('strata', 'strata_data') ORDER BY 1`,
  );
  return rows.map((r) => r.t);
}

describe('isolation enforced by the database', () => {
  it('with no tenant context every tenant table returns zero rows, even right after a transaction that set one', async () => {
    const tables = await tenantTables();
    expect(tables).toEqual(expect.arrayContaining(['strata.memberships', 'strata.api_keys', 'strata.invitations']));
    await h.db.query(`INSERT INTO strata_data.tenant_sequences (tenant_id) VALUES ($1), ($2) ON CONFLICT DO NOTHING`, [
      a.id,
      b.id,
    ]);
    // Something exists to hide: as tenant A, A's rows are visible.
    const seenAsA = await withTenant(h.db, a.id, (tx) => tx.query('SELECT count(*)::int AS n FROM strata.memberships'));
    expect((seenAsA.rows[0] as { n: number }).n).toBeGreaterThan(0);
    for (const table of tables) {
      const none = await h.db.transaction(
        (tx) => tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`),
        `SET LOCAL ROLE ${APP_ROLE};`,
      );
      expect(none.rows[0]?.n, `${table} without context`).toBe(0);
      const empty = await h.db.transaction(
        (tx) => tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`),
        `SET LOCAL ROLE ${APP_ROLE}; SELECT set_config('strata.tenant_id', '', true);`,
      );
      expect(empty.rows[0]?.n, `${table} with an empty context`).toBe(0);
      const asA = await withTenant(h.db, a.id, (tx) =>
        tx.query<{ other: number }>(`SELECT count(*) FILTER (WHERE tenant_id <> $1)::int AS other FROM ${table}`, [
          a.id,
        ]),
      );
      expect(asA.rows[0]?.other, `${table} rows of other tenants seen as A`).toBe(0);
    }
  });

  it('a connection whose previous transaction had a tenant context sees zero rows in the next one', async () => {
    // One connection, so the second transaction runs where the first left strata.tenant_id = ''.
    const one = h.url ? openPostgres(h.url, { max: 1 }) : h.db;
    try {
      const asA = await withTenant(one, a.id, (tx) =>
        tx.query<{ n: number }>('SELECT count(*)::int AS n FROM strata.api_keys'),
      );
      expect(asA.rows[0]?.n).toBeGreaterThan(0);
      const after = await one.transaction(
        (tx) =>
          tx.query<{ n: number; setting: string | null }>(
            `SELECT count(*)::int AS n, current_setting('strata.tenant_id', true) AS setting FROM strata.api_keys`,
          ),
        `SET LOCAL ROLE ${APP_ROLE};`,
      );
      expect(after.rows[0]).toEqual({ n: 0, setting: '' });
    } finally {
      if (one !== h.db) await one.close();
    }
  });

  it("purge's list of tenant data tables is every tenant table of the data schema", async () => {
    const dataTables = (await tenantTables()).filter((t) => t.startsWith('strata_data.'));
    expect([...TENANT_DATA_TABLES].sort()).toEqual(dataTables.sort());
  });

  it('refuses writes of another tenant_id under a tenant context', async () => {
    await expect(
      withTenant(h.db, a.id, (tx) =>
        tx.query(`INSERT INTO strata.memberships (tenant_id, user_id, role) VALUES ($1, $2, 'owner')`, [
          b.id,
          a.userIds.owner,
        ]),
      ),
    ).rejects.toThrow(/row-level security/);
  });

  it('catalog: every tenant table has FORCE RLS and a tenant policy; the app role owns nothing and cannot bypass RLS', async () => {
    const { rows } = await h.db.query<{
      t: string;
      rls: boolean;
      force: boolean;
      policies: string[] | null;
      owner: string;
    }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS t, c.relrowsecurity AS rls, c.relforcerowsecurity AS force,
              pg_get_userbyid(c.relowner) AS owner,
              (SELECT array_agg(p.qual) FROM pg_policies p WHERE p.schemaname = n.nspname AND p.tablename = c.relname
                 AND '${APP_ROLE}' = ANY (p.roles)) AS policies
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p') AND EXISTS (
         SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)`,
    );
    expect(rows.length).toBe((await tenantTables()).length);
    for (const r of rows) {
      expect(r.rls, `${r.t} RLS enabled`).toBe(true);
      expect(r.force, `${r.t} RLS forced`).toBe(true);
      expect(
        r.policies?.some((q) => q.includes('current_tenant_id()')),
        `${r.t} tenant policy`,
      ).toBe(true);
      expect(r.owner).not.toBe(APP_ROLE);
    }
    const role = await h.db.query<{ rolsuper: boolean; rolbypassrls: boolean; owns: number }>(
      `SELECT rolsuper, rolbypassrls,
              (SELECT count(*)::int FROM pg_class WHERE relowner = r.oid) AS owns
       FROM pg_roles r WHERE rolname = $1`,
      [APP_ROLE],
    );
    expect(role.rows[0]).toEqual({ rolsuper: false, rolbypassrls: false, owns: 0 });
    // Tenant data tables give the control role no way in.
    const systemOnData = await h.db.query(
      `SELECT tablename FROM pg_policies WHERE schemaname = 'strata_data' AND 'strata_system' = ANY (roles)`,
    );
    expect(systemOnData.rows).toEqual([]);
  });
});

describe('one-round-trip reads (readInTenant)', () => {
  it("see only the context tenant's rows, and leave the connection clean after success and after an error", async () => {
    for (const t of [a, b]) {
      await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/collections`, { name: 'rt' });
      await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/collections/rt/documents`, {
        id: 'same',
        data: { t: t.id },
      });
    }
    const asA = await readInTenant<{ tenant_id: string; body: { t: string } }>(
      h.db,
      a.id,
      `SELECT tenant_id, body FROM strata_data.documents WHERE collection = ${sqlLiteral('rt')} AND id = ${sqlLiteral('same')}`,
    );
    expect(asA.rows).toEqual([{ tenant_id: a.id, body: { t: a.id } }]);
    const everything = await readInTenant<{ n: number }>(
      h.db,
      a.id,
      'SELECT count(*)::int AS n FROM strata_data.documents WHERE tenant_id <> ' + sqlLiteral(a.id),
    );
    expect(everything.rows[0]?.n).toBe(0);

    await expect(readInTenant(h.db, a.id, 'SELECT 1 / 0')).rejects.toThrow(/division by zero/);
    // The failed script was rolled back: the next work on the same pool has no role or context left over.
    for (let i = 0; i < 12; i++) {
      const r = await h.db.query<{ role: string; ctx: string | null }>(
        "SELECT current_user AS role, nullif(current_setting('strata.tenant_id', true), '') AS ctx",
      );
      expect(r.rows[0]?.role).not.toBe(APP_ROLE);
      expect(r.rows[0]?.ctx ?? null).toBeNull();
    }
  });

  it('sqlLiteral refuses anything that would need quoting', () => {
    expect(sqlLiteral('note-1.a:b_c')).toBe("'note-1.a:b_c'");
    expect(sqlLiteral(42)).toBe('42');
    for (const bad of ["a'b", 'a\\b', 'a b', 'x;--', '$1', 'é']) expect(() => sqlLiteral(bad), bad).toThrow();
    expect(() => sqlLiteral(1.5)).toThrow();
  });
});

describe("tenant A's credentials on tenant B's paths", () => {
  it('get 404 on every tenant-scoped route of the OpenAPI document, and change nothing', async () => {
    const doc = (await h.call(undefined, 'GET', '/openapi.json')).json();
    const ops = operationsOf(doc).filter((o) => o.path.includes('{tenantId}'));
    expect(ops.length).toBeGreaterThanOrEqual(12);
    const bKey = (await h.call(b.adminKey, 'GET', `/v1/tenants/${b.id}/api-keys`)).json().data[0].id;
    const bInvite = await h.call(b.adminKey, 'POST', `/v1/tenants/${b.id}/invitations`, {
      email: 'pending@b.test',
      role: 'viewer',
    });
    const ids: Record<string, string> = {
      tenantId: b.id,
      userId: b.userIds.viewer as string,
      keyId: bKey,
      invitationId: bInvite.json().id,
      collection: (await h.call(b.adminKey, 'POST', `/v1/tenants/${b.id}/collections`, { name: 'b_private' })).json()
        .name,
      id: (
        await h.call(b.adminKey, 'POST', `/v1/tenants/${b.id}/collections/b_private/documents`, { data: { s: 1 } })
      ).json().id,
      index: 'b_index',
    };
    await h.call(b.adminKey, 'POST', `/v1/tenants/${b.id}/collections/b_private/indexes`, {
      name: 'b_index',
      path: 's',
    });
    const tables = await tenantTables();
    const snapshot = async () =>
      withTenant(h.db, b.id, async (tx) => {
        const parts: string[] = [];
        for (const t of tables) parts.push(JSON.stringify((await tx.query(`SELECT * FROM ${t} ORDER BY 1, 2`)).rows));
        const tenant = await tx.query('SELECT * FROM strata.tenants WHERE id = $1', [b.id]);
        return parts.join('|') + JSON.stringify(tenant.rows);
      });
    const before = await snapshot();
    for (const token of [a.adminKey, a.sessions.owner as string]) {
      for (const op of ops) {
        const url = op.path.replace(/\{(\w+)\}/g, (_, name: string) => ids[name] ?? crypto.randomUUID());
        const res = await h.call(token, op.method as 'GET', url, op.body);
        expect(res.statusCode, `${op.method} ${op.path}: ${res.body}`).toBe(404);
        expect(res.headers['content-type']).toContain('application/problem+json');
        expect(res.json().code).toBe('not_found');
      }
    }
    expect(await snapshot()).toBe(before);
    // The same calls are not simply broken: with B's own admin key the reads succeed.
    expect((await h.call(b.adminKey, 'GET', `/v1/tenants/${b.id}/members`)).statusCode).toBe(200);
  });
});
