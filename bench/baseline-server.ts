import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import pg from 'pg';
import { newId } from '../packages/server/src/platform/ids.js';
import { BASELINE_SQL as SQL } from './lib/baseline-sql.js';
import type { ServerMessage } from './lib/protocol.js';
import { installQueryCounter, serveRunnerMessages } from './lib/query-counter.js';

/**
 * The baseline: bare Fastify + node-postgres doing the same SQL as Strata's document hot path against
 * a plain copy of strata_data.documents (bench_baseline.documents: same columns, checks and primary
 * key; no row-level security, no foreign key, no change feed). No tenancy, no auth, no transactions
 * beyond the statement's own. Started by bench/run.ts.
 */

installQueryCounter();

const databaseUrl = process.env.BENCH_TARGET_DATABASE_URL;
const tenantId = process.env.BENCH_TENANT_ID;
const collection = process.env.BENCH_COLLECTION;
if (!databaseUrl || !tenantId || !collection)
  throw new Error('BENCH_TARGET_DATABASE_URL, BENCH_TENANT_ID and BENCH_COLLECTION must be set');

// The same pool size as Strata's PostgreSQL driver.
const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
pool.on('error', () => {});

interface Row {
  id: string;
  collection: string;
  version: string | number;
  deleted: boolean;
  body: Record<string, unknown> | null;
  created_at: Date;
  updated_at: Date;
}

const toDocument = (r: Row) => ({
  id: r.id,
  collection: r.collection,
  version: Number(r.version),
  deleted: r.deleted,
  created_at: r.created_at.toISOString(),
  updated_at: r.updated_at.toISOString(),
  data: r.body,
});

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const app = Fastify({ logger: false });

app.get<{ Params: { id: string } }>('/documents/:id', async (request, reply) => {
  const { rows } = await pool.query<Row>(SQL.get, [tenantId, collection, request.params.id]);
  const row = rows[0];
  if (!row) return reply.status(404).send({ error: 'not found' });
  return reply.header('etag', `"${row.version}"`).send(toDocument(row));
});

app.post<{ Body: { data?: unknown } }>('/documents', async (request, reply) => {
  const data = request.body?.data;
  if (!isObject(data)) return reply.status(400).send({ error: 'data must be an object' });
  const text = JSON.stringify(data);
  const { rows } = await pool.query<Row>(SQL.insert, [tenantId, collection, newId(), text, Buffer.byteLength(text)]);
  return reply.status(201).send(toDocument(rows[0] as Row));
});

app.post<{ Body: { filter?: { path?: unknown; op?: unknown; value?: unknown }; limit?: number } }>(
  '/query',
  async (request, reply) => {
    const { filter, limit = 50 } = request.body ?? {};
    if (!filter || typeof filter.path !== 'string' || filter.op !== 'eq' || filter.value === undefined) {
      return reply.status(400).send({ error: 'filter must be {path, op: "eq", value}' });
    }
    const { rows } = await pool.query<Row>(SQL.query, [
      collection,
      filter.path.split('.'),
      JSON.stringify(filter.value),
      tenantId,
      limit + 1,
    ]);
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    return { data: page.map(toDocument), next_cursor: more ? (page[page.length - 1]?.id ?? null) : null };
  },
);

await app.listen({ host: '127.0.0.1', port: 0 });
const { port } = app.server.address() as AddressInfo;

serveRunnerMessages(async () => {
  await app.close();
  await pool.end();
});
const ready: ServerMessage = { type: 'ready', port };
process.send?.(ready);
