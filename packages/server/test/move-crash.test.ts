import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../src/platform/db/driver.js';
import { openPostgres } from '../src/platform/db/pg-driver.js';
import { cloneDatabase, driver } from './harness.js';
import { adminUrl, databaseUrlFor } from './pg-url.js';

/**
 * A real server process killed (SIGKILL) in the middle of a move's copy, then started again: the restart
 * undoes the partial copy, the tenant's data is whole where it was, and a new move then completes.
 * Needs PostgreSQL: the embedded database belongs to one process.
 */

const cli = join(import.meta.dirname, '../src/cli.ts');
let control: { db: Database; url?: string; drop: () => Promise<void> };
let euUrl: string;
let eu: Database;
let dropEu: () => Promise<void> = async () => {};
const dataDir = mkdtempSync(join(tmpdir(), 'strata-crash-'));

beforeAll(async () => {
  if (driver !== 'postgres') return;
  control = await cloneDatabase();
  const base = process.env.STRATA_TEST_DATABASE_URL as string;
  const name = `strata_crash_eu_${randomBytes(4).toString('hex')}`;
  const admin = openPostgres(adminUrl(base), { max: 1 });
  await admin.exec(`CREATE DATABASE ${name}`);
  euUrl = databaseUrlFor(base, name);
  eu = openPostgres(euUrl, { max: 1 });
  dropEu = async () => {
    await eu.close();
    await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.close();
  };
});
afterAll(async () => {
  if (driver !== 'postgres') return;
  await dropEu();
  await control.drop();
});

const OPERATOR_KEY = /(sto_[a-z2-7]{12}_[A-Za-z0-9_-]{43})/;

/** Starts `strata serve`; on a new database, waits for the operator key too (printed after the listening line). */
async function startServer(withKey = false): Promise<{ child: ChildProcess; url: string; out: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'serve'], {
    env: {
      PATH: process.env.PATH,
      STRATA_DATA_DIR: dataDir,
      DATABASE_URL: control.url as string,
      PORT: '0',
      STRATA_REGIONS: 'local,eu',
      STRATA_SHARED_DATASTORES: `eu=${euUrl}`,
      STRATA_LOG_LEVEL: 'warn',
    },
  });
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  const deadline = Date.now() + 60_000;
  const ready = () => /listening on http:\/\/\S+/.test(out) && (!withKey || OPERATOR_KEY.test(out));
  while (!ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
  if (!url) throw new Error(`server did not start: ${out}`);
  return { child, url, out: () => out };
}

const count = async (db: Database, table: string, tenantId: string) =>
  (
    await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM strata_data.${table} WHERE tenant_id = $1`, [
      tenantId,
    ])
  ).rows[0]?.n;

describe.skipIf(driver !== 'postgres')('a move interrupted by a killed process', () => {
  it('is undone at restart, leaving the tenant whole where it was; a new move then completes', async () => {
    const first = await startServer(true);
    const key = OPERATOR_KEY.exec(first.out())?.[1] as string;
    const api = async (base: string, token: string, method: string, path: string, body?: unknown) => {
      const r = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: r.status, json: (await r.json()) as Record<string, unknown> };
    };
    const created = await api(first.url, key, 'POST', '/v1/tenants', {
      slug: 'crash',
      name: 'Crash',
      plan: 'enterprise',
      allowed_regions: ['local', 'eu'],
    });
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    const tenantId = created.json.id as string;
    await api(first.url, key, 'POST', `/v1/tenants/${tenantId}/collections`, { name: 'c' });
    const total = 30_000;
    for (let b = 0; b < total / 500; b++) {
      const operations = Array.from({ length: 500 }, (_, i) => ({
        op: 'create',
        collection: 'c',
        data: { n: b * 500 + i },
      }));
      const r = await api(first.url, key, 'POST', `/v1/tenants/${tenantId}/batch`, { operations });
      expect(r.status).toBe(200);
    }

    const started = await api(first.url, key, 'POST', `/v1/tenants/${tenantId}/moves`, { region: 'eu' });
    expect(started.status).toBe(202);
    const moveId = started.json.id as string;
    // Kill the server as soon as the copy is under way.
    for (let i = 0; i < 2000; i++) {
      const r = await control.db.query<{ documents_copied: number; phase: string }>(
        'SELECT documents_copied, phase FROM strata.moves WHERE id = $1',
        [moveId],
      );
      if (Number(r.rows[0]?.documents_copied) > 0) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.on('exit', r));
    const left = await control.db.query<{ phase: string; documents_copied: number }>(
      'SELECT phase, documents_copied FROM strata.moves WHERE id = $1',
      [moveId],
    );
    expect(left.rows[0]?.phase).toBe('copying');
    expect(Number(left.rows[0]?.documents_copied)).toBeLessThan(total);
    expect(await count(eu, 'documents', tenantId)).toBeGreaterThan(0); // a partial copy was left behind

    const second = await startServer();
    try {
      const undone = await api(second.url, key, 'GET', `/v1/tenants/${tenantId}/moves/${moveId}`);
      expect(undone.json).toMatchObject({ phase: 'failed', error: 'interrupted; undone at restart' });
      expect(await count(eu, 'documents', tenantId)).toBe(0);
      expect(await count(control.db, 'documents', tenantId)).toBe(total);
      const q = await api(second.url, key, 'POST', `/v1/tenants/${tenantId}/collections/c/query`, {
        count: true,
        limit: 1,
      });
      expect(q.json.count).toBe(total);

      const again = await api(second.url, key, 'POST', `/v1/tenants/${tenantId}/moves`, { region: 'eu' });
      expect(again.status).toBe(202);
      let phase = '';
      for (let i = 0; i < 600 && phase !== 'switched' && phase !== 'failed'; i++) {
        await new Promise((r) => setTimeout(r, 100));
        phase = (await api(second.url, key, 'GET', `/v1/tenants/${tenantId}/moves/${again.json.id}`)).json
          .phase as string;
      }
      expect(phase).toBe('switched');
      expect(await count(eu, 'documents', tenantId)).toBe(total);
    } finally {
      second.child.kill('SIGTERM');
      await new Promise((r) => second.child.on('exit', r));
    }
  }, 180_000);
});
