import pg from 'pg';
import { checkChannel, type Database, type Queryable, type QueryResult } from './driver.js';

// Return int8 and numeric as JS numbers when they fit; counts and sizes are far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

function wrap(client: pg.Pool | pg.PoolClient): Queryable {
  return {
    async query<R>(text: string, params: unknown[] = []): Promise<QueryResult<R>> {
      const r = await client.query(text, params);
      return { rows: r.rows as R[], rowCount: r.rowCount ?? r.rows.length };
    },
    async exec(sql: string) {
      await client.query(sql);
    },
  };
}

export function openPostgres(
  url: string | pg.PoolConfig,
  options: { max?: number } = {},
): Database & { pool: pg.Pool } {
  const settings = typeof url === 'string' ? { connectionString: url } : url;
  const pool = new pg.Pool({ ...settings, max: options.max ?? 10 });
  // An idle client that loses its connection must not crash the process.
  pool.on('error', () => {});
  const outer = wrap(pool);
  return {
    kind: 'postgres',
    pool,
    query: outer.query,
    exec: outer.exec,
    async transaction(fn, prelude) {
      const client = await pool.connect();
      try {
        await client.query(prelude ? `BEGIN; ${prelude}` : 'BEGIN');
        const result = await fn(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    async script<R>(prelude: string, statement: string): Promise<QueryResult<R>> {
      const client = await pool.connect();
      try {
        const results = (await client.query(`BEGIN; ${prelude} ${statement}; COMMIT;`)) as unknown as pg.QueryResult[];
        const r = results[results.length - 2] as pg.QueryResult;
        return { rows: r.rows as R[], rowCount: r.rowCount ?? r.rows.length };
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    async listen(channel, onPayload, onGap) {
      checkChannel(channel);
      let client: pg.Client | null = null;
      let stopped = false;
      let retry: NodeJS.Timeout | undefined;
      const connect = async (afterGap: boolean): Promise<void> => {
        const c = new pg.Client({ ...settings, application_name: 'strata-listen' });
        c.on('notification', (m) => {
          if (m.channel === channel && m.payload !== undefined) onPayload(m.payload);
        });
        // A lost connection is replaced; what was announced meanwhile is unknown, hence onGap.
        c.on('error', () => {
          if (stopped || client !== c) return;
          client = null;
          c.end().catch(() => {});
          schedule();
        });
        await c.connect();
        await c.query(`LISTEN ${channel}`);
        client = c;
        if (afterGap) onGap?.();
      };
      const schedule = () => {
        retry = setTimeout(() => {
          if (!stopped) connect(true).catch(schedule);
        }, 1000);
        retry.unref();
      };
      await connect(false);
      return async () => {
        stopped = true;
        clearTimeout(retry);
        await client?.end().catch(() => {});
      };
    },
    close: () => pool.end(),
  };
}
