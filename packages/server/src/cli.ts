import { parseArgs } from 'node:util';
import { type Config, ConfigError, loadConfig } from './config.js';
import { createStrata, openDatabase } from './main.js';
import { createOperatorKey } from './modules/auth/service.js';
import { migrate } from './platform/db/migrate.js';
import { createLogger } from './platform/logger.js';

/**
 * The `strata` CLI. Administrative commands go through the same services and HTTP routes as the API
 * (via app.inject with an operator key), so the CLI can never do what the API would refuse.
 * Exit codes: 0 ok, 1 failed, 2 usage error, 3 not found, 4 refused (conflict, permission, quota).
 */
const USAGE = `Usage: strata <command> [options]

Commands:
  serve                                   start the server (embedded Postgres unless DATABASE_URL is set)
  migrate                                 apply pending migrations and exit
  plans list                              list plans
  tenants create --slug S --name N [--plan P] [--owner-email E] [--region R]
  tenants list [--status active|suspended|deleted]
  tenants show|suspend|resume|delete|restore <tenant-id>
  tenants purge                           remove deleted tenants past their grace period
  tenants move <tenant-id> [--region R] [--kind shared|dedicated]
                                          move the tenant's data, live, to region R's shared datastore or
                                          to a dedicated database (progress bar)
  tenants move <tenant-id> --finish M     drop the source copy of switched move M
  tenants set-plan <tenant-id> --plan P [--move-back]
                                          change the plan; with --move-back, a tenant whose placement the
                                          new plan does not include is first moved to the shared datastore
  snapshots create <tenant-id>            take a snapshot of the tenant's data and files
  snapshots list <tenant-id>              the tenant's snapshots
  snapshots restore <tenant-id> --snapshot S [--kind K] [--region R]
                                          restore in place, or into a new placement (a live move)
  keys create --operator [--name N]       create an operator key (secret shown once)
  keys create --tenant T --name N --scopes data:read,data:write
  keys list --tenant T
  keys revoke --tenant T <key-id>

Options:
  --json    machine-readable output
  --help    this text`;

const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3, refused: 4 } as const;

class UsageError extends Error {}

type Strata = Awaited<ReturnType<typeof createStrata>>;

async function call(strata: Strata, operatorToken: string, method: string, url: string, body?: unknown) {
  const res = await strata.app.inject({
    method: method as 'GET',
    url,
    headers: { authorization: `Bearer ${operatorToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { payload: JSON.stringify(body) } : {}),
  });
  const payload = res.body ? JSON.parse(res.body) : null;
  if (res.statusCode >= 400) {
    const err = new Error(`${payload?.code ?? res.statusCode}: ${payload?.detail ?? payload?.title ?? res.body}`);
    Object.assign(err, {
      exitCode: res.statusCode === 404 ? EXIT.notFound : res.statusCode < 500 ? EXIT.refused : EXIT.failed,
      problem: payload,
    });
    throw err;
  }
  return payload;
}

function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cells = rows.map((r) =>
    columns.map((c) => (Array.isArray(r[c]) ? (r[c] as unknown[]).join(',') : String(r[c] ?? ''))),
  );
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => (row[i] as string).length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

/** `[#########.........]  45%  4,500/10,000 documents  1,200/s  ~5 s left  copying` */
function progressLine(m: {
  phase: string;
  documents_copied: number;
  documents_total: number;
  rate_per_second: number | null;
  eta_seconds: number | null;
}): string {
  const total = Math.max(m.documents_total, 1);
  const share = m.phase === 'copying' ? Math.min(m.documents_copied / total, 1) : 1;
  const width = 24;
  const filled = Math.round(share * width);
  const n = (x: number) => x.toLocaleString('en-US');
  const parts = [
    `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`,
    `${String(Math.round(share * 100)).padStart(3)}%`,
    `${n(m.documents_copied)}/${n(m.documents_total)} documents`,
    m.rate_per_second ? `${n(m.rate_per_second)}/s` : '',
    m.eta_seconds !== null ? `~${m.eta_seconds} s left` : '',
    m.phase,
  ];
  return parts.filter(Boolean).join('  ');
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
      operator: { type: 'boolean', default: false },
      slug: { type: 'string' },
      name: { type: 'string' },
      plan: { type: 'string' },
      'owner-email': { type: 'string' },
      region: { type: 'string' },
      status: { type: 'string' },
      tenant: { type: 'string' },
      scopes: { type: 'string' },
      finish: { type: 'string' },
      snapshot: { type: 'string' },
      kind: { type: 'string' },
      'move-back': { type: 'boolean', default: false },
    },
  });
  const [command, sub, arg] = positionals;
  if (values.help || !command) {
    console.log(USAGE);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  const config = loadConfig();
  const print = (data: unknown, human: () => string) =>
    console.log(values.json ? JSON.stringify(data, null, 2) : human());

  if (command === 'serve') return serve(config);
  if (command === 'migrate') {
    const db = await openDatabase(config);
    try {
      const result = await migrate(db, undefined, (m) => {
        if (!values.json) console.log(`applied ${m.set}/${String(m.version).padStart(4, '0')}-${m.name}`);
      });
      print(result, () => (result.applied.length ? `${result.applied.length} migration(s) applied` : 'up to date'));
    } finally {
      await db.close();
    }
    return EXIT.ok;
  }

  const strata = await createStrata(
    { ...config, logLevel: 'warn' },
    { logger: createLogger(values.json ? 'silent' : 'warn') },
  );
  try {
    if (strata.firstOperatorKey && !values.json) {
      console.error(`First operator key (shown once, keep it safe): ${strata.firstOperatorKey}`);
    }
    // The CLI runs with the operator's authority on the local installation: it mints a short-lived
    // internal key for its own calls and revokes it when done.
    const internal = await createOperatorKey(strata.platform.db, 'cli (internal, revoked on exit)');
    try {
      return await dispatch(strata, internal.token, command, sub, arg, values, print);
    } finally {
      await strata.platform.db.query('UPDATE strata.operator_keys SET revoked_at = now() WHERE id = $1', [internal.id]);
    }
  } finally {
    await strata.close();
  }
}

type Values = Record<string, string | boolean | undefined>;

async function dispatch(
  strata: Strata,
  token: string,
  command: string,
  sub: string | undefined,
  arg: string | undefined,
  values: Values,
  print: (data: unknown, human: () => string) => void,
): Promise<number> {
  const need = (name: string) => {
    const v = values[name];
    if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
    return v;
  };
  const id = () => {
    if (!arg) throw new UsageError(`${command} ${sub} needs an id`);
    return arg;
  };
  const tenantCols = ['id', 'slug', 'name', 'plan', 'status', 'data_region'];
  /** Starts a move and follows it to its end: a progress bar on a terminal, a line a second otherwise. */
  const followMove = async (tenant: string, body: Record<string, unknown>) =>
    follow(tenant, await call(strata, token, 'POST', `/v1/tenants/${tenant}/moves`, body));
  const follow = async (tenant: string, started: Awaited<ReturnType<typeof call>>) => {
    const tty = process.stderr.isTTY && !values.json;
    let status = started;
    while (status.phase === 'copying' || status.phase === 'fenced') {
      if (!values.json) process.stderr.write(`${tty ? '\r' : ''}${progressLine(status)}${tty ? '' : '\n'}`);
      await new Promise((r) => setTimeout(r, tty ? 200 : 1000));
      status = await call(strata, token, 'GET', `/v1/tenants/${tenant}/moves/${started.id}`);
    }
    if (!values.json) process.stderr.write(`${tty ? '\r' : ''}${progressLine(status)}\n`);
    return status;
  };
  switch (`${command} ${sub ?? ''}`.trim()) {
    case 'plans list': {
      const res = await call(strata, token, 'GET', '/v1/plans');
      print(res, () => table(res.data, ['id', 'name', 'price_cents_per_month', 'datastores']));
      return EXIT.ok;
    }
    case 'tenants create': {
      const body = {
        slug: need('slug'),
        name: need('name'),
        ...(values.plan ? { plan: values.plan } : {}),
        ...(values['owner-email'] ? { owner_email: values['owner-email'] } : {}),
        ...(values.region ? { data_region: values.region } : {}),
      };
      const t = await call(strata, token, 'POST', '/v1/tenants', body);
      print(
        t,
        () =>
          `created tenant ${t.slug} (${t.id}) on plan ${t.plan}${t.owner_invitation ? `; invitation mailed to ${t.owner_invitation.email}` : ''}`,
      );
      return EXIT.ok;
    }
    case 'tenants list': {
      const rows: Record<string, unknown>[] = [];
      let cursor: string | null = null;
      do {
        const qs = new URLSearchParams({
          limit: '200',
          ...(cursor ? { cursor } : {}),
          ...(values.status ? { status: String(values.status) } : {}),
        });
        const res: { data: Record<string, unknown>[]; next_cursor: string | null } = await call(
          strata,
          token,
          'GET',
          `/v1/tenants?${qs}`,
        );
        rows.push(...res.data);
        cursor = res.next_cursor;
      } while (cursor);
      print({ data: rows }, () => table(rows, tenantCols));
      return EXIT.ok;
    }
    case 'tenants show': {
      const t = await call(strata, token, 'GET', `/v1/tenants/${id()}`);
      print(t, () =>
        Object.entries(t)
          .map(([k, v]) => `${k.padEnd(16)}${JSON.stringify(v)}`)
          .join('\n'),
      );
      return EXIT.ok;
    }
    case 'tenants suspend':
    case 'tenants resume':
    case 'tenants restore':
    case 'tenants delete': {
      const t =
        sub === 'delete'
          ? await call(strata, token, 'DELETE', `/v1/tenants/${id()}`)
          : await call(strata, token, 'POST', `/v1/tenants/${id()}/${sub}`);
      print(t, () => `tenant ${t.slug} is now ${t.status}${t.purge_after ? ` (purged after ${t.purge_after})` : ''}`);
      return EXIT.ok;
    }
    case 'tenants move': {
      const tenant = id();
      if (typeof values.finish === 'string') {
        const done = await call(strata, token, 'POST', `/v1/tenants/${tenant}/moves/${values.finish}/finish`);
        print(done, () => `move ${done.id} finished: the source copy in ${done.source_region} is dropped`);
        return EXIT.ok;
      }
      if (!values.region && !values.kind) throw new UsageError('tenants move needs --region R and/or --kind K');
      const status = await followMove(tenant, {
        kind: values.kind ?? 'shared',
        ...(values.region ? { region: values.region } : {}),
      });
      print(status, () =>
        status.phase === 'switched'
          ? `moved to ${status.target_kind} in ${status.target_region}; writes paused ${status.pause_ms} ms. ` +
            `Drop the source copy with:\n  strata tenants move ${tenant} --finish ${status.id}`
          : `move ${status.phase}: ${status.error ?? ''}`,
      );
      return status.phase === 'switched' ? EXIT.ok : EXIT.failed;
    }
    case 'tenants set-plan': {
      const tenant = id();
      const change = () => call(strata, token, 'PATCH', `/v1/tenants/${tenant}`, { plan: need('plan') });
      let t: Record<string, unknown>;
      try {
        t = await change();
      } catch (err) {
        // Refused because the new plan does not include where the data lives: move it back, then change.
        const refusedForPlacement = Boolean((err as Error & { problem?: { placement?: string } }).problem?.placement);
        if (!values['move-back'] || !refusedForPlacement) throw err;
        if (!values.json)
          process.stderr.write(`${(err as Error).message}\nmoving the data to the shared datastore first\n`);
        const moved = await followMove(tenant, { kind: 'shared' });
        if (moved.phase !== 'switched') {
          print(moved, () => `move ${moved.phase}: ${moved.error ?? ''}; the plan is unchanged`);
          return EXIT.failed;
        }
        t = await change();
      }
      print(t, () => `tenant ${t.slug} is now on plan ${t.plan}`);
      return EXIT.ok;
    }
    case 'snapshots create': {
      const tenant = id();
      let snap = await call(strata, token, 'POST', `/v1/tenants/${tenant}/snapshots`);
      while (snap.status === 'running') {
        await new Promise((r) => setTimeout(r, 200));
        snap = await call(strata, token, 'GET', `/v1/tenants/${tenant}/snapshots/${snap.id}`);
      }
      print(snap, () =>
        snap.status === 'complete'
          ? `snapshot ${snap.id}: ${snap.collections} collections, ${snap.documents} documents, ${snap.files} files, ` +
            `${snap.bytes} bytes, checksum ${snap.content_checksum}`
          : `snapshot ${snap.status}: ${snap.error ?? ''}`,
      );
      return snap.status === 'complete' ? EXIT.ok : EXIT.failed;
    }
    case 'snapshots list': {
      const res = await call(strata, token, 'GET', `/v1/tenants/${id()}/snapshots`);
      print(res, () =>
        table(res.data, ['id', 'status', 'created_at', 'region', 'collections', 'documents', 'files', 'bytes']),
      );
      return EXIT.ok;
    }
    case 'snapshots restore': {
      const tenant = id();
      const placement =
        values.kind || values.region
          ? { kind: values.kind ?? 'shared', ...(values.region ? { region: values.region } : {}) }
          : undefined;
      const snapshot = need('snapshot');
      const res = await strata.app.inject({
        method: 'POST',
        url: `/v1/tenants/${tenant}/snapshots/${snapshot}/restore`,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        payload: JSON.stringify(placement ? { placement } : {}),
      });
      if (res.statusCode === 202) {
        // Into a new placement: a move whose copy comes from the snapshot.
        const status = await follow(tenant, res.json());
        print(status, () =>
          status.phase === 'switched'
            ? `restored into ${status.target_kind} in ${status.target_region}; writes paused ${status.pause_ms} ms`
            : `restore ${status.phase}: ${status.error ?? ''}`,
        );
        return status.phase === 'switched' ? EXIT.ok : EXIT.failed;
      }
      const body = res.json();
      if (res.statusCode >= 400) {
        throw Object.assign(new Error(`${body.code}: ${body.detail ?? body.title}`), {
          exitCode: res.statusCode === 404 ? EXIT.notFound : res.statusCode < 500 ? EXIT.refused : EXIT.failed,
        });
      }
      print(
        body,
        () =>
          `restored snapshot ${body.snapshot_id}: ${body.documents} documents, ${body.files} files, epoch ${body.epoch}; writes held ${body.ms} ms`,
      );
      return EXIT.ok;
    }
    case 'tenants purge': {
      const purged = await strata.services.tenants.purgeDue();
      print({ purged }, () => `${purged.length} tenant(s) purged`);
      return EXIT.ok;
    }
    case 'keys create': {
      if (values.operator) {
        const key = await createOperatorKey(strata.platform.db, String(values.name ?? 'operator key'));
        print(key, () => `operator key ${key.prefix} created. Secret (shown once):\n${key.token}`);
        return EXIT.ok;
      }
      const scopes = need('scopes').split(',');
      const key = await call(strata, token, 'POST', `/v1/tenants/${need('tenant')}/api-keys`, {
        name: need('name'),
        scopes,
      });
      print(
        key,
        () => `API key ${key.prefix} created with scopes ${key.scopes.join(',')}. Secret (shown once):\n${key.secret}`,
      );
      return EXIT.ok;
    }
    case 'keys list': {
      const res = await call(strata, token, 'GET', `/v1/tenants/${need('tenant')}/api-keys?limit=200`);
      print(res, () => table(res.data, ['id', 'name', 'prefix', 'scopes', 'revoked_at', 'last_used_at']));
      return EXIT.ok;
    }
    case 'keys revoke': {
      const key = await call(strata, token, 'DELETE', `/v1/tenants/${need('tenant')}/api-keys/${id()}`);
      print(key, () => `API key ${key.prefix} revoked`);
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown command: ${command} ${sub ?? ''}`);
  }
}

async function serve(config: Config): Promise<number> {
  const strata = await createStrata(config);
  const { app, platform } = strata;
  const address = await app.listen({ host: config.host, port: config.port });
  const where = config.databaseUrl ? 'PostgreSQL (DATABASE_URL)' : `embedded PGlite in ${config.dataDir}/pg`;
  console.log(`\nStrata is listening on ${address}  (data: ${where})`);
  console.log(`OpenAPI: ${address}/openapi.json   mail outbox: ${config.mailDir}`);
  if (strata.firstOperatorKey) {
    console.log(`\nOperator key (shown once; store it now):\n  ${strata.firstOperatorKey}\n`);
  } else {
    console.log('Operator key: created on first start; make another with `npm run strata -- keys create --operator`\n');
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      platform.log.info({ type: 'shutdown', signal }, 'shutting down: finishing in-flight requests');
      strata.close().then(resolve, resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return EXIT.ok;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof UsageError) {
      console.error(err.message);
      if (err instanceof UsageError) console.error('\nRun `strata --help` for usage.');
      process.exit(EXIT.usage);
    }
    console.error(`error: ${(err as Error).message}`);
    process.exit((err as { exitCode?: number }).exitCode ?? EXIT.failed);
  },
);
