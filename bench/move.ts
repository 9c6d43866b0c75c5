import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { RunnerMessage, ServerMessage } from './lib/protocol.js';

/**
 * A live move of a large tenant under load: Strata in its own process on PostgreSQL, a tenant with N
 * documents (default 100,000) in region "local", writers and readers running all along, and a move to
 * region "eu" (a second database on the same server) or, with --target dedicated, into a dedicated
 * database Strata creates on the same server. Reports the move's total time, the longest write pause, how
 * many requests got 503 (and were retried) and how many failed for good (the target is none), and checks
 * that every acknowledged write is in the target.
 *
 *   npm run bench:move -- --documents 100000 --writers 8 --readers 4 [--target eu|dedicated]
 */

const { values } = parseArgs({
  options: {
    documents: { type: 'string', default: process.env.BENCH_DOCUMENTS ?? '100000' },
    writers: { type: 'string', default: '8' },
    readers: { type: 'string', default: '4' },
    'database-url': {
      type: 'string',
      default: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    },
    target: { type: 'string', default: 'eu' },
    out: { type: 'string' },
  },
});
const documents = Number(values.documents);
const target = values.target === 'dedicated' ? 'dedicated' : 'eu';
const out =
  values.out ?? (target === 'eu' ? 'bench/results/move-latest.json' : 'bench/results/move-dedicated-latest.json');
const base = values['database-url'] as string;
const stamp = Date.now();
const dbUrl = (name: string) => {
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
};
const names = { control: `strata_bench_move_${stamp}`, eu: `strata_bench_move_eu_${stamp}` };
const admin = new pg.Client({ connectionString: base });
await admin.connect();
for (const n of Object.values(names)) await admin.query(`CREATE DATABASE ${n}`);
const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)}  ${msg}\n`);

const server = fork(new URL('./strata-server.ts', import.meta.url).pathname, [], {
  execArgv: ['--import', 'tsx'],
  env: {
    ...process.env,
    BENCH_TARGET_DATABASE_URL: dbUrl(names.control),
    STRATA_REGIONS: 'local,eu',
    STRATA_SHARED_DATASTORES: `eu=${dbUrl(names.eu)}`,
  },
});
const ready = await new Promise<Extract<ServerMessage, { type: 'ready' }>>((resolve) =>
  server.on('message', (m: ServerMessage) => m.type === 'ready' && resolve(m)),
);
const url = `http://127.0.0.1:${ready.port}`;
const op = ready.operatorKey as string;

async function call(token: string, method: string, path: string, body?: unknown) {
  const r = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return {
    status: r.status,
    retryAfter: r.headers.get('retry-after'),
    json: (await r.json().catch(() => null)) as never,
  };
}

try {
  const tenant = (
    await call(op, 'POST', '/v1/tenants', {
      slug: 'big',
      name: 'Big',
      plan: 'enterprise',
      allowed_regions: ['local', 'eu'],
    })
  ).json as { id: string };
  const t = tenant.id;
  const key = (
    (await call(op, 'POST', `/v1/tenants/${t}/api-keys`, { name: 'load', scopes: ['data:write'] })).json as {
      secret: string;
    }
  ).secret;
  await call(key, 'POST', `/v1/tenants/${t}/collections`, { name: 'items' });
  log(`seeding ${documents.toLocaleString('en-US')} documents`);
  for (let b = 0; b * 500 < documents; b++) {
    const operations = Array.from({ length: Math.min(500, documents - b * 500) }, (_, i) => ({
      op: 'create',
      collection: 'items',
      id: `seed-${b * 500 + i}`,
      data: { n: b * 500 + i, title: `Document ${b * 500 + i}` },
    }));
    const r = await call(key, 'POST', `/v1/tenants/${t}/batch`, { operations });
    if (r.status !== 200) throw new Error(`seed failed: ${r.status}`);
    if (b % 40 === 0) log(`  ${((b + 1) * 500).toLocaleString('en-US')}`);
  }

  // Load: writers update documents (retrying 503s as a client should), readers read.
  const stats = { writes: 0, reads: 0, retried503: 0, failed: 0, maxRetryMs: 0 };
  const acked = new Map<string, number>();
  let stop = false;
  const writer = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const id = `w${w}-${i % 500}`;
      const startedAt = Date.now();
      for (let attempt = 0; ; attempt++) {
        const r = await call(key, 'PUT', `/v1/tenants/${t}/collections/items/documents/${id}`, { data: { w, i } });
        if (r.status === 200 || r.status === 201) {
          acked.set(id, (r.json as { version: number }).version);
          stats.writes++;
          stats.maxRetryMs = Math.max(stats.maxRetryMs, attempt > 0 ? Date.now() - startedAt : 0);
          break;
        }
        if (r.status === 503 && attempt < 20) {
          stats.retried503++;
          await new Promise((res) => setTimeout(res, 100));
          continue;
        }
        stats.failed++;
        break;
      }
    }
  };
  const reader = async () => {
    while (!stop) {
      const r = await call(
        key,
        'GET',
        `/v1/tenants/${t}/collections/items/documents/seed-${Math.floor(Math.random() * documents)}`,
      );
      if (r.status === 200) stats.reads++;
      else if (r.status !== 503) stats.failed++;
    }
  };
  const load = [
    ...Array.from({ length: Number(values.writers) }, (_, w) => writer(w)),
    ...Array.from({ length: Number(values.readers) }, () => reader()),
  ];
  await new Promise((r) => setTimeout(r, 2000));

  log(`moving to ${target}`);
  const started = Date.now();
  const body = target === 'eu' ? { region: 'eu' } : { kind: 'dedicated' };
  const move = (await call(op, 'POST', `/v1/tenants/${t}/moves`, body)).json as { id: string };
  let status: Record<string, unknown> = {};
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    status = (await call(op, 'GET', `/v1/tenants/${t}/moves/${move.id}`)).json;
    log(
      `  ${status.phase}  ${Number(status.documents_copied).toLocaleString('en-US')} / ${Number(status.documents_total).toLocaleString('en-US')}  ${status.rate_per_second ?? '-'}/s`,
    );
    if (status.phase !== 'copying' && status.phase !== 'fenced') break;
  }
  const totalMs = Date.now() - started;
  await new Promise((r) => setTimeout(r, 2000));
  stop = true;
  await Promise.all(load);

  // Every acknowledged write is in the target at (at least) its acknowledged version.
  let targetDb = names.eu;
  if (target === 'dedicated') {
    const control = new pg.Client({ connectionString: dbUrl(names.control) });
    await control.connect();
    const ds = await control.query<{ id: string }>('SELECT id FROM strata.datastores WHERE owner_tenant = $1', [t]);
    await control.end();
    targetDb = `strata_ds_${String(ds.rows[0]?.id).replaceAll('-', '')}`;
  }
  const eu = new pg.Client({ connectionString: dbUrl(targetDb) });
  await eu.connect();
  const rows = await eu.query<{ id: string; version: string }>(
    "SELECT id, version FROM strata_data.documents WHERE tenant_id = $1 AND id LIKE 'w%'",
    [t],
  );
  await eu.end();
  const inTarget = new Map(rows.rows.map((r) => [r.id, Number(r.version)]));
  const lost = [...acked].filter(([id, v]) => (inTarget.get(id) ?? 0) < v).length;

  const result = {
    generated_at: new Date().toISOString(),
    documents,
    target,
    writers: Number(values.writers),
    readers: Number(values.readers),
    move: status,
    total_ms: totalMs,
    longest_write_pause_ms: status.pause_ms,
    longest_client_wait_ms: stats.maxRetryMs,
    writes_acknowledged: stats.writes,
    reads: stats.reads,
    requests_answered_503_and_retried: stats.retried503,
    requests_failed: stats.failed,
    acknowledged_writes_missing_in_target: lost,
  };
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(
    [
      `move of ${documents.toLocaleString('en-US')} documents to ${target} under load: ${status.phase}`,
      `  total time              ${(totalMs / 1000).toFixed(1)} s`,
      `  write pause at switch   ${status.pause_ms} ms (longest client wait incl. retries ${stats.maxRetryMs} ms)`,
      `  writes acknowledged     ${stats.writes.toLocaleString('en-US')}, reads ${stats.reads.toLocaleString('en-US')}`,
      `  503 answered (retried)  ${stats.retried503}`,
      `  requests failed         ${stats.failed}`,
      `  acknowledged writes missing in the target: ${lost}`,
    ].join('\n'),
  );
} finally {
  server.send({ type: 'shutdown' } satisfies RunnerMessage);
  await new Promise((r) => server.on('exit', r));
  // The dedicated database the bench made Strata create, if any (its server drops it only on a finished move).
  const control = new pg.Client({ connectionString: dbUrl(names.control) });
  await control.connect();
  const created = await control
    .query<{ id: string }>("SELECT id FROM strata.datastores WHERE kind = 'dedicated'")
    .catch(() => ({ rows: [] as { id: string }[] }));
  await control.end();
  for (const { id } of created.rows) {
    await admin.query(`DROP DATABASE IF EXISTS strata_ds_${id.replaceAll('-', '')} WITH (FORCE)`);
  }
  for (const n of Object.values(names)) await admin.query(`DROP DATABASE IF EXISTS ${n} WITH (FORCE)`);
  await admin.end();
}
