import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon, { type Result as AutocannonResult } from 'autocannon';
import pg from 'pg';
import { BASELINE_SQL } from './lib/baseline-sql.js';
import { type CpuSnapshot, isLocalDatabase, machineCpu, postgresCpuMsBetween, postgresCpuSnapshot } from './lib/cpu.js';
import type { RunnerMessage, ServerMessage } from './lib/protocol.js';

/**
 * Strata's first benchmark: the document hot path (get, query, insert) through the full stack,
 * against a baseline doing the same SQL with bare Fastify + node-postgres. Both servers run in their
 * own processes over the same PostgreSQL database; the load generator (autocannon) runs here.
 *
 *   npm run bench -- [--duration 5] [--rounds 2] [--warmup 3] [--connections 10] [--documents 10000]
 *                    [--scenarios get,query,insert] [--database-url postgres://...] [--probe 50]
 *                    [--out bench/results/latest.json] [--keep-database]
 */

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const SCENARIOS = ['get', 'query', 'insert'] as const;
type ScenarioName = (typeof SCENARIOS)[number];
type ServerName = 'baseline' | 'strata';
const COLLECTION = 'items';
const CATEGORIES = 10;
const QUERY_LIMIT = 20;
const BATCH_SIZE = 500;

const HELP = `Usage: npm run bench -- [options]

Options (environment variable in brackets):
  --duration <s>        seconds per measured run (BENCH_DURATION, default 5)
  --rounds <n>          measured runs per scenario and server, alternating the two (BENCH_ROUNDS, default 2)
  --warmup <s>          warm-up seconds per scenario and server (BENCH_WARMUP, default 3)
  --quiet-wait <s>      before each measured run, wait up to this long for other processes on the machine
                        to use less than 0.15 cores (BENCH_QUIET_WAIT, default 0: do not wait)
  --connections <n>     concurrent HTTP connections (BENCH_CONNECTIONS, default 10)
  --documents <n>       documents seeded on each side (BENCH_DOCUMENTS, default 10000)
  --scenarios <list>    comma-separated subset of get,query,insert (BENCH_SCENARIOS, default all)
  --database-url <url>  PostgreSQL server to use; a fresh database strata_bench_<timestamp> is created
                        on it and dropped at the end (BENCH_DATABASE_URL,
                        default postgres://postgres@127.0.0.1:5432/postgres)
  --probe <n>           sequential requests per scenario for the SQL round-trip count (BENCH_PROBE, default 50)
  --out <file>          JSON results (BENCH_OUT, default bench/results/latest.json)
  --keep-database       do not drop the bench database at the end
  --profile             write V8 CPU profiles of both servers to bench/results/profiles/<server>/ (BENCH_PROFILE=1)
  --help                this text`;

interface Options {
  duration: number;
  warmup: number;
  rounds: number;
  quietWait: number;
  connections: number;
  documents: number;
  scenarios: ScenarioName[];
  serverUrl: string;
  probe: number;
  out: string;
  keepDatabase: boolean;
  /** Directory for V8 CPU profiles of the two server processes, when asked for. */
  profileDir: string | undefined;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      'quiet-wait': { type: 'string' },
      connections: { type: 'string' },
      documents: { type: 'string' },
      scenarios: { type: 'string' },
      'database-url': { type: 'string' },
      probe: { type: 'string' },
      out: { type: 'string' },
      'keep-database': { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const env = process.env;
  const num = (name: string, flag: string | undefined, envValue: string | undefined, fallback: number, min: number) => {
    const raw = flag ?? envValue;
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min} (got ${raw})`);
    return n;
  };
  const scenarios = (values.scenarios ?? env.BENCH_SCENARIOS ?? SCENARIOS.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of scenarios) {
    if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`unknown scenario "${s}" (get, query, insert)`);
  }
  return {
    duration: num('duration', values.duration, env.BENCH_DURATION, 5, 1),
    warmup: num('warmup', values.warmup, env.BENCH_WARMUP, 3, 0),
    rounds: Math.floor(num('rounds', values.rounds, env.BENCH_ROUNDS, 2, 1)),
    quietWait: num('quiet-wait', values['quiet-wait'], env.BENCH_QUIET_WAIT, 0, 0),
    connections: Math.floor(num('connections', values.connections, env.BENCH_CONNECTIONS, 10, 1)),
    documents: Math.floor(num('documents', values.documents, env.BENCH_DOCUMENTS, 10_000, 1)),
    scenarios: SCENARIOS.filter((s) => scenarios.includes(s)),
    serverUrl: values['database-url'] ?? env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    probe: Math.floor(num('probe', values.probe, env.BENCH_PROBE, 50, 1)),
    out: resolve(values.out ?? env.BENCH_OUT ?? join(HERE, 'results', 'latest.json')),
    keepDatabase: values['keep-database'] || env.BENCH_KEEP_DATABASE === '1',
    profileDir: values.profile || env.BENCH_PROFILE === '1' ? join(HERE, 'results', 'profiles') : undefined,
  };
}

// ---------------------------------------------------------------------------------------------------
// progress output

const started = performance.now();
const isTty = process.stdout.isTTY === true;
let liveLine = false;

function stamp(): string {
  return `[${((performance.now() - started) / 1000).toFixed(1).padStart(6)}s]`;
}

function log(message: string): void {
  if (liveLine) process.stdout.write('\n');
  liveLine = false;
  console.log(`${stamp()} ${message}`);
}

/** A line rewritten in place on a terminal; on a pipe only the final version is printed (by log). */
function live(message: string): void {
  if (!isTty) return;
  process.stdout.write(`\r\x1b[2K${stamp()} ${message}`);
  liveLine = true;
}

// ---------------------------------------------------------------------------------------------------
// server processes

interface Server {
  name: ServerName;
  base: string;
  operatorKey: string | undefined;
  child: ChildProcess;
  ask<T extends ServerMessage['type']>(message: RunnerMessage, reply: T): Promise<Extract<ServerMessage, { type: T }>>;
  stop(): Promise<void>;
}

function waitFor<T extends ServerMessage['type']>(
  child: ChildProcess,
  name: string,
  type: T,
): Promise<Extract<ServerMessage, { type: T }>> {
  return new Promise((resolvePromise, reject) => {
    const onMessage = (message: ServerMessage) => {
      if (message.type !== type) return;
      cleanup();
      resolvePromise(message as Extract<ServerMessage, { type: T }>);
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`the ${name} server exited (${signal ?? code}) before answering "${type}"`));
    };
    const cleanup = () => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

async function startServer(
  name: ServerName,
  script: string,
  env: Record<string, string>,
  profileDir: string | undefined,
): Promise<Server> {
  // One directory per server: the process writes a profile per thread (the main thread's is the large one).
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, name)}`] : [];
  const child = fork(join(HERE, script), [], {
    execArgv: ['--import', 'tsx', ...profile],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = await waitFor(child, name, 'ready');
  let stopped: Promise<void> | undefined;
  return {
    name,
    base: `http://127.0.0.1:${ready.port}`,
    operatorKey: ready.operatorKey,
    child,
    ask(message, reply) {
      const answer = waitFor(child, name, reply);
      child.send(message);
      return answer;
    },
    stop() {
      stopped ??= new Promise<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(timer);
          done();
        });
        if (child.connected) child.send({ type: 'shutdown' } satisfies RunnerMessage);
        else child.kill('SIGTERM');
      });
      return stopped;
    },
  };
}

/**
 * Waits until a server has finished the requests still in flight when a load run stopped (the load
 * generator closes its connections; the server still completes what it had started), so they are
 * not counted in the next measurement.
 */
async function settle(server: Server): Promise<void> {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    const { stats } = await server.ask({ type: 'stats' }, 'stats');
    if (stats.inFlight === 0 && stats.queries === last) return;
    last = stats.queries;
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------------------------------------------
// HTTP setup calls

async function api<T>(base: string, token: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 500)}`);
  return (text ? JSON.parse(text) : null) as T;
}

// ---------------------------------------------------------------------------------------------------
// the workload

function documentData(n: number): Record<string, unknown> {
  return {
    category: `c${n % CATEGORIES}`,
    n,
    title: `Document ${n}`,
    tags: ['bench', `t${n % 7}`],
    active: n % 2 === 0,
  };
}

const seededId = (i: number) => `doc-${String(i).padStart(6, '0')}`;

interface Target {
  server: ServerName;
  base: string;
  headers: Record<string, string>;
  documentPath(id: string): string;
  documentsPath: string;
  queryPath: string;
}

interface NextRequest {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
}

/** The request stream of a scenario: the same sequence shape for both servers. */
function requestSource(
  scenario: ScenarioName,
  target: Target,
  documents: number,
  firstNew = documents,
): () => NextRequest {
  let k = 0;
  switch (scenario) {
    case 'get':
      return () => ({ method: 'GET', path: target.documentPath(seededId(Math.floor(Math.random() * documents))) });
    case 'query':
      return () => ({
        method: 'POST',
        path: target.queryPath,
        body: JSON.stringify({
          filter: { path: 'category', op: 'eq', value: `c${k++ % CATEGORIES}` },
          limit: QUERY_LIMIT,
        }),
      });
    case 'insert':
      return () => ({
        method: 'POST',
        path: target.documentsPath,
        body: JSON.stringify({ data: documentData(firstNew + k++) }),
      });
  }
}

// ---------------------------------------------------------------------------------------------------
// load runs

interface Failure {
  status: number;
  count: number;
  sample: string;
}

/** One load run against one server, raw. */
interface Sample {
  seconds: number;
  /** Responses received (any status). */
  requests: number;
  ok: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  failures: Failure[];
  latencies: number[];
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

let currentInstance: { stop(): void } | undefined;

function runLoad(
  target: Target,
  next: () => NextRequest,
  seconds: number,
  connections: number,
  label: string,
): Promise<Sample> {
  const latencies: number[] = [];
  const failures = new Map<number, Failure>();
  let ticks = 0;
  return new Promise((resolvePromise, reject) => {
    const instance = autocannon(
      {
        url: target.base,
        connections,
        duration: seconds,
        timeout: 10,
        headers: target.headers,
        requests: [
          {
            setupRequest(request) {
              const r = next();
              request.method = r.method;
              request.path = r.path;
              if (r.body !== undefined) request.body = r.body;
              return request;
            },
            onResponse(status, body) {
              if (status >= 200 && status < 300) return;
              const f = failures.get(status);
              if (f) f.count++;
              else failures.set(status, { status, count: 1, sample: body.slice(0, 300) });
            },
          },
        ],
      },
      (err, result: AutocannonResult) => {
        currentInstance = undefined;
        if (err) return reject(err);
        resolvePromise({
          seconds: result.duration,
          requests: result.requests.total,
          ok: result['2xx'],
          errors: result.errors,
          timeouts: result.timeouts,
          non2xx: result.non2xx,
          failures: [...failures.values()],
          latencies,
        });
      },
    );
    currentInstance = instance;
    instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
      latencies.push(ms);
    });
    instance.on('tick', (t: { counter: number }) => {
      ticks++;
      live(`${label}  ${Math.min(ticks, seconds)}/${seconds}s  ${t.counter} req/s`);
    });
  });
}

/** CPU cores busy on the whole machine over `ms` (while the bench itself is idle, that is other load). */
async function machineLoad(ms: number): Promise<number | undefined> {
  const before = machineCpu();
  await new Promise((r) => setTimeout(r, ms));
  const after = machineCpu();
  return before && after ? (after.busyMs - before.busyMs) / ms : undefined;
}

/** Waits (up to maxSeconds) until the machine is quiet, so other work does not skew a run. */
async function waitForQuiet(maxSeconds: number, label: string): Promise<void> {
  if (maxSeconds <= 0) return;
  const deadline = performance.now() + maxSeconds * 1000;
  for (;;) {
    const load = await machineLoad(1000);
    if (load === undefined || load < 0.15) return;
    if (performance.now() > deadline) {
      log(`${label}: the machine stayed busy (${fmt(load, 2)} cores used by other processes); measuring anyway`);
      return;
    }
    live(`${label}: waiting for other processes to finish (${fmt(load, 2)} cores busy)`);
  }
}

/** A measured run: the load, the SQL statements the server sent, and where the CPU went. */
interface Measured extends Sample {
  queries: number;
  cpuMs: {
    server: number;
    postgres: number | null;
    loadGenerator: number;
    /** Everything else running on the machine meanwhile (machine busy time minus the three above). */
    otherProcesses: number | null;
    steal: number | null;
  };
}

async function measure(
  server: Server,
  target: Target,
  next: () => NextRequest,
  seconds: number,
  connections: number,
  label: string,
  measurePostgres: boolean,
  quietWait: number,
): Promise<Measured> {
  await settle(server);
  await waitForQuiet(quietWait, label);
  await server.ask({ type: 'reset' }, 'reset');
  const pgBefore = measurePostgres ? postgresCpuSnapshot() : undefined;
  const machineBefore = machineCpu();
  const selfBefore = process.cpuUsage();
  // Polled during the run too, so short-lived postgres processes (autovacuum workers) are seen.
  const pgSeen: CpuSnapshot = new Map();
  const poll = () => {
    for (const [pid, ticks] of postgresCpuSnapshot() ?? []) pgSeen.set(pid, Math.max(ticks, pgSeen.get(pid) ?? 0));
  };
  const poller = pgBefore ? setInterval(poll, 500) : undefined;
  const run = await runLoad(target, next, seconds, connections, label);
  clearInterval(poller);
  const self = process.cpuUsage(selfBefore);
  const machineAfter = machineCpu();
  if (pgBefore) poll();
  const pgAfter = pgBefore ? pgSeen : undefined;
  await settle(server);
  const { stats } = await server.ask({ type: 'stats' }, 'stats');
  const postgres = pgBefore && pgAfter ? postgresCpuMsBetween(pgBefore, pgAfter) : null;
  const loadGenerator = (self.user + self.system) / 1000;
  const machine =
    machineBefore && machineAfter
      ? { busy: machineAfter.busyMs - machineBefore.busyMs, steal: machineAfter.stealMs - machineBefore.stealMs }
      : undefined;
  return {
    ...run,
    queries: stats.queries,
    cpuMs: {
      server: stats.cpuMs,
      postgres,
      loadGenerator,
      otherProcesses:
        machine && postgres !== null ? Math.max(0, machine.busy - stats.cpuMs - postgres - loadGenerator) : null,
      steal: machine ? machine.steal : null,
    },
  };
}

interface CpuShare {
  /** CPU microseconds per response. */
  usPerRequest: number;
  /** Average number of cores busy over the measured time. */
  cores: number;
}

interface SideResult {
  rounds: number;
  seconds: number;
  requests: number;
  ok: number;
  /** 2xx responses per second over all rounds, and per round. */
  rps: number;
  rpsPerRound: number[];
  latencyMs: { mean: number; p50: number; p95: number; p99: number; max: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  failures: Failure[];
  sqlPerRequest: number;
  cpu: {
    server: CpuShare;
    postgres: CpuShare | null;
    loadGenerator: CpuShare;
    otherProcesses: CpuShare | null;
    steal: CpuShare | null;
  };
}

/** Pools the rounds of one side: total responses over total time, percentiles over all latencies. */
function summarize(samples: Measured[]): SideResult {
  const sum = (f: (m: Measured) => number) => samples.reduce((a, m) => a + f(m), 0);
  const seconds = sum((m) => m.seconds);
  const requests = sum((m) => m.requests);
  const ok = sum((m) => m.ok);
  const all = samples.flatMap((m) => m.latencies);
  const sorted = Float64Array.from(all).sort();
  const n = Math.max(1, requests);
  const share = (ms: number): CpuShare => ({ usPerRequest: (ms * 1000) / n, cores: ms / (seconds * 1000) });
  const maybe = (f: (m: Measured) => number | null) =>
    samples.every((m) => f(m) !== null) ? share(sum((m) => f(m) as number)) : null;
  const failures = new Map<number, Failure>();
  for (const f of samples.flatMap((m) => m.failures)) {
    const seen = failures.get(f.status);
    if (seen) seen.count += f.count;
    else failures.set(f.status, { ...f });
  }
  return {
    rounds: samples.length,
    seconds,
    requests,
    ok,
    rps: ok / seconds,
    rpsPerRound: samples.map((m) => m.ok / m.seconds),
    latencyMs: {
      mean: all.length ? all.reduce((a, b) => a + b, 0) / all.length : 0,
      p50: percentile(sorted, 0.5),
      p95: percentile(sorted, 0.95),
      p99: percentile(sorted, 0.99),
      max: sorted.length ? (sorted[sorted.length - 1] as number) : 0,
    },
    errors: sum((m) => m.errors),
    timeouts: sum((m) => m.timeouts),
    non2xx: sum((m) => m.non2xx),
    failures: [...failures.values()],
    sqlPerRequest: sum((m) => m.queries) / n,
    cpu: {
      server: share(sum((m) => m.cpuMs.server)),
      postgres: maybe((m) => m.cpuMs.postgres),
      loadGenerator: share(sum((m) => m.cpuMs.loadGenerator)),
      otherProcesses: maybe((m) => m.cpuMs.otherProcesses),
      steal: maybe((m) => m.cpuMs.steal),
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// SQL round-trip probe: sequential requests, statements counted in the server process

interface ProbeStatement {
  statement: string;
  perRequest: number;
  meanMs: number;
}

interface Probe {
  requests: number;
  roundTripsPerRequest: number;
  sqlMsPerRequest: number;
  clientMsPerRequest: number;
  statements: ProbeStatement[];
}

async function probe(server: Server, target: Target, next: () => NextRequest, n: number): Promise<Probe> {
  const send = async () => {
    const r = next();
    const res = await fetch(`${target.base}${r.path}`, {
      method: r.method,
      headers: target.headers,
      ...(r.body === undefined ? {} : { body: r.body }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${server.name} ${r.method} ${r.path}: ${res.status} ${text.slice(0, 300)}`);
  };
  await settle(server);
  for (let i = 0; i < 5; i++) await send();
  await server.ask({ type: 'reset', detail: true }, 'reset');
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await send();
  const clientMs = performance.now() - t0;
  const { stats } = await server.ask({ type: 'stats' }, 'stats');
  return {
    requests: n,
    roundTripsPerRequest: stats.queries / n,
    sqlMsPerRequest: stats.totalMs / n,
    clientMsPerRequest: clientMs / n,
    statements: stats.statements.map((s) => ({
      statement: s.statement,
      perRequest: s.count / n,
      meanMs: s.totalMs / s.count,
    })),
  };
}

// ---------------------------------------------------------------------------------------------------
// reporting

interface ScenarioResult {
  scenario: ScenarioName;
  baseline: SideResult;
  strata: SideResult;
  ratio: { throughput: number; p50: number; p99: number };
}

const fmt = (n: number, digits = 2) => n.toFixed(digits);

function table(rows: string[][], rightAlign: boolean[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, i) => (rightAlign[i] ? cell.padStart(widths[i] as number) : cell.padEnd(widths[i] as number)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function cpuTable(results: ScenarioResult[]): string {
  const rows: string[][] = [
    ['scenario', 'server', 'server process', 'PostgreSQL', 'load generator', 'other processes', 'steal'],
  ];
  const cell = (c: CpuShare | null) => (c ? `${fmt(c.usPerRequest, 0)} us (${fmt(c.cores, 2)})` : 'n/a');
  for (const r of results) {
    for (const side of ['baseline', 'strata'] as const) {
      const c = r[side].cpu;
      rows.push([
        r.scenario,
        side,
        cell(c.server),
        cell(c.postgres),
        cell(c.loadGenerator),
        cell(c.otherProcesses),
        cell(c.steal),
      ]);
    }
  }
  return table(rows, [false, false, true, true, true, true, true]);
}

function resultsTable(results: ScenarioResult[]): string {
  const rows: string[][] = [['scenario', 'server', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'SQL/req']];
  for (const r of results) {
    for (const side of ['baseline', 'strata'] as const) {
      const s = r[side];
      rows.push([
        r.scenario,
        side,
        fmt(s.rps, 0),
        fmt(s.latencyMs.p50),
        fmt(s.latencyMs.p95),
        fmt(s.latencyMs.p99),
        String(s.errors + s.timeouts + s.non2xx),
        fmt(s.sqlPerRequest, 1),
      ]);
    }
    rows.push([
      '',
      'strata/baseline',
      `${fmt(r.ratio.throughput)}x`,
      `${fmt(r.ratio.p50)}x`,
      '',
      `${fmt(r.ratio.p99)}x`,
      '',
      '',
    ]);
  }
  return table(rows, [false, false, true, true, true, true, true, true]);
}

// ---------------------------------------------------------------------------------------------------
// main

/** The code under test: the commit, and whether packages/ differs from it (BENCH_REVISION overrides). */
function revision(): string {
  if (process.env.BENCH_REVISION) return process.env.BENCH_REVISION;
  const git = (...args: string[]) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' });
  const head = git('rev-parse', '--short', 'HEAD');
  if (head.status !== 0) return 'unknown';
  const dirty = git('status', '--porcelain', '--', 'packages').stdout.trim() !== '';
  return `${head.stdout.trim()}${dirty ? ' with uncommitted changes in packages/' : ''}`;
}

function databaseUrlFor(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function main(): Promise<number> {
  const options = parseOptions();
  const dbName = `strata_bench_${Date.now()}`;
  const dbUrl = databaseUrlFor(options.serverUrl, dbName);
  const admin = new pg.Client({ connectionString: options.serverUrl });
  const servers: Server[] = [];
  let dbCreated = false;
  let cleaned: Promise<void> | undefined;

  const cleanup = () => {
    cleaned ??= (async () => {
      currentInstance?.stop();
      await Promise.all(servers.map((s) => s.stop()));
      if (dbCreated && !options.keepDatabase) {
        await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch((err) => {
          console.error(`could not drop ${dbName}: ${(err as Error).message}`);
        });
        log(`dropped database ${dbName}`);
      } else if (dbCreated) {
        log(`kept database ${dbName} (${dbUrl})`);
      }
      await admin.end().catch(() => {});
    })();
    return cleaned;
  };
  process.once('SIGINT', () => {
    log('interrupted; cleaning up');
    cleanup().finally(() => process.exit(130));
  });

  try {
    await admin.connect();
    const pgInfo = await admin.query<{ version: string; server_version: string; sync: string; shared: string }>(
      `SELECT version(), current_setting('server_version') AS server_version,
              current_setting('synchronous_commit') AS sync, current_setting('shared_buffers') AS shared`,
    );
    const cpus = os.cpus();
    const strataEnv = Object.fromEntries(
      Object.entries(process.env).filter(([k, v]) => k.startsWith('STRATA_') && v !== undefined && v !== ''),
    ) as Record<string, string>;
    const code = revision();
    const machine = {
      cpu: cpus[0]?.model ?? 'unknown',
      cores: cpus.length,
      memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      node: process.version,
      postgres: pgInfo.rows[0]?.server_version ?? 'unknown',
      postgresVersion: pgInfo.rows[0]?.version ?? 'unknown',
      postgresSettings: { synchronous_commit: pgInfo.rows[0]?.sync, shared_buffers: pgInfo.rows[0]?.shared },
    };
    log(
      `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB; Node ${machine.node}; PostgreSQL ${machine.postgres}`,
    );
    log(
      `options: ${options.rounds} x ${options.duration}s measured after ${options.warmup}s warm-up per scenario and server, ` +
        `${options.connections} connections, ` +
        `${options.documents} documents, scenarios ${options.scenarios.join(',')}`,
    );
    const settings = Object.entries(strataEnv).map(([k, v]) => `${k}=${v}`);
    log(`code: ${code}`);
    log(`Strata settings from the environment: ${settings.length ? settings.join(' ') : 'none (defaults)'}`);

    const backgroundLoad = await machineLoad(1000);
    if (backgroundLoad !== undefined) {
      log(`background load before starting: ${fmt(backgroundLoad, 2)} cores busy (of ${os.cpus().length})`);
    }
    const measurePostgres = isLocalDatabase(options.serverUrl) && postgresCpuSnapshot() !== undefined;
    await admin.query(`CREATE DATABASE ${dbName}`);
    dbCreated = true;
    log(`created database ${dbName}`);

    // Strata: boot (migrations, first operator key), then a tenant, an API key and a collection over HTTP.
    log('starting Strata (full stack) ...');
    const strata = await startServer(
      'strata',
      'strata-server.ts',
      { BENCH_TARGET_DATABASE_URL: dbUrl },
      options.profileDir,
    );
    servers.push(strata);
    const operatorKey = strata.operatorKey;
    if (!operatorKey) throw new Error('Strata did not create a first operator key on the fresh database');
    const tenant = await api<{ id: string }>(strata.base, operatorKey, 'POST', '/v1/tenants', {
      slug: 'bench',
      name: 'Benchmark tenant',
      plan: 'enterprise',
    });
    const key = await api<{ secret: string }>(strata.base, operatorKey, 'POST', `/v1/tenants/${tenant.id}/api-keys`, {
      name: 'bench',
      scopes: ['data:read', 'data:write'],
    });
    await api(strata.base, operatorKey, 'POST', `/v1/tenants/${tenant.id}/collections`, { name: COLLECTION });
    log(`Strata on ${strata.base}: tenant ${tenant.id}, collection "${COLLECTION}", API key with data:read,data:write`);

    const seedStart = performance.now();
    for (let from = 0; from < options.documents; from += BATCH_SIZE) {
      const operations = [];
      for (let i = from; i < Math.min(from + BATCH_SIZE, options.documents); i++) {
        operations.push({ op: 'create', collection: COLLECTION, id: seededId(i), data: documentData(i) });
      }
      await api(strata.base, key.secret, 'POST', `/v1/tenants/${tenant.id}/batch`, { operations });
      live(
        `seeding Strata through POST /batch: ${Math.min(from + BATCH_SIZE, options.documents)}/${options.documents}`,
      );
    }
    log(
      `seeded ${options.documents} documents through POST /batch in ${fmt((performance.now() - seedStart) / 1000, 1)}s`,
    );

    // The baseline table: same columns, checks and primary key; same rows (copied); no RLS, no foreign key.
    const db = new pg.Client({ connectionString: dbUrl });
    await db.connect();
    try {
      await db.query('CREATE SCHEMA bench_baseline');
      await db.query(
        `CREATE TABLE bench_baseline.documents
           (LIKE strata_data.documents INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`,
      );
      await db.query(
        `INSERT INTO bench_baseline.documents SELECT * FROM strata_data.documents WHERE tenant_id = $1 AND collection = $2`,
        [tenant.id, COLLECTION],
      );
      await db.query('VACUUM ANALYZE strata_data.documents');
      await db.query('VACUUM ANALYZE strata_data.changes');
      await db.query('VACUUM ANALYZE strata_data.tenant_sequences');
      await db.query('VACUUM ANALYZE bench_baseline.documents');
    } finally {
      await db.end();
    }
    log('copied the documents into bench_baseline.documents; VACUUM ANALYZE done');

    log('starting the baseline (Fastify + pg) ...');
    const baseline = await startServer(
      'baseline',
      'baseline-server.ts',
      {
        BENCH_TARGET_DATABASE_URL: dbUrl,
        BENCH_TENANT_ID: tenant.id,
        BENCH_COLLECTION: COLLECTION,
      },
      options.profileDir,
    );
    servers.push(baseline);
    log(`baseline on ${baseline.base}`);

    const strataPrefix = `/v1/tenants/${tenant.id}/collections/${COLLECTION}`;
    const targets: Record<ServerName, Target> = {
      baseline: {
        server: 'baseline',
        base: baseline.base,
        headers: { 'content-type': 'application/json' },
        documentPath: (id) => `/documents/${id}`,
        documentsPath: '/documents',
        queryPath: '/query',
      },
      strata: {
        server: 'strata',
        base: strata.base,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key.secret}` },
        documentPath: (id) => `${strataPrefix}/documents/${id}`,
        documentsPath: `${strataPrefix}/documents`,
        queryPath: `${strataPrefix}/query`,
      },
    };
    const byName: Record<ServerName, Server> = { baseline, strata };

    // Both sides must hold the same data and answer the same query with the same documents.
    {
      const id = seededId(Math.floor(options.documents / 2));
      const [a, b] = await Promise.all(
        (['baseline', 'strata'] as const).map((s) =>
          api<{ data: unknown }>(targets[s].base, key.secret, 'GET', targets[s].documentPath(id)),
        ),
      );
      if (JSON.stringify(a?.data) !== JSON.stringify(b?.data)) throw new Error(`document ${id} differs between sides`);
      const query = { filter: { path: 'category', op: 'eq', value: 'c3' }, limit: QUERY_LIMIT };
      const ask = (s: ServerName) =>
        api<{ data: { id: string }[] }>(targets[s].base, key.secret, 'POST', targets[s].queryPath, query);
      const [qa, qb] = await Promise.all([ask('baseline'), ask('strata')]);
      const ids = (r: { data: { id: string }[] }) => r.data.map((d) => d.id).join(',');
      if (ids(qa) !== ids(qb) || qa.data.length === 0) throw new Error('the query returns different documents');
      log(`checked: same document and same query result (${qa.data.length} documents) on both sides`);
    }

    // Load runs. Insert goes last: its new documents would otherwise change what get and query see.
    // Each scenario: a warm-up per side, then `rounds` measured runs per side in ABBA order, so slow
    // drift on the machine (other load, disk) falls on both sides alike.
    const results: ScenarioResult[] = [];
    let failed = false;
    const sideNames = ['baseline', 'strata'] as const;
    for (const scenario of options.scenarios) {
      const next = {
        baseline: requestSource(scenario, targets.baseline, options.documents),
        strata: requestSource(scenario, targets.strata, options.documents),
      };
      const label = (side: ServerName) => `${scenario.padEnd(6)} ${side.padEnd(8)}`;
      if (options.warmup > 0) {
        for (const side of sideNames) {
          const w = await runLoad(
            targets[side],
            next[side],
            options.warmup,
            options.connections,
            `${label(side)} warm-up`,
          );
          log(`${label(side)} warm-up    ${fmt(w.ok / w.seconds, 0)} req/s`);
        }
      }
      const samples: Record<ServerName, Measured[]> = { baseline: [], strata: [] };
      for (let round = 1; round <= options.rounds; round++) {
        const order = round % 2 === 1 ? sideNames : ([...sideNames].reverse() as ServerName[]);
        for (const side of order) {
          const tag = `${label(side)} run ${round}/${options.rounds}`;
          const m = await measure(
            byName[side],
            targets[side],
            next[side],
            options.duration,
            options.connections,
            tag,
            measurePostgres,
            options.quietWait,
          );
          samples[side].push(m);
          const other =
            m.cpuMs.otherProcesses === null
              ? ''
              : `, other processes ${fmt(m.cpuMs.otherProcesses / (m.seconds * 1000), 2)} cores`;
          log(
            `${tag}  ${fmt(m.ok / m.seconds, 0)} req/s, ${fmt(m.queries / Math.max(1, m.requests), 1)} SQL/request${other}`,
          );
        }
      }
      const sides = { baseline: summarize(samples.baseline), strata: summarize(samples.strata) };
      for (const side of sideNames) {
        const r = sides[side];
        const bad = r.errors + r.timeouts + r.non2xx;
        log(
          `${label(side)} ${fmt(r.rps, 0)} req/s, p50 ${fmt(r.latencyMs.p50)} ms, p95 ${fmt(r.latencyMs.p95)} ms, ` +
            `p99 ${fmt(r.latencyMs.p99)} ms, ${bad} errors, ${fmt(r.sqlPerRequest, 1)} SQL/request`,
        );
        if (bad > 0) {
          failed = true;
          log(`  ${side} ${scenario}: ${r.errors} connection errors, ${r.timeouts} timeouts, ${r.non2xx} non-2xx`);
          for (const f of r.failures) log(`    HTTP ${f.status} x${f.count}: ${f.sample}`);
        }
        if (r.cpu.otherProcesses && r.cpu.otherProcesses.cores > 0.25) {
          log(`  note: other processes kept ${fmt(r.cpu.otherProcesses.cores, 2)} cores busy during the ${side} runs`);
        }
      }
      results.push({
        scenario,
        baseline: sides.baseline,
        strata: sides.strata,
        ratio: {
          throughput: sides.strata.rps / sides.baseline.rps,
          p50: sides.strata.latencyMs.p50 / sides.baseline.latencyMs.p50,
          p99: sides.strata.latencyMs.p99 / sides.baseline.latencyMs.p99,
        },
      });
    }

    // Round trips: sequential requests, every statement counted in the server process.
    const probes: Record<string, Record<ServerName, Probe>> = {};
    for (const scenario of options.scenarios) {
      const entry = {} as Record<ServerName, Probe>;
      for (const side of ['baseline', 'strata'] as const) {
        entry[side] = await probe(
          byName[side],
          targets[side],
          requestSource(scenario, targets[side], options.documents, options.documents * 10),
          options.probe,
        );
      }
      probes[scenario] = entry;
      log(
        `round trips  ${scenario.padEnd(6)} baseline ${fmt(entry.baseline.roundTripsPerRequest, 1)}, ` +
          `strata ${fmt(entry.strata.roundTripsPerRequest, 1)} SQL statements per request`,
      );
    }

    console.log('');
    console.log(
      `Results: ${options.rounds} x ${options.duration}s per scenario and server after ${options.warmup}s warm-up, ` +
        `${options.connections} connections, ` +
        `${options.documents} documents (req/s counts 2xx responses; errors = connection errors + timeouts + non-2xx)`,
    );
    console.log('');
    console.log(resultsTable(results));
    console.log('');
    console.log('CPU per response in the measured runs, and (in brackets) average cores busy:');
    console.log(cpuTable(results));
    console.log('');
    console.log(
      `SQL round trips per request (${options.probe} sequential requests each, statements counted in the server):`,
    );
    for (const [scenario, entry] of Object.entries(probes)) {
      for (const side of ['baseline', 'strata'] as const) {
        const p = entry[side];
        console.log(
          `  ${scenario} ${side}: ${fmt(p.roundTripsPerRequest, 1)} round trips, ${fmt(p.sqlMsPerRequest)} ms in SQL ` +
            `of ${fmt(p.clientMsPerRequest)} ms per request`,
        );
        for (const s of p.statements) {
          const text = s.statement.length > 110 ? `${s.statement.slice(0, 107)}...` : s.statement;
          console.log(`      ${fmt(s.perRequest, 2).padStart(5)} x ${fmt(s.meanMs, 3)} ms  ${text}`);
        }
      }
    }

    const output = {
      generated_at: new Date().toISOString(),
      revision: code,
      machine,
      background_load_cores: backgroundLoad ?? null,
      options: {
        duration_s: options.duration,
        rounds: options.rounds,
        warmup_s: options.warmup,
        connections: options.connections,
        documents: options.documents,
        scenarios: options.scenarios,
        probe_requests: options.probe,
        quiet_wait_s: options.quietWait,
        strata_env: strataEnv,
      },
      workload: {
        collection: COLLECTION,
        document: documentData(3),
        query: { filter: { path: 'category', op: 'eq', value: 'c<0..9>' }, limit: QUERY_LIMIT },
        categories: CATEGORIES,
      },
      baseline_sql: BASELINE_SQL,
      results,
      round_trips: probes,
    };
    mkdirSync(dirname(options.out), { recursive: true });
    writeFileSync(options.out, `${JSON.stringify(output, null, 2)}\n`);
    console.log('');
    log(`wrote ${relative(ROOT, options.out) || options.out}`);
    if (options.profileDir) log(`CPU profiles of the servers: ${relative(ROOT, options.profileDir)}/`);
    if (failed) log('some requests failed (see above): the figures of those runs are not comparable');
    return failed ? 1 : 0;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
