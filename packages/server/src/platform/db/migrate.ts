import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from './driver.js';

export type MigrationSet = 'control' | 'tenant';

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../migrations');
// One advisory lock key for all Strata migration runners on a database.
const LOCK_KEY = 72_617_001;

export interface Migration {
  set: MigrationSet;
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export function readMigrations(set: MigrationSet, dir = join(MIGRATIONS_DIR, set)): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}-[a-z0-9-]+\.sql$/.test(f))
    .sort()
    .map((file) => {
      const sql = readFileSync(join(dir, file), 'utf8');
      return {
        set,
        version: Number(file.slice(0, 4)),
        name: file.slice(5, -4),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    });
}

export interface MigrateResult {
  applied: { set: MigrationSet; version: number; name: string }[];
}

/**
 * Applies pending migrations, each in its own transaction under a transaction-level advisory lock.
 * A concurrent runner waits on the lock, then sees the version row and skips it, so running twice
 * (or on two nodes at once) is harmless. A landed migration whose file changed is refused.
 */
export async function migrate(
  db: Database,
  sets: MigrationSet[] = ['control', 'tenant'],
  onApply?: (m: Migration) => void,
): Promise<MigrateResult> {
  // Under the lock too: concurrent CREATE ... IF NOT EXISTS still collide on the catalogs' unique indexes.
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await tx.exec(`
      CREATE SCHEMA IF NOT EXISTS strata;
      CREATE TABLE IF NOT EXISTS strata.schema_migrations (
        set_name text NOT NULL,
        version integer NOT NULL,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (set_name, version)
      );`);
  });
  const applied: MigrateResult['applied'] = [];
  for (const set of sets) {
    for (const m of readMigrations(set)) {
      const ran = await db.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
        const existing = await tx.query<{ checksum: string }>(
          'SELECT checksum FROM strata.schema_migrations WHERE set_name = $1 AND version = $2',
          [m.set, m.version],
        );
        const row = existing.rows[0];
        if (row) {
          if (row.checksum !== m.checksum) {
            throw new Error(
              `Migration ${m.set}/${String(m.version).padStart(4, '0')}-${m.name} was edited after it was applied. ` +
                'Landed migrations are never edited: add a new one instead.',
            );
          }
          return false;
        }
        // The version row goes first: a runner that races past the lock fails on the primary key, not halfway through.
        await tx.query(
          'INSERT INTO strata.schema_migrations (set_name, version, name, checksum) VALUES ($1, $2, $3, $4)',
          [m.set, m.version, m.name, m.checksum],
        );
        await tx.exec(m.sql);
        return true;
      });
      if (ran) {
        applied.push({ set: m.set, version: m.version, name: m.name });
        onApply?.(m);
      }
    }
  }
  return { applied };
}
