import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from '../src/platform/db/driver.js';
import { type Migration, migrate, readMigrations } from '../src/platform/db/migrate.js';
import { openPostgres } from '../src/platform/db/pg-driver.js';
import { openPglite } from '../src/platform/db/pglite-driver.js';
import { cloneDatabase, driver } from './harness.js';
import { adminUrl, databaseUrlFor } from './pg-url.js';

const all = [...readMigrations('control'), ...readMigrations('tenant')];
const label = (m: Pick<Migration, 'set' | 'version' | 'name'>) =>
  `${m.set}/${String(m.version).padStart(4, '0')}-${m.name}`;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/**
 * An empty database (nothing migrated). `connect` opens another handle on it: a second pool on PostgreSQL
 * (another "node"), the same handle on PGlite, which is a single in-process connection.
 */
async function emptyDatabase(): Promise<{ db: Database; connect: () => Database }> {
  if (driver === 'postgres') {
    const base = process.env.STRATA_TEST_DATABASE_URL as string;
    // The name matches what global-setup drops at the end of the run, should a test die before its cleanup.
    const name = `strata_t_${process.ppid}_${randomBytes(4).toString('hex')}`;
    const admin = openPostgres(adminUrl(base), { max: 1 });
    await admin.exec(`CREATE DATABASE ${name}`);
    const handles: Database[] = [];
    const connect = () => {
      const db = openPostgres(databaseUrlFor(base, name), { max: 2 });
      handles.push(db);
      return db;
    };
    const db = connect();
    cleanups.push(async () => {
      for (const h of handles) await h.close();
      await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.close();
    });
    return { db, connect };
  }
  const db = await openPglite();
  cleanups.push(() => db.close());
  return { db, connect: () => db };
}

async function landed(db: Database) {
  const { rows } = await db.query<{ set_name: string; version: number; name: string; checksum: string }>(
    'SELECT set_name, version, name, checksum FROM strata.schema_migrations ORDER BY set_name, version',
  );
  return rows;
}

const expectedRows = () =>
  all
    .map((m) => ({ set_name: m.set, version: m.version, name: m.name, checksum: m.checksum }))
    .sort((a, b) => a.set_name.localeCompare(b.set_name) || a.version - b.version);

describe('migrations', () => {
  it('finds the migration files of both sets, numbered from 1 without gaps', () => {
    for (const set of ['control', 'tenant'] as const) {
      const versions = readMigrations(set).map((m) => m.version);
      expect(versions.length, set).toBeGreaterThan(0);
      expect(versions).toEqual(versions.map((_, i) => i + 1));
    }
  });

  it('on an empty database applies every migration once, in order; a second run applies nothing', async () => {
    const { db } = await emptyDatabase();
    const seen: string[] = [];
    const first = await migrate(db, undefined, (m) => seen.push(label(m)));
    expect(first.applied.map(label)).toEqual(all.map(label));
    expect(seen).toEqual(all.map(label));
    expect(await landed(db)).toEqual(expectedRows());
    // The schema really is there, not only the bookkeeping.
    const tables = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'strata' AND tablename IN ('tenants', 'memberships', 'api_keys')`,
    );
    expect(tables.rows[0]?.n).toBe(3);

    const before = await db.query<{ applied_at: Date }>(
      'SELECT applied_at FROM strata.schema_migrations ORDER BY set_name, version',
    );
    const second = await migrate(db, undefined, (m) => seen.push(label(m)));
    expect(second.applied).toEqual([]);
    expect(seen).toHaveLength(all.length);
    expect(await landed(db)).toEqual(expectedRows());
    const after = await db.query<{ applied_at: Date }>(
      'SELECT applied_at FROM strata.schema_migrations ORDER BY set_name, version',
    );
    expect(after.rows).toEqual(before.rows);
  });

  it('an already migrated database (the cloned template) has nothing pending', async () => {
    const { db, drop } = await cloneDatabase();
    cleanups.push(drop);
    expect((await migrate(db)).applied).toEqual([]);
    expect(await landed(db)).toEqual(expectedRows());
  });

  it('two runners started at once on an empty database both succeed and apply each migration once', async () => {
    const { db, connect } = await emptyDatabase();
    const other = connect();
    const results = await Promise.allSettled([migrate(db), migrate(other), migrate(connect())]);
    for (const r of results) {
      expect(r.status, r.status === 'rejected' ? String(r.reason) : '').toBe('fulfilled');
    }
    const applied = results.flatMap((r) => (r.status === 'fulfilled' ? r.value.applied.map(label) : []));
    expect([...applied].sort()).toEqual(all.map(label).sort());
    expect(await landed(db)).toEqual(expectedRows());
    expect((await migrate(other)).applied).toEqual([]);
  });

  it('refuses a landed migration whose file changed, naming it, and applies nothing', async () => {
    const { db, drop } = await cloneDatabase();
    cleanups.push(drop);
    const edited = all[0] as Migration;
    await db.query('UPDATE strata.schema_migrations SET checksum = $1 WHERE set_name = $2 AND version = $3', [
      'x',
      edited.set,
      edited.version,
    ]);
    const attempt = migrate(db);
    await expect(attempt).rejects.toThrow(/edited after it was applied/);
    await expect(attempt).rejects.toThrow(label(edited));
    // The refusal changed nothing: the tampered row is still there as it was.
    const rows = await landed(db);
    expect(rows).toHaveLength(all.length);
    expect(rows.find((r) => r.set_name === edited.set && r.version === edited.version)?.checksum).toBe('x');
  });

  it('refuses an edited migration of the tenant set too', async () => {
    const { db, drop } = await cloneDatabase();
    cleanups.push(drop);
    const edited = readMigrations('tenant')[0] as Migration;
    await db.query('UPDATE strata.schema_migrations SET checksum = $1 WHERE set_name = $2 AND version = $3', [
      'x',
      edited.set,
      edited.version,
    ]);
    await expect(migrate(db, ['control'])).resolves.toEqual({ applied: [] });
    await expect(migrate(db)).rejects.toThrow(
      new RegExp(`${label(edited)} was edited after it was applied`.replaceAll('/', '\\/')),
    );
  });
});
