import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { migrate } from '../src/platform/db/migrate.js';
import { openPostgres } from '../src/platform/db/pg-driver.js';
import { openPglite } from '../src/platform/db/pglite-driver.js';
import { adminUrl, databaseUrlFor } from './pg-url.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgliteTemplate: string;
    postgresTemplate: string;
  }
}

/**
 * Builds one migrated template per run; each test file clones it (PGlite: loadDataDir of a dump;
 * PostgreSQL: CREATE DATABASE ... TEMPLATE). Migrations run twice here to prove they are idempotent.
 */
export default async function setup(project: TestProject) {
  const driver = project.config.env?.STRATA_TEST_DRIVER;
  if (driver === 'postgres') {
    const base = process.env.STRATA_TEST_DATABASE_URL as string;
    const name = `strata_tpl_${process.pid}`;
    const admin = openPostgres(adminUrl(base), { max: 1 });
    await admin.exec(`DROP DATABASE IF EXISTS ${name}`);
    await admin.exec(`CREATE DATABASE ${name}`);
    const db = openPostgres(databaseUrlFor(base, name), { max: 2 });
    await migrate(db);
    const second = await migrate(db);
    if (second.applied.length > 0) throw new Error('migrations are not idempotent');
    await db.close();
    project.provide('postgresTemplate', name);
    return async () => {
      const { rows } = await admin.query<{ datname: string }>(
        `SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE $2`,
        [name, `strata_t_${process.pid}_%`],
      );
      for (const r of rows) await admin.exec(`DROP DATABASE IF EXISTS ${r.datname} WITH (FORCE)`);
      await admin.close();
    };
  }
  const db = await openPglite();
  await migrate(db);
  const second = await migrate(db);
  if (second.applied.length > 0) throw new Error('migrations are not idempotent');
  const dump = await db.pglite.dumpDataDir('none');
  await db.close();
  const file = join(tmpdir(), `strata-pglite-template-${process.pid}.tar`);
  writeFileSync(file, Buffer.from(await dump.arrayBuffer()));
  project.provide('pgliteTemplate', file);
  return undefined;
}
