import { mkdirSync } from 'node:fs';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite/vector';
import { checkChannel, type Database, type Queryable, type QueryResult } from './driver.js';

/**
 * PGlite is one connection. Its own transaction() does not stop a plain query() from another
 * request running inside an open transaction (and so under that transaction's role and tenant),
 * so every entry point here takes one lock: statements from different requests never interleave.
 */
class Lock {
  #tail: Promise<void> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

function wrap(q: PGlite | Transaction): Queryable {
  return {
    async query<R>(text: string, params: unknown[] = []): Promise<QueryResult<R>> {
      const r = await q.query<R>(text, params);
      return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
    },
    async exec(sql: string) {
      await q.exec(sql);
    },
  };
}

export interface PgliteOptions {
  /** Directory for the data files; undefined keeps the database in memory. */
  dataDir?: string | undefined;
  /** A tarball from dumpDataDir() to start from (tests clone a migrated template this way). */
  loadDataDir?: Blob | File | undefined;
}

export async function openPglite(options: PgliteOptions = {}): Promise<Database & { pglite: PGlite }> {
  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
  const pglite = await PGlite.create({
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
    extensions: { vector },
  });
  const lock = new Lock();
  const outer = wrap(pglite);
  return {
    kind: 'pglite',
    pglite,
    query: (text, params) => lock.run(() => outer.query(text, params)),
    exec: (sql) => lock.run(() => outer.exec(sql)),
    transaction: (fn, prelude) =>
      lock.run(() =>
        pglite.transaction(async (tx) => {
          const q = wrap(tx);
          if (prelude) await q.exec(prelude);
          return fn(q);
        }),
      ),
    script: <R>(prelude: string, statement: string) =>
      lock.run(async (): Promise<QueryResult<R>> => {
        try {
          const results = await pglite.exec(`BEGIN; ${prelude} ${statement}; COMMIT;`);
          const r = results[results.length - 2];
          return { rows: (r?.rows ?? []) as R[], rowCount: r?.affectedRows ?? r?.rows.length ?? 0 };
        } catch (err) {
          await pglite.exec('ROLLBACK').catch(() => {});
          throw err;
        }
      }),
    async listen(channel, onPayload) {
      // One process holds an embedded database, so only this process's own notifications arrive.
      const unsubscribe = await lock.run(() => pglite.listen(checkChannel(channel), onPayload));
      return () => lock.run(() => unsubscribe());
    },
    close: () => lock.run(() => pglite.close()),
  };
}
