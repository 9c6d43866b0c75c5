import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStrata } from '../src/main.js';
import { DatastoreRouter } from '../src/modules/placement/router.js';
import type { Database } from '../src/platform/db/driver.js';
import { openPostgres } from '../src/platform/db/pg-driver.js';
import { createLogger } from '../src/platform/logger.js';
import { openObjectStore } from '../src/platform/objects/open.js';
import { driver, type Harness, startHarness } from './harness.js';
import { adminUrl, databaseUrlFor } from './pg-url.js';
import { startS3Server } from './s3-server.js';

/**
 * A region with a shared datastore of its own: on PostgreSQL a second database on the same server, on the
 * embedded defaults a second PGlite directory. Tenants of that region must have their data there and only
 * there; tenants of the other region must not.
 */

let h: Harness;
let regionUrl: string;
let dropRegion: () => Promise<void> = async () => {};

beforeAll(async () => {
  if (driver === 'postgres') {
    const base = process.env.STRATA_TEST_DATABASE_URL as string;
    const name = `strata_eu_${randomBytes(4).toString('hex')}`;
    const admin = openPostgres(adminUrl(base), { max: 1 });
    await admin.exec(`CREATE DATABASE ${name}`);
    regionUrl = databaseUrlFor(base, name);
    dropRegion = async () => {
      await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.close();
    };
  } else {
    regionUrl = `pglite:${mkdtempSync(join(tmpdir(), 'strata-eu-'))}`;
  }
  h = await startHarness({ STRATA_REGIONS: 'local,eu', STRATA_SHARED_DATASTORES: `eu=${regionUrl}` });
});
afterAll(async () => {
  await h?.close();
  await dropRegion();
});

/** An enterprise tenant whose data is in `region` (the first allowed region) and a data:write key for it. */
async function tenantIn(region: string, allowed: string[] = [region]) {
  const slug = `p${randomBytes(4).toString('hex')}`;
  const created = await h.call(h.operatorToken, 'POST', '/v1/tenants', {
    slug,
    name: slug,
    plan: 'enterprise',
    allowed_regions: allowed,
  });
  expect(created.statusCode, created.body).toBe(201);
  const id = created.json().id as string;
  const key = await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/api-keys`, {
    name: 'app',
    scopes: ['data:write'],
  });
  return { id, key: key.json().secret as string, region };
}

/** Rows of the tenant in a table of a datastore, read directly as the datastore's owner (no tenant context). */
async function rowsIn(db: Database, table: string, tenantId: string): Promise<number> {
  const r = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM strata_data.${table} WHERE tenant_id = $1`, [
    tenantId,
  ]);
  return r.rows[0]?.n ?? 0;
}

function putFile(token: string, tenantId: string, key: string, bytes: Buffer) {
  return h.strata.app.inject({
    method: 'PUT',
    url: `/v1/tenants/${tenantId}/files/${key}`,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    payload: bytes,
  });
}
function getFile(token: string, tenantId: string, key: string) {
  return h.strata.app.inject({
    method: 'GET',
    url: `/v1/tenants/${tenantId}/files/${key}`,
    headers: { authorization: `Bearer ${token}` },
  });
}

type Acked = Map<string, { version: number; data: unknown }>;

/**
 * Runs `during` while four writers keep creating and updating documents of a collection; returns what the
 * server acknowledged (id -> version and data) and every refusal (status and Retry-After).
 */
async function writesDuring<T>(key: string, collectionUrl: string, during: () => Promise<T>) {
  const acked: Acked = new Map();
  const refusals: { status: number; retryAfter: unknown }[] = [];
  let stop = false;
  const writer = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const docId = `w${w}-${i % 40}`;
      const data = { w, i };
      const r = await h.call(key, 'PUT', `${collectionUrl}/documents/${docId}`, { data });
      if (r.statusCode === 200 || r.statusCode === 201) acked.set(docId, { version: r.json().version, data });
      else refusals.push({ status: r.statusCode, retryAfter: r.headers['retry-after'] });
    }
  };
  const writers = [0, 1, 2, 3].map(writer);
  await new Promise((r) => setTimeout(r, 100));
  const result = await during();
  await new Promise((r) => setTimeout(r, 100)); // writes continue against the new datastore
  stop = true;
  await Promise.all(writers);
  expect(acked.size).toBeGreaterThan(0);
  return { acked, refusals, result };
}

/** Every acknowledged write is readable at (at least) its acknowledged version, with its data when unchanged since. */
async function expectAcknowledged(key: string, collectionUrl: string, acked: Acked) {
  for (const [docId, want] of acked) {
    const got = await h.call(key, 'GET', `${collectionUrl}/documents/${docId}`);
    expect(got.statusCode, docId).toBe(200);
    expect(got.json().version).toBeGreaterThanOrEqual(want.version);
    if (got.json().version === want.version) expect(got.json().data).toEqual(want.data);
  }
}

describe('regional shared datastores', () => {
  it("keep a tenant's collections, documents and change feed in its region's datastore only", async () => {
    const eu = await tenantIn('eu');
    const local = await tenantIn('local');
    for (const t of [eu, local]) {
      const base = `/v1/tenants/${t.id}/collections`;
      expect(
        (await h.call(t.key, 'POST', base, { name: 'notes', vector: { field: 'v', dimensions: 2 } })).statusCode,
      ).toBe(201);
      const batch = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/batch`, {
        operations: Array.from({ length: 5 }, (_, i) => ({
          op: 'create',
          collection: 'notes',
          id: `n${i}`,
          data: { i, v: [i, 1] },
        })),
      });
      expect(batch.statusCode, batch.body).toBe(200);
      expect((await h.call(t.key, 'POST', `${base}/notes/indexes`, { name: 'by_i', path: 'i' })).statusCode).toBe(201);
    }
    const euDb = await h.strata.platform.router.forRegion('eu');
    const control = h.db;
    expect(euDb).not.toBe(control);

    for (const table of ['collections', 'documents', 'changes', 'tenant_sequences']) {
      expect(await rowsIn(euDb, table, eu.id), `eu tenant's ${table} in the eu datastore`).toBeGreaterThan(0);
      expect(await rowsIn(control, table, eu.id), `eu tenant's ${table} in the control database`).toBe(0);
      expect(await rowsIn(control, table, local.id), `local tenant's ${table} in the control database`).toBeGreaterThan(
        0,
      );
      expect(await rowsIn(euDb, table, local.id), `local tenant's ${table} in the eu datastore`).toBe(0);
    }
    // Its indexes are built there too.
    const indexes = async (db: Database, tenantId: string) =>
      (
        await db.query("SELECT 1 FROM pg_indexes WHERE schemaname = 'strata_data' AND strpos(indexdef, $1) > 0", [
          tenantId,
        ])
      ).rows.length;
    expect(await indexes(euDb, eu.id)).toBeGreaterThan(0);
    expect(await indexes(control, eu.id)).toBe(0);

    // The whole data API works against the region's datastore.
    const docs = `/v1/tenants/${eu.id}/collections/notes/documents`;
    expect((await h.call(eu.key, 'GET', `${docs}/n3`)).json().data).toEqual({ i: 3, v: [3, 1] });
    const query = await h.call(eu.key, 'POST', `/v1/tenants/${eu.id}/collections/notes/query`, {
      filter: { path: 'i', op: 'gte', value: 3 },
      count: true,
    });
    expect(query.json().count).toBe(2);
    const search = await h.call(eu.key, 'POST', `/v1/tenants/${eu.id}/collections/notes/search`, {
      vector: [4, 1],
      k: 1,
      metric: 'l2',
    });
    expect(search.json().data[0].document.id).toBe('n4');
    const feed = await h.call(eu.key, 'GET', `/v1/tenants/${eu.id}/changes`);
    expect(feed.json().checkpoint.seq).toBe(5);
    expect((await h.call(eu.key, 'DELETE', `${docs}/n0`)).statusCode).toBe(204);
    expect((await h.call(eu.key, 'GET', `/v1/tenants/${eu.id}/changes?since=5`)).json().changes[0]).toMatchObject({
      id: 'n0',
      deleted: true,
    });
  });

  it("the region's datastore enforces isolation itself: forced row-level security and the same migrations", async () => {
    const euDb = await h.strata.platform.router.forRegion('eu');
    const tables = await euDb.query<{ relname: string; forced: boolean }>(
      `SELECT c.relname, c.relforcerowsecurity AS forced FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'strata_data' AND c.relkind = 'r' ORDER BY 1`,
    );
    expect(tables.rows.map((r) => r.relname)).toEqual([
      'changes',
      'collections',
      'documents',
      'files',
      'idempotency',
      'tenant_sequences',
    ]);
    expect(tables.rows.every((r) => r.forced)).toBe(true);
    const applied = await euDb.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM strata.schema_migrations WHERE set_name = 'tenant'",
    );
    const expected = await h.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM strata.schema_migrations WHERE set_name = 'tenant'",
    );
    expect(applied.rows[0]?.n).toBe(expected.rows[0]?.n);
    // No control-plane data in a tenant datastore.
    const control = await euDb.query(
      "SELECT 1 FROM information_schema.tables WHERE table_schema = 'strata' AND table_name = 'tenants'",
    );
    expect(control.rows).toEqual([]);
  });

  it("purging a tenant removes its data from its region's datastore", async () => {
    const eu = await tenantIn('eu');
    await h.call(eu.key, 'POST', `/v1/tenants/${eu.id}/collections`, { name: 'gone' });
    await h.call(eu.key, 'POST', `/v1/tenants/${eu.id}/collections/gone/documents`, { data: { a: 1 } });
    const euDb = await h.strata.platform.router.forRegion('eu');
    expect(await rowsIn(euDb, 'documents', eu.id)).toBe(1);
    await h.call(h.operatorToken, 'DELETE', `/v1/tenants/${eu.id}`);
    const later = new Date(Date.now() + (h.config.purgeGraceHours + 1) * 3600_000);
    expect(await h.strata.services.tenants.purgeDue(later)).toContain(eu.id);
    for (const table of ['collections', 'documents', 'changes', 'tenant_sequences']) {
      expect(await rowsIn(euDb, table, eu.id), table).toBe(0);
    }
  });
});

describe('configuration of regional datastores', () => {
  it('refuses a datastore for a region that is not configured', async () => {
    const { loadConfig, ConfigError } = await import('../src/config.js');
    expect(() => loadConfig({ STRATA_REGIONS: 'local', STRATA_SHARED_DATASTORES: 'eu=pglite:/tmp/x' })).toThrow(
      ConfigError,
    );
    expect(() => loadConfig({ STRATA_SHARED_DATASTORES: 'eu=mysql://x' })).toThrow(ConfigError);
  });
});

describe('GET /v1/tenants/{t}/datastore-options', () => {
  it("names what the tenant's plan allows, the plan that would allow the rest, and where the data lives now", async () => {
    const eu = await tenantIn('eu');
    const enterprise = (await h.call(eu.key, 'GET', `/v1/tenants/${eu.id}/datastore-options`)).json();
    expect(enterprise.current).toEqual({ kind: 'shared', region: 'eu', datastore: 'shared:eu' });
    expect(enterprise.regions).toEqual({ current: 'eu', allowed: ['eu'] });
    expect(enterprise.options.map((o: { kind: string; allowed: boolean }) => [o.kind, o.allowed])).toEqual([
      ['shared', true],
      ['dedicated', true],
      ['byod', true],
    ]);

    const created = await h.call(h.operatorToken, 'POST', '/v1/tenants', {
      slug: `f${randomBytes(4).toString('hex')}`,
      name: 'Free',
      plan: 'free',
    });
    const free = created.json().id as string;
    const options = (await h.call(h.operatorToken, 'GET', `/v1/tenants/${free}/datastore-options`)).json().options;
    expect(options).toMatchObject([
      { kind: 'shared', allowed: true, required_plan: null, available: true },
      { kind: 'dedicated', allowed: false, required_plan: 'professional' },
      { kind: 'byod', allowed: false, required_plan: 'enterprise' },
    ]);
    // An operator grant on the tenant's own plan counts.
    await h.call(h.operatorToken, 'PATCH', `/v1/tenants/${free}`, {
      plan_overrides: { features: { dedicated_datastore: true } },
    });
    const granted = (await h.call(h.operatorToken, 'GET', `/v1/tenants/${free}/datastore-options`)).json().options;
    expect(granted[1]).toMatchObject({ kind: 'dedicated', allowed: true, required_plan: null });
    // Another tenant's key: 404, like a tenant that does not exist.
    expect((await h.call(eu.key, 'GET', `/v1/tenants/${free}/datastore-options`)).statusCode).toBe(404);
  });
});

describe('POST /v1/tenants/{t}/datastore/test', () => {
  it('checks the plan first, then the configuration, then reports each connection step', async () => {
    const created = await h.call(h.operatorToken, 'POST', '/v1/tenants', {
      slug: `s${randomBytes(4).toString('hex')}`,
      name: 'Starter',
      plan: 'starter',
    });
    const starter = created.json().id as string;
    const body = { url: 'postgresql://app:s3cret-pw@127.0.0.1:1/app', tls: { mode: 'disable' } };
    const refused = await h.call(h.operatorToken, 'POST', `/v1/tenants/${starter}/datastore/test`, body);
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ code: 'plan_required', required_plan: 'enterprise' });

    const eu = await tenantIn('eu');
    const url = `/v1/tenants/${eu.id}/datastore/test`;
    const unreachable = await h.call(h.operatorToken, 'POST', url, body);
    expect(unreachable.statusCode, unreachable.body).toBe(200);
    expect(unreachable.json().ok).toBe(false);
    expect(unreachable.json().steps[0]).toMatchObject({ step: 'reachable', ok: false, required: true });
    expect(unreachable.body).not.toContain('s3cret-pw');

    const bad = await h.call(h.operatorToken, 'POST', url, { url: 'postgresql://app@/nodb', tls: { mode: 'bogus' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('validation_failed');

    if (driver === 'postgres') {
      // The operator's own datastores (here the eu region's) are never a tenant's "own" database.
      const own = await h.call(h.operatorToken, 'POST', url, { url: regionUrl, tls: { mode: 'disable' } });
      expect(own.statusCode, own.body).toBe(400);
      expect(own.json().code).toBe('validation_failed');
      // A second database on the same server plays the customer's: every required step passes.
      const customer = await h.call(h.operatorToken, 'POST', url, {
        url: regionUrl.replace(/\/[^/]+$/, '/postgres'),
        tls: { mode: 'disable' },
      });
      expect(customer.statusCode, customer.body).toBe(200);
      expect(customer.json().ok).toBe(true);
      expect(customer.json().steps.map((s: { step: string }) => s.step)).toEqual([
        'reachable',
        'authenticated',
        'version',
        'create_privilege',
        'pgvector',
        'latency',
      ]);
    }
  });
});

describe('a region whose datastore cannot be reached', () => {
  it("answers 503 unavailable with Retry-After for that region's tenants; other regions carry on", async () => {
    const down = await startHarness({
      STRATA_REGIONS: 'local,far',
      STRATA_SHARED_DATASTORES: 'far=postgres://strata@127.0.0.1:1/nowhere',
    });
    try {
      const make = async (region: string) => {
        const created = await down.call(down.operatorToken, 'POST', '/v1/tenants', {
          slug: `d${randomBytes(4).toString('hex')}`,
          name: 'D',
          plan: 'enterprise',
          allowed_regions: [region],
        });
        expect(created.statusCode, created.body).toBe(201);
        return created.json().id as string;
      };
      const far = await make('far');
      const r = await down.call(down.operatorToken, 'POST', `/v1/tenants/${far}/collections`, { name: 'x' });
      expect(r.statusCode, r.body).toBe(503);
      expect(r.json().code).toBe('unavailable');
      expect(r.headers['retry-after']).toBe('5');
      expect(r.body).not.toContain('127.0.0.1:1');
      // The control plane and the other region are unaffected.
      expect((await down.call(down.operatorToken, 'GET', `/v1/tenants/${far}`)).statusCode).toBe(200);
      const local = await make('local');
      expect(
        (await down.call(down.operatorToken, 'POST', `/v1/tenants/${local}/collections`, { name: 'x' })).statusCode,
      ).toBe(201);
    } finally {
      await down.close();
    }
  });
});

describe.skipIf(!process.env.STRATA_TEST_DATABASE_URL)('PUT /v1/tenants/{t}/datastore: bring your own database', () => {
  let customerUrl: string;
  let customerDb: Database;
  let dropCustomer: () => Promise<void>;
  beforeAll(async () => {
    const base = process.env.STRATA_TEST_DATABASE_URL as string;
    const name = `strata_cust_${randomBytes(4).toString('hex')}`;
    const admin = openPostgres(adminUrl(base), { max: 1 });
    await admin.exec(`CREATE DATABASE ${name}`);
    // The password is ignored by this server's trust authentication; it is here to show it is never shown.
    const url = new URL(databaseUrlFor(base, name));
    url.password = 'pw-s3cret';
    customerUrl = url.toString();
    customerDb = openPostgres(databaseUrlFor(base, name), { max: 1 });
    dropCustomer = async () => {
      await customerDb.close();
      await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.close();
    };
  });
  afterAll(async () => {
    await dropCustomer?.();
  });

  const choose = (tenantId: string, body: unknown) =>
    h.call(h.operatorToken, 'PUT', `/v1/tenants/${tenantId}/datastore`, body);

  it("puts a new enterprise tenant's data in its own database only, keeping the credentials sealed", async () => {
    const t = await tenantIn('local');
    const chosen = await choose(t.id, { kind: 'byod', config: { url: customerUrl, tls: { mode: 'disable' } } });
    expect(chosen.statusCode, chosen.body).toBe(200);
    expect(chosen.json().current).toMatchObject({ kind: 'byod', region: 'local' });
    expect(chosen.json().current.url).toContain('***');
    expect(chosen.body).not.toContain('pw-s3cret');

    const base = `/v1/tenants/${t.id}/collections`;
    expect((await h.call(t.key, 'POST', base, { name: 'mine' })).statusCode).toBe(201);
    for (let i = 0; i < 3; i++) {
      expect((await h.call(t.key, 'POST', `${base}/mine/documents`, { id: `d${i}`, data: { i } })).statusCode).toBe(
        201,
      );
    }
    expect((await h.call(t.key, 'GET', `${base}/mine/documents/d2`)).json().data).toEqual({ i: 2 });
    expect(await rowsIn(customerDb, 'documents', t.id)).toBe(3);
    expect(await rowsIn(customerDb, 'changes', t.id)).toBe(3);
    expect(await rowsIn(h.db, 'documents', t.id)).toBe(0);
    expect(await rowsIn(h.db, 'collections', t.id)).toBe(0);

    // In the control database only an envelope-encrypted blob and the redacted URL.
    const stored = await h.db.query<{ config_ciphertext: string; display_url: string }>(
      'SELECT config_ciphertext, display_url FROM strata.datastores WHERE owner_tenant = $1',
      [t.id],
    );
    expect(stored.rows).toHaveLength(1);
    expect(stored.rows[0]?.config_ciphertext).not.toContain('pw-s3cret');
    expect(stored.rows[0]?.config_ciphertext).not.toContain('strata_cust_');
    expect(stored.rows[0]?.display_url).not.toContain('pw-s3cret');

    // A downgrade that would take away the placement's entitlement is refused until the data moves back.
    const downgrade = await h.call(h.operatorToken, 'PATCH', `/v1/tenants/${t.id}`, { plan: 'professional' });
    expect(downgrade.statusCode).toBe(409);
    expect(downgrade.json()).toMatchObject({ code: 'conflict', placement: 'byod', feature: 'byod_datastore' });
    expect((await h.call(h.operatorToken, 'GET', `/v1/tenants/${t.id}`)).json().plan).toBe('enterprise');
    const granted = await h.call(h.operatorToken, 'PATCH', `/v1/tenants/${t.id}`, {
      plan: 'professional',
      plan_overrides: { features: { byod_datastore: true } },
    });
    expect(granted.statusCode, granted.body).toBe(200);

    // With data in place, choosing another placement moves the data live: 202 and the move to follow.
    const back = await choose(t.id, { kind: 'shared' });
    expect(back.statusCode, back.body).toBe(202);
    expect(back.json()).toMatchObject({ source_kind: 'byod', target_kind: 'shared', phase: 'copying' });
    await h.strata.services.moves.settled(back.json().id);
    const status = await h.call(t.key, 'GET', `/v1/tenants/${t.id}/moves/${back.json().id}`);
    expect(status.json(), status.body).toMatchObject({ phase: 'switched', error: null });
    expect(await rowsIn(h.db, 'documents', t.id)).toBe(3);
    expect((await h.call(t.key, 'GET', `${base}/mine/documents/d1`)).json().data).toEqual({ i: 1 });
    // Until the move is confirmed the customer's database keeps the old copy (fenced); then only its own data.
    expect(await rowsIn(customerDb, 'documents', t.id)).toBe(3);
    const confirmed = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/moves/${back.json().id}/finish`);
    expect(confirmed.statusCode, confirmed.body).toBe(403); // a data key may not; an admin may
    expect(
      (await h.call(h.operatorToken, 'POST', `/v1/tenants/${t.id}/moves/${back.json().id}/finish`)).json().phase,
    ).toBe('finished');
    for (const table of ['collections', 'documents', 'changes', 'tenant_sequences']) {
      expect(await rowsIn(customerDb, table, t.id), table).toBe(0);
    }
    const registered = await h.db.query('SELECT 1 FROM strata.datastores WHERE owner_tenant = $1', [t.id]);
    expect(registered.rows).toEqual([]);
  });

  it('moves a tenant with files into its own database and bucket, keeps its snapshots there, and back out', async () => {
    const s3 = await startS3Server(['customer-files']);
    try {
      const t = await tenantIn('local');
      const base = `/v1/tenants/${t.id}/collections`;
      expect((await h.call(t.key, 'POST', base, { name: 'c' })).statusCode).toBe(201);
      await h.call(t.key, 'POST', `${base}/c/documents`, { id: 'd', data: { a: 1 } });
      const contract = randomBytes(30_000);
      expect((await putFile(t.key, t.id, 'contracts/2026.pdf', contract)).statusCode).toBe(201);
      const bucketUrl = s3.url('customer-files');
      const moved = await choose(t.id, {
        kind: 'byod',
        config: { url: customerUrl, tls: { mode: 'disable' }, bucket: bucketUrl },
      });
      expect(moved.statusCode, moved.body).toBe(202);
      expect(moved.body).not.toContain('S3RVER');
      await h.strata.services.moves.settled(moved.json().id);
      await h.call(h.operatorToken, 'POST', `/v1/tenants/${t.id}/moves/${moved.json().id}/finish`);

      // Rows in the customer's database, bytes in the customer's bucket, none left with the operator.
      expect(await rowsIn(customerDb, 'files', t.id)).toBe(1);
      const bucket = await openObjectStore(bucketUrl);
      const keys = async (prefix: string) => {
        const out: string[] = [];
        for await (const o of bucket.list(prefix)) out.push(o.key);
        return out;
      };
      try {
        expect(await keys(`tenants/${t.id}/blobs/`)).toHaveLength(1);
        expect(existsSync(join(h.config.dataDir, 'objects', 'local', 'tenants', t.id, 'blobs'))).toBe(false);
        expect((await getFile(t.key, t.id, 'contracts/2026.pdf')).rawPayload.equals(contract)).toBe(true);
        // Snapshots of a tenant with its own bucket are kept in that bucket.
        const snap = await h.call(h.operatorToken, 'POST', `/v1/tenants/${t.id}/snapshots`);
        await h.strata.services.snapshots.settled(snap.json().id);
        const snapStatus = await h.call(t.key, 'GET', `/v1/tenants/${t.id}/snapshots/${snap.json().id}`);
        expect(snapStatus.json(), snapStatus.body).toMatchObject({ status: 'complete' });
        expect(await keys(`tenants/${t.id}/snapshots/${snap.json().id}/`)).toEqual(
          expect.arrayContaining([
            expect.stringMatching(/manifest\.json$/),
            expect.stringMatching(/data\.ndjson\.gz$/),
          ]),
        );
        const stored = await h.db.query<{ config_ciphertext: string }>(
          'SELECT config_ciphertext FROM strata.datastores WHERE owner_tenant = $1',
          [t.id],
        );
        expect(stored.rows[0]?.config_ciphertext).not.toContain('customer-files');

        // Back to the shared datastore: the file's bytes come back to the operator's store.
        const back = await choose(t.id, { kind: 'shared' });
        expect(back.statusCode, back.body).toBe(202);
        await h.strata.services.moves.settled(back.json().id);
        expect((await getFile(t.key, t.id, 'contracts/2026.pdf')).rawPayload.equals(contract)).toBe(true);
        await h.call(h.operatorToken, 'POST', `/v1/tenants/${t.id}/moves/${back.json().id}/finish`);
        expect(await keys(`tenants/${t.id}/blobs/`)).toEqual([]);
        expect(await rowsIn(customerDb, 'files', t.id)).toBe(0);
        expect((await getFile(t.key, t.id, 'contracts/2026.pdf')).rawPayload.equals(contract)).toBe(true);
      } finally {
        await bucket.close();
      }
    } finally {
      await s3.close();
    }
  }, 60_000);

  it('checks the plan first and refuses a database that fails its test, storing nothing', async () => {
    const created = await h.call(h.operatorToken, 'POST', '/v1/tenants', {
      slug: `b${randomBytes(4).toString('hex')}`,
      name: 'Pro',
      plan: 'professional',
    });
    const pro = created.json().id as string;
    const refused = await choose(pro, { kind: 'byod', config: { url: customerUrl, tls: { mode: 'disable' } } });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ code: 'plan_required', required_plan: 'enterprise' });

    const t = await tenantIn('local');
    const failed = await choose(t.id, {
      kind: 'byod',
      config: { url: 'postgresql://app:pw-s3cret@127.0.0.1:1/app', tls: { mode: 'disable' } },
    });
    expect(failed.statusCode).toBe(422);
    expect(failed.json().code).toBe('datastore_test_failed');
    expect(failed.json().report.steps[0]).toMatchObject({ step: 'reachable', ok: false });
    expect(failed.body).not.toContain('pw-s3cret');
    const rows = await h.db.query('SELECT 1 FROM strata.datastores WHERE owner_tenant = $1', [t.id]);
    expect(rows.rows).toEqual([]);
    expect((await h.call(t.key, 'GET', `/v1/tenants/${t.id}/datastore-options`)).json().current.kind).toBe('shared');
  });

  it('a tenant without data can go back to the shared datastore; its registration is removed', async () => {
    const t = await tenantIn('local');
    expect(
      (await choose(t.id, { kind: 'byod', config: { url: customerUrl, tls: { mode: 'disable' } } })).statusCode,
    ).toBe(200);
    const back = await choose(t.id, { kind: 'shared' });
    expect(back.statusCode, back.body).toBe(200);
    expect(back.json().current).toEqual({ kind: 'shared', region: 'local', datastore: 'shared:local' });
    const rows = await h.db.query('SELECT 1 FROM strata.datastores WHERE owner_tenant = $1', [t.id]);
    expect(rows.rows).toEqual([]);
    expect((await h.call(t.key, 'POST', `/v1/tenants/${t.id}/collections`, { name: 'here' })).statusCode).toBe(201);
    expect(await rowsIn(h.db, 'collections', t.id)).toBe(1);
    // Back on a shared datastore, the plan may go down.
    expect((await h.call(h.operatorToken, 'PATCH', `/v1/tenants/${t.id}`, { plan: 'starter' })).statusCode).toBe(200);
  });
});

describe('live moves between regions', () => {
  it('moves a tenant under concurrent writes: no acknowledged write lost, none duplicated, every refusal a 503 with Retry-After', async () => {
    const { id, key } = await tenantIn('local', ['local', 'eu']);
    expect((await h.call(h.operatorToken, 'GET', `/v1/tenants/${id}`)).json().data_region).toBe('local');
    const base = `/v1/tenants/${id}/collections`;
    await h.call(key, 'POST', base, { name: 'items', vector: { field: 'v', dimensions: 2 } });
    await h.call(key, 'POST', `${base}/items/indexes`, { name: 'by_n', path: 'n' });
    for (let b = 0; b < 4; b++) {
      const operations = Array.from({ length: 500 }, (_, i) => ({
        op: 'create',
        collection: 'items',
        id: `seed-${b * 500 + i}`,
        data: { n: b * 500 + i, v: [i, 1] },
      }));
      expect((await h.call(key, 'POST', `/v1/tenants/${id}/batch`, { operations })).statusCode).toBe(200);
    }

    const {
      acked,
      refusals,
      result: moveId,
    } = await writesDuring(key, `${base}/items`, async () => {
      const started = await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/moves`, { region: 'eu' });
      expect(started.statusCode, started.body).toBe(202);
      await h.strata.services.moves.settled(started.json().id);
      return started.json().id as string;
    });

    const move = (await h.call(h.operatorToken, 'GET', `/v1/tenants/${id}/moves/${moveId}`)).json();
    expect(move, JSON.stringify(move)).toMatchObject({ phase: 'switched', target_region: 'eu', error: null });
    expect(move.documents_total).toBeGreaterThanOrEqual(2000);
    expect(move.pause_ms).toBeGreaterThanOrEqual(0);
    for (const r of refusals) expect(r).toEqual({ status: 503, retryAfter: '5' });

    // Everything acknowledged is there, at the acknowledged version, in the eu datastore.
    const euDb = await h.strata.platform.router.forRegion('eu');
    await expectAcknowledged(key, `${base}/items`, acked);
    expect(await rowsIn(euDb, 'documents', id)).toBe(2000 + acked.size);
    expect(acked.size).toBeGreaterThan(0);
    // The change feed came along, gapless, in a new epoch.
    const feed = (await h.call(key, 'GET', `/v1/tenants/${id}/changes?since=0&limit=1000`)).json();
    expect(feed.checkpoint.epoch).toBe(2);
    expect(feed.changes.map((c: { seq: number }) => c.seq)).toEqual(feed.changes.map((_: unknown, i: number) => i + 1));
    // Indexes were built in the target; queries and vector search work there.
    const idx = await euDb.query(
      "SELECT 1 FROM pg_indexes WHERE schemaname = 'strata_data' AND strpos(indexdef, $1) > 0",
      [id],
    );
    expect(idx.rows.length).toBeGreaterThanOrEqual(1);
    const q = await h.call(key, 'POST', `${base}/items/query`, { filter: { path: 'n', op: 'eq', value: 1234 } });
    expect(q.json().data.map((d: { id: string }) => d.id)).toEqual(['seed-1234']);

    // The source is fenced: nothing can commit there any more, and it still holds the old copy until finish.
    const src = await h.db.query<{ moved: boolean }>(
      'SELECT moved FROM strata_data.tenant_sequences WHERE tenant_id = $1',
      [id],
    );
    expect(src.rows[0]?.moved).toBe(true);
    expect(await rowsIn(h.db, 'documents', id)).toBeGreaterThan(0);
    const finished = await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/moves/${moveId}/finish`);
    expect(finished.json().phase).toBe('finished');
    for (const table of ['collections', 'documents', 'changes', 'tenant_sequences']) {
      expect(await rowsIn(h.db, table, id), table).toBe(0);
    }
    expect((await h.call(h.operatorToken, 'GET', `/v1/tenants/${id}`)).json().data_region).toBe('eu');
  }, 60_000);

  it('refuses a region the tenant may not use, and a second move while one runs', async () => {
    const t = await tenantIn('local');
    const r = await h.call(h.operatorToken, 'POST', `/v1/tenants/${t.id}/moves`, { region: 'eu' });
    expect(r.statusCode).toBe(422);
    expect(r.json().code).toBe('region_not_allowed');
    const member = await h.call(t.key, 'POST', `/v1/tenants/${t.id}/moves`, { region: 'eu' });
    expect(member.statusCode).toBe(403);
  });
});

describe('moves between placements: shared, dedicated and back', () => {
  /** Whether the dedicated database of a registry id exists (a PostgreSQL database, or an embedded directory). */
  async function dedicatedExists(datastoreId: string, url: string): Promise<boolean> {
    if (url.startsWith('pglite:')) return existsSync(url.slice(7));
    const r = await h.db.query('SELECT 1 FROM pg_database WHERE datname = $1', [
      `strata_ds_${datastoreId.replaceAll('-', '')}`,
    ]);
    return r.rows.length > 0;
  }
  const registered = async (tenantId: string) =>
    (
      await h.db.query<{ id: string; kind: string; display_url: string }>(
        'SELECT id, kind, display_url FROM strata.datastores WHERE owner_tenant = $1',
        [tenantId],
      )
    ).rows;

  it('moves a tenant with data into a dedicated database under concurrent writes, then out to another region', async () => {
    const { id, key } = await tenantIn('local', ['local', 'eu']);
    const options = (await h.call(key, 'GET', `/v1/tenants/${id}/datastore-options`)).json();
    expect(options.options.find((o: { kind: string }) => o.kind === 'dedicated')).toMatchObject({
      allowed: true,
      available: true,
    });
    const base = `/v1/tenants/${id}/collections`;
    await h.call(key, 'POST', base, { name: 'items' });
    const operations = Array.from({ length: 300 }, (_, i) => ({
      op: 'create',
      collection: 'items',
      id: `seed-${i}`,
      data: { n: i },
    }));
    expect((await h.call(key, 'POST', `/v1/tenants/${id}/batch`, { operations })).statusCode).toBe(200);
    const report = randomBytes(50_000);
    expect((await putFile(key, id, 'reports/q3.bin', report)).statusCode).toBe(201);
    expect((await putFile(key, id, 'notes/readme.txt', Buffer.from('hello'))).statusCode).toBe(201);

    // The tenant's admin chooses a dedicated database: with data in place that is a live move.
    const {
      acked,
      refusals,
      result: moveId,
    } = await writesDuring(key, `${base}/items`, async () => {
      const chosen = await h.call(h.operatorToken, 'PUT', `/v1/tenants/${id}/datastore`, { kind: 'dedicated' });
      expect(chosen.statusCode, chosen.body).toBe(202);
      expect(chosen.json()).toMatchObject({ source_kind: 'shared', target_kind: 'dedicated' });
      // A file written while the move runs comes along too (files are synced under the fence).
      expect((await putFile(key, id, 'notes/readme.txt', Buffer.from('hello again'))).statusCode).toBe(200);
      await h.strata.services.moves.settled(chosen.json().id);
      return chosen.json().id as string;
    });
    for (const r of refusals) expect(r).toEqual({ status: 503, retryAfter: '5' });
    const move = (await h.call(key, 'GET', `/v1/tenants/${id}/moves/${moveId}`)).json();
    expect(move, JSON.stringify(move)).toMatchObject({ phase: 'switched', target_kind: 'dedicated', error: null });
    await expectAcknowledged(key, `${base}/items`, acked);

    // The data physically lives in the new database; the shared one keeps only the fenced copy until finish.
    const [ds] = await registered(id);
    expect(ds).toMatchObject({ kind: 'dedicated' });
    const dedicated = await h.strata.platform.router.forDatastore(ds?.id as string);
    expect(await rowsIn(dedicated, 'documents', id)).toBe(300 + acked.size);
    expect(await rowsIn(dedicated, 'collections', id)).toBe(1);
    expect(await dedicatedExists(ds?.id as string, ds?.display_url as string)).toBe(true);
    expect((await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/moves/${moveId}/finish`)).statusCode).toBe(200);
    expect(await rowsIn(h.db, 'documents', id)).toBe(0);
    const now = (await h.call(key, 'GET', `/v1/tenants/${id}/datastore-options`)).json().current;
    expect(now).toMatchObject({ kind: 'dedicated', region: 'local', datastore: `dedicated:${ds?.id}` });
    const feed = (await h.call(key, 'GET', `/v1/tenants/${id}/changes?since=0&limit=1000`)).json();
    expect(feed.checkpoint.epoch).toBe(2);

    // Out again, to the shared datastore of another region (operator route): the dedicated database is
    // dropped when that move is finished.
    const out = await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/moves`, { kind: 'shared', region: 'eu' });
    expect(out.statusCode, out.body).toBe(202);
    await h.strata.services.moves.settled(out.json().id);
    expect((await h.call(key, 'GET', `/v1/tenants/${id}/moves/${out.json().id}`)).json()).toMatchObject({
      phase: 'switched',
      source_kind: 'dedicated',
      target_kind: 'shared',
      target_region: 'eu',
    });
    const euDb = await h.strata.platform.router.forRegion('eu');
    expect(await rowsIn(euDb, 'documents', id)).toBe(300 + acked.size);
    // Files came along to eu's object store; the local one no longer has the tenant's blobs after finish.
    expect((await getFile(key, id, 'reports/q3.bin')).rawPayload.equals(report)).toBe(true);
    expect((await getFile(key, id, 'notes/readme.txt')).body).toBe('hello again');
    const blobsIn = (region: string) => readdirSync(join(h.config.dataDir, 'objects', region, 'tenants', id, 'blobs'));
    expect(blobsIn('eu').length).toBeGreaterThanOrEqual(2);
    await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/moves/${out.json().id}/finish`);
    expect(() => blobsIn('local')).toThrow();
    expect((await getFile(key, id, 'notes/readme.txt')).body).toBe('hello again');
    expect(await registered(id)).toEqual([]);
    expect(await dedicatedExists(ds?.id as string, ds?.display_url as string)).toBe(false);
    const listed = (await h.call(key, 'GET', `/v1/tenants/${id}/moves`)).json().data;
    expect(listed.map((m: { id: string }) => m.id)).toEqual([out.json().id, moveId]);
  }, 60_000);

  it('checks the plan first; a tenant without data is switched at once; purge drops its dedicated database', async () => {
    const created = await h.call(h.operatorToken, 'POST', '/v1/tenants', {
      slug: `s${randomBytes(4).toString('hex')}`,
      name: 'Starter',
      plan: 'starter',
    });
    const starter = created.json().id as string;
    const refused = await h.call(h.operatorToken, 'PUT', `/v1/tenants/${starter}/datastore`, { kind: 'dedicated' });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ code: 'plan_required', required_plan: 'professional' });
    const moveRefused = await h.call(h.operatorToken, 'POST', `/v1/tenants/${starter}/moves`, { kind: 'dedicated' });
    expect(moveRefused.statusCode).toBe(403);
    expect(await registered(starter)).toEqual([]);

    const t = await tenantIn('local');
    const chosen = await h.call(h.operatorToken, 'PUT', `/v1/tenants/${t.id}/datastore`, { kind: 'dedicated' });
    expect(chosen.statusCode, chosen.body).toBe(200);
    expect(chosen.json().current.kind).toBe('dedicated');
    const again = await h.call(h.operatorToken, 'PUT', `/v1/tenants/${t.id}/datastore`, { kind: 'dedicated' });
    expect(again.statusCode).toBe(200);
    const [ds] = await registered(t.id);
    expect((await h.call(t.key, 'POST', `/v1/tenants/${t.id}/collections`, { name: 'c' })).statusCode).toBe(201);
    const dedicated = await h.strata.platform.router.forDatastore(ds?.id as string);
    expect(await rowsIn(dedicated, 'collections', t.id)).toBe(1);
    expect(await rowsIn(h.db, 'collections', t.id)).toBe(0);

    // Deleted, then purged after the grace period: the dedicated database goes with the tenant.
    expect((await h.call(h.operatorToken, 'DELETE', `/v1/tenants/${t.id}`)).statusCode).toBe(200);
    const later = new Date(Date.now() + (h.config.purgeGraceHours + 1) * 3600_000);
    expect(await h.strata.services.tenants.purgeDue(later)).toContain(t.id);
    expect(await dedicatedExists(ds?.id as string, ds?.display_url as string)).toBe(false);
    expect(await registered(t.id)).toEqual([]);
  });
});

describe('moves interrupted by a restart', () => {
  it('are undone when the source was not yet fenced, and switched over when it was', async () => {
    const make = async () => {
      const { id, key } = await tenantIn('local', ['local', 'eu']);
      await h.call(key, 'POST', `/v1/tenants/${id}/collections`, { name: 'c' });
      await h.call(key, 'POST', `/v1/tenants/${id}/collections/c/documents`, { id: 'd', data: { a: 1 } });
      return { id, key };
    };
    const euDb = await h.strata.platform.router.forRegion('eu');
    // What a node that died mid-copy leaves behind: a move row in 'copying' and a partial copy in the target.
    const copying = await make();
    const copyingMove = randomUUID();
    await h.db.query(
      `INSERT INTO strata.moves (id, owner_tenant, source_region, target_region, phase) VALUES ($1, $2, 'local', 'eu', 'copying')`,
      [copyingMove, copying.id],
    );
    await euDb.transaction(
      (tx) => tx.query("INSERT INTO strata_data.collections (tenant_id, name) VALUES ($1, 'c')", [copying.id]),
      "SET LOCAL ROLE strata_app; SELECT set_config('strata.tenant_id', '" + copying.id + "', true);",
    );
    // ... and one that died right after fencing the source: the copy was complete and verified.
    const fenced = await make();
    const started = await h.call(h.operatorToken, 'POST', `/v1/tenants/${fenced.id}/moves`, { region: 'eu' });
    await h.strata.services.moves.settled(started.json().id);
    await h.db.query("UPDATE strata.moves SET phase = 'fenced', switched_at = NULL WHERE id = $1", [started.json().id]);
    await h.db.query("UPDATE strata.tenants SET data_region = 'local' WHERE id = $1", [fenced.id]);
    h.strata.platform.router.invalidate(fenced.id);

    await h.strata.services.moves.recover();

    const undone = (await h.call(h.operatorToken, 'GET', `/v1/tenants/${copying.id}/moves/${copyingMove}`)).json();
    expect(undone).toMatchObject({ phase: 'failed', error: 'interrupted; undone at restart' });
    expect(await rowsIn(euDb, 'collections', copying.id)).toBe(0);
    expect((await h.call(copying.key, 'GET', `/v1/tenants/${copying.id}/collections/c/documents/d`)).statusCode).toBe(
      200,
    );

    const switched = (
      await h.call(h.operatorToken, 'GET', `/v1/tenants/${fenced.id}/moves/${started.json().id}`)
    ).json();
    expect(switched.phase).toBe('switched');
    expect((await h.call(h.operatorToken, 'GET', `/v1/tenants/${fenced.id}`)).json().data_region).toBe('eu');
    const doc = await h.call(fenced.key, 'GET', `/v1/tenants/${fenced.id}/collections/c/documents/d`);
    expect(doc.json().data).toEqual({ a: 1 });
  });
});

describe('rolling a move back', () => {
  it('moves the tenant back to the very datastore it left, with what was written since; then it can be dropped', async () => {
    const { id, key } = await tenantIn('local');
    const base = `/v1/tenants/${id}/collections`;
    await h.call(key, 'POST', base, { name: 'c' });
    await h.call(key, 'POST', `${base}/c/documents`, { id: 'before', data: { n: 1 } });
    const there = await h.call(h.operatorToken, 'PUT', `/v1/tenants/${id}/datastore`, { kind: 'dedicated' });
    expect(there.statusCode, there.body).toBe(202);
    await h.strata.services.moves.settled(there.json().id);
    const [ds] = (
      await h.db.query<{ id: string; display_url: string }>(
        'SELECT id, display_url FROM strata.datastores WHERE owner_tenant = $1',
        [id],
      )
    ).rows;
    // Written in the dedicated database after the switch: must come back too.
    await h.call(key, 'POST', `${base}/c/documents`, { id: 'after', data: { n: 2 } });
    await h.call(key, 'PATCH', `${base}/c/documents/before`, { n: 10 });

    const {
      acked,
      refusals,
      result: back,
    } = await writesDuring(key, `${base}/c`, async () => {
      const r = await h.call(key, 'POST', `/v1/tenants/${id}/moves/${there.json().id}/rollback`);
      expect(r.statusCode).toBe(403); // a data key may not
      const started = await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/moves/${there.json().id}/rollback`);
      expect(started.statusCode, started.body).toBe(202);
      expect(started.json()).toMatchObject({ rolls_back: there.json().id, target_kind: 'shared' });
      await h.strata.services.moves.settled(started.json().id);
      return started.json().id as string;
    });
    for (const r of refusals) expect(r).toEqual({ status: 503, retryAfter: '5' });
    expect((await h.call(key, 'GET', `/v1/tenants/${id}/moves/${back}`)).json()).toMatchObject({ phase: 'switched' });
    expect((await h.call(key, 'GET', `/v1/tenants/${id}/moves/${there.json().id}`)).json().phase).toBe('rolled_back');
    expect((await h.strata.platform.router.placementOf(id)).kind).toBe('shared');
    await expectAcknowledged(key, `${base}/c`, acked);
    expect((await h.call(key, 'GET', `${base}/c/documents/after`)).json().data).toEqual({ n: 2 });
    expect((await h.call(key, 'GET', `${base}/c/documents/before`)).json().data).toEqual({ n: 10 });
    expect(await rowsIn(h.db, 'documents', id)).toBe(2 + acked.size);

    // A rolled-back move cannot be finished or rolled back again; finishing the rollback drops the
    // dedicated database the tenant left.
    const again = await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/moves/${there.json().id}/rollback`);
    expect(again.statusCode).toBe(409);
    expect((await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/moves/${back}/finish`)).statusCode).toBe(200);
    expect((await h.db.query('SELECT 1 FROM strata.datastores WHERE id = $1', [ds?.id])).rows).toEqual([]);
    if (ds?.display_url.startsWith('pglite:')) expect(existsSync(ds.display_url.slice(7))).toBe(false);
  }, 60_000);
});

describe('a move into a dedicated database interrupted by a restart', () => {
  it('is undone by dropping the database it had created; the tenant stays whole where it was', async () => {
    const { id, key } = await tenantIn('local');
    await h.call(key, 'POST', `/v1/tenants/${id}/collections`, { name: 'c' });
    await h.call(key, 'POST', `/v1/tenants/${id}/collections/c/documents`, { id: 'd', data: { a: 1 } });
    const started = await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/moves`, { kind: 'dedicated' });
    expect(started.statusCode, started.body).toBe(202);
    await h.strata.services.moves.settled(started.json().id);
    // Wind it back to what a node that died mid-copy leaves: the move copying, the tenant still in the
    // shared datastore (not fenced), the dedicated database created, registered and partly filled.
    const ds = (
      await h.db.query<{ id: string; display_url: string }>(
        'SELECT id, display_url FROM strata.datastores WHERE owner_tenant = $1',
        [id],
      )
    ).rows[0] as { id: string; display_url: string };
    await h.db.query("UPDATE strata.moves SET phase = 'copying', switched_at = NULL WHERE id = $1", [
      started.json().id,
    ]);
    await h.db.query('UPDATE strata.tenants SET datastore_id = NULL WHERE id = $1', [id]);
    await h.db.query('UPDATE strata_data.tenant_sequences SET moved = false WHERE tenant_id = $1', [id]);
    await h.strata.platform.router.announce(id);

    await h.strata.services.moves.recover();

    const undone = (await h.call(h.operatorToken, 'GET', `/v1/tenants/${id}/moves/${started.json().id}`)).json();
    expect(undone).toMatchObject({ phase: 'failed', error: 'interrupted; undone at restart' });
    expect((await h.db.query('SELECT 1 FROM strata.datastores WHERE id = $1', [ds.id])).rows).toEqual([]);
    if (ds.display_url.startsWith('pglite:')) expect(existsSync(ds.display_url.slice(7))).toBe(false);
    else {
      const db = await h.db.query('SELECT 1 FROM pg_database WHERE datname = $1', [
        `strata_ds_${ds.id.replaceAll('-', '')}`,
      ]);
      expect(db.rows).toEqual([]);
    }
    const doc = await h.call(key, 'GET', `/v1/tenants/${id}/collections/c/documents/d`);
    expect(doc.json().data).toEqual({ a: 1 });
    expect((await h.strata.platform.router.placementOf(id)).kind).toBe('shared');
  });
});

describe('the source copy of a move', () => {
  it('is kept for the grace period, then dropped by housekeeping', async () => {
    const { id, key } = await tenantIn('local', ['local', 'eu']);
    await h.call(key, 'POST', `/v1/tenants/${id}/collections`, { name: 'c' });
    await h.call(key, 'POST', `/v1/tenants/${id}/collections/c/documents`, { data: { a: 1 } });
    const started = await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/moves`, { region: 'eu' });
    await h.strata.services.moves.settled(started.json().id);
    expect(await h.strata.services.moves.finishDue()).not.toContain(started.json().id);
    expect(await rowsIn(h.db, 'documents', id)).toBe(1);
    const later = new Date(Date.now() + (h.config.moveSourceGraceHours + 1) * 3600_000);
    expect(await h.strata.services.moves.finishDue(later)).toContain(started.json().id);
    expect(await rowsIn(h.db, 'documents', id)).toBe(0);
    const move = (await h.call(h.operatorToken, 'GET', `/v1/tenants/${id}/moves/${started.json().id}`)).json();
    expect(move.phase).toBe('finished');
    expect((await h.call(key, 'GET', `/v1/tenants/${id}/collections/c/documents?limit=5`)).json().data).toHaveLength(1);
  });
});

describe.skipIf(driver !== 'postgres')('placement changes reach every node', () => {
  it('a second node forgets its cached placement as soon as the first switches the tenant', async () => {
    // A second API node on the same control database (the embedded database is one process: one node).
    const other = await createStrata(h.config, {
      db: openPostgres(h.url as string),
      logger: createLogger('silent'),
    });
    try {
      const { id, key } = await tenantIn('local', ['local', 'eu']);
      await h.call(key, 'POST', `/v1/tenants/${id}/collections`, { name: 'c' });
      const read = () =>
        other.app.inject({
          method: 'GET',
          url: `/v1/tenants/${id}/collections/c/documents?limit=5`,
          headers: { authorization: `Bearer ${key}` },
        });
      expect((await read()).statusCode).toBe(200);
      const cachedAt = Date.now();
      expect((await other.platform.router.placementOf(id)).region).toBe('local');

      const started = await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/moves`, { region: 'eu' });
      await h.strata.services.moves.settled(started.json().id);
      let seen = '';
      while (Date.now() - cachedAt < DatastoreRouter.CACHE_MS) {
        seen = (await other.platform.router.placementOf(id)).region;
        if (seen === 'eu') break;
        await new Promise((r) => setTimeout(r, 20));
      }
      // Seen before its cache entry would have expired: it was told.
      expect(seen).toBe('eu');
      expect(Date.now() - cachedAt).toBeLessThan(DatastoreRouter.CACHE_MS);
      const write = await other.app.inject({
        method: 'POST',
        url: `/v1/tenants/${id}/collections/c/documents`,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        payload: JSON.stringify({ id: 'via-other', data: { n: 1 } }),
      });
      expect(write.statusCode, write.body).toBe(201);
      expect(await rowsIn(await h.strata.platform.router.forRegion('eu'), 'documents', id)).toBe(1);
    } finally {
      await other.close();
    }
  });
});
