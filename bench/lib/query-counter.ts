import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { QueryStats, RunnerMessage, ServerMessage, StatementStats } from './protocol.js';

/**
 * Counts the SQL round trips a server process makes. Every statement node-postgres sends, whether
 * through pool.query or a checked-out client, goes through Client.prototype.query, so wrapping that
 * one method sees all of them. A multi-statement string (BEGIN plus a prelude) is one round trip and
 * counts once.
 */

type AnyFn = (...args: unknown[]) => unknown;

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

let queries = 0;
let totalMs = 0;
let inFlight = 0;
let detail = false;
let cpuSince = process.cpuUsage();
const byStatement = new Map<string, StatementStats>();

const LITERAL = /'(?:[^']|'')*'/g;
const KEPT = new Set(["'<uuid>'", "''"]);
const QUALIFIED_NAME = /^'[a-z_]+\.[a-z_]+'$/;

/**
 * Statements that differ only in their values count as one: UUIDs become <uuid>, other string literals
 * '?', except qualified names such as 'strata.tenant_id' (settings, sequences), which say what a statement does.
 */
function normalize(text: string): string {
  return text
    .replace(/\s+/g, ' ')
    .trim()
    .replace(UUID, '<uuid>')
    .replace(LITERAL, (lit) => (KEPT.has(lit) || QUALIFIED_NAME.test(lit) ? lit : "'?'"));
}

function record(text: string, ms: number): void {
  inFlight--;
  queries++;
  totalMs += ms;
  if (!detail) return;
  const key = normalize(text);
  const entry = byStatement.get(key);
  if (entry) {
    entry.count++;
    entry.totalMs += ms;
  } else {
    byStatement.set(key, { statement: key, count: 1, totalMs: ms });
  }
}

let installed = false;

export function installQueryCounter(): void {
  if (installed) return;
  installed = true;
  const proto = pg.Client.prototype as unknown as { query: AnyFn };
  const original = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]) {
    const first = args[0];
    const text = typeof first === 'string' ? first : ((first as { text?: string } | undefined)?.text ?? '');
    inFlight++;
    const started = performance.now();
    const done = () => record(text, performance.now() - started);
    const last = args[args.length - 1];
    if (typeof last === 'function') {
      args[args.length - 1] = function (this: unknown, ...cbArgs: unknown[]) {
        done();
        return (last as AnyFn).apply(this, cbArgs);
      };
      return original.apply(this, args);
    }
    const result = original.apply(this, args);
    if (result instanceof Promise) result.then(done, done);
    return result;
  };
}

export function resetQueryStats(withDetail = false): void {
  detail = withDetail;
  queries = 0;
  totalMs = 0;
  byStatement.clear();
  cpuSince = process.cpuUsage();
}

export function queryStats(): QueryStats {
  const cpu = process.cpuUsage(cpuSince);
  return {
    queries,
    totalMs,
    inFlight,
    cpuMs: (cpu.user + cpu.system) / 1000,
    statements: [...byStatement.values()].sort((a, b) => b.count - a.count).map((s) => ({ ...s })),
  };
}

/** Answers the runner's reset/stats/shutdown messages; exits when the runner goes away. */
export function serveRunnerMessages(close: () => Promise<void>): void {
  let closing: Promise<void> | undefined;
  const shutdown = () => {
    closing ??= close().catch((err) => console.error(err));
    return closing;
  };
  const send = (message: ServerMessage) => process.send?.(message);
  process.on('message', (message: RunnerMessage) => {
    if (message.type === 'reset') {
      resetQueryStats(message.detail === true);
      send({ type: 'reset' });
    } else if (message.type === 'stats') {
      send({ type: 'stats', stats: queryStats() });
    } else if (message.type === 'shutdown') {
      shutdown().finally(() => process.exit(0));
    }
  });
  // The runner died or was interrupted: do not linger holding database connections.
  process.on('disconnect', () => {
    shutdown().finally(() => process.exit(0));
  });
}
