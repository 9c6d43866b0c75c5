import { randomBytes, X509Certificate } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ConnectionOptions } from 'node:tls';
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import pg from 'pg';
import { AppError } from '../../platform/errors.js';
import { openObjectStore } from '../../platform/objects/open.js';
import type { ObjectStore } from '../../platform/objects/store.js';
import { ObjectStoreUrlError, parseObjectStoreUrl } from '../../platform/objects/url.js';

/**
 * Checks for a "bring your own database" registration: an enterprise tenant hands Strata a PostgreSQL
 * connection and Strata keeps that tenant's data there.
 *
 * validateByodConfig() is pure and runs before anything touches the network. Its most important rule is
 * that a tenant can never be pointed at one of the operator's own datastores (shared or dedicated), whose
 * other tenants' data the registration would otherwise reach. It also keeps every connection-shaping
 * setting in one place: TLS lives in the `tls` object, and query parameters that would quietly override
 * TLS, the host or the credentials are refused rather than interpreted.
 *
 * testByodConnection() then walks the connection one layer at a time (TCP, authentication, version,
 * privileges, pgvector, latency) so the report tells the tenant which layer is wrong instead of one
 * opaque "could not connect". Connection problems never throw; they are the report.
 *
 * The password is never written into a message, a detail or a log line; redactUrl() is the form of the
 * URL that may be shown.
 */

const MAX_URL_LENGTH = 4096;
const MAX_CA_LENGTH = 65536;
const DEFAULT_PORT = 5432;
/** PostgreSQL 13 is the oldest server Strata stores data on. */
export const MIN_SERVER_VERSION_NUM = 130000;
export const DEFAULT_BYOD_TIMEOUT_MS = 5000;
const LATENCY_SAMPLES = 5;

export const ByodTlsMode = Type.Union([Type.Literal('disable'), Type.Literal('require'), Type.Literal('verify-full')]);
export type ByodTlsMode = Static<typeof ByodTlsMode>;

export const ByodTls = Type.Object(
  {
    mode: ByodTlsMode,
    ca: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: MAX_CA_LENGTH,
        description: 'PEM certificate(s) of the CA that signed the server certificate; only with mode verify-full',
      }),
    ),
  },
  { additionalProperties: false },
);
export type ByodTls = Static<typeof ByodTls>;

export const ByodConfig = Type.Object(
  {
    url: Type.String({
      minLength: 1,
      maxLength: MAX_URL_LENGTH,
      pattern: '^postgres(ql)?://',
      description: 'postgres://user:password@host:port/database',
      examples: ['postgresql://app:secret@db.example.com:5432/app'],
    }),
    tls: Type.Optional(ByodTls),
    bucket: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: MAX_URL_LENGTH,
        pattern: '^s3://',
        description:
          "The tenant's own S3-compatible bucket for its files and snapshots: " +
          's3://ACCESS_KEY:SECRET@bucket/prefix/?endpoint=https://host&region=eu-west-1',
        examples: ['s3://AKIAEXAMPLE:secret@acme-strata/files/?region=eu-west-1'],
      }),
    ),
  },
  { additionalProperties: false },
);
export type ByodConfig = Static<typeof ByodConfig>;

/** A configuration that passed validation, with the TLS default applied. */
export interface ValidByodConfig {
  url: string;
  tls: ByodTls;
  /** The tenant's own bucket (an s3:// URL with its credentials), when it brings one. */
  bucket?: string;
}

export interface ByodValidationOptions {
  /** Connection URLs of every datastore the operator runs (shared and dedicated); a tenant may name none of them. */
  operatorDatastoreUrls: string[];
  /** The operator's own object stores (STRATA_OBJECT_STORES); a tenant may name none of their buckets. */
  operatorObjectStoreUrls?: string[];
}

export interface ValidationIssue {
  path: string;
  message: string;
}

export type ByodStepName =
  | 'reachable'
  | 'authenticated'
  | 'version'
  | 'create_privilege'
  | 'pgvector'
  | 'latency'
  | 'bucket';

export interface ByodStep {
  step: ByodStepName;
  ok: boolean;
  required: boolean;
  detail: string;
  ms: number;
}

export interface ByodReport {
  ok: boolean;
  steps: ByodStep[];
  server_version: string | null;
  pgvector: boolean | null;
  latency_ms: number | null;
  warnings: string[];
}

export interface ByodTestOptions {
  /** Bound for each network step (TCP connect, handshake, each query). */
  timeoutMs?: number;
  /** The same list validateByodConfig takes; the configuration is validated again before any connection. */
  operatorDatastoreUrls?: string[];
  operatorObjectStoreUrls?: string[];
}

// ---- URL handling ----

/** Where a URL leads: the host as connected to, its comparison key, port and database. */
interface Endpoint {
  host: string;
  hostKey: string;
  port: number;
  database: string;
}

interface Target extends Endpoint {
  user: string;
  password: string;
}

/** Query parameters that change TLS behaviour; TLS is configured only through the `tls` object. */
const TLS_PARAMS = new Set(['requiressl', 'gssencmode', 'uselibpqcompat']);
const isTlsParam = (name: string) => name.startsWith('ssl') || TLS_PARAMS.has(name);
/** Query parameters that redirect the connection or supply credentials outside the URL's own fields. */
const TARGET_PARAMS = new Set(['host', 'hostaddr', 'port', 'dbname', 'user', 'password', 'passfile', 'service']);
/** The only other query parameters a registration may carry. */
const ALLOWED_PARAMS = new Set(['application_name']);
/** Query parameters whose values are secrets. */
const SECRET_PARAMS = new Set(['password', 'sslpassword']);

const LOOPBACK =
  /^(localhost|.+\.localhost|127(\.\d{1,3}){3}|0\.0\.0\.0|\[::1?\]|\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\])$/;

/**
 * The host as a connection would resolve it: lower-case, IPv4 in dotted form (`127.1` and `0x7f000001`
 * reach 127.0.0.1 too), no trailing dot. `postgres:` URLs keep their host verbatim, so the host is
 * re-read through the http parser, which applies exactly these normalizations. Null when it is no host.
 */
function normalizeHost(raw: string): string | null {
  if (raw === '' || raw.includes('%') || raw.includes(',')) return null;
  try {
    const host = new URL(`http://${raw}`).hostname;
    return host.endsWith('.') ? host.slice(0, -1) : host;
  } catch {
    return null;
  }
}

/** Every name for this machine compares equal: localhost, 127.0.0.1, ::1 and their variants. */
const hostKey = (host: string) => (LOOPBACK.test(host) ? 'loopback' : host);
const endpointKey = (e: Pick<Endpoint, 'hostKey' | 'port' | 'database'>) => `${e.hostKey}\n${e.port}\n${e.database}`;
const unbracket = (host: string) => (host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host);
const displayHost = (e: Endpoint) => `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;

function decode(part: string): string | null {
  try {
    return decodeURIComponent(part);
  } catch {
    return null;
  }
}

/** The passwords (or bucket secrets) as written in the URLs, raw and decoded, so they can be kept out of every message. */
function secretsOf(...urls: unknown[]): string[] {
  return urls.flatMap((url) => {
    if (typeof url !== 'string') return [];
    try {
      const raw = new URL(url).password;
      return raw ? [...new Set([raw, decode(raw) ?? raw])] : [];
    } catch {
      return [];
    }
  });
}

/** Which bucket of which service a bucket URL names, to compare it with the operator's own stores. */
function bucketKey(spec: { endpoint?: string; bucket: string }): string {
  return `${(spec.endpoint ?? 'aws').toLowerCase()}|${spec.bucket}`;
}

function scrubber(secrets: string[]): (text: string) => string {
  const usable = secrets.filter((s) => s.length >= 3);
  return (text) => usable.reduce((out, s) => out.split(s).join('***'), text);
}

/** A query parameter name fit to quote back; anything odd is described rather than echoed. */
const quotable = (name: string) => (/^[A-Za-z0-9_.-]{1,64}$/.test(name) ? name : 'with an unusual name');

/**
 * Parses a tenant's URL, listing every problem with it. `endpoint` is set whenever host, port and
 * database are readable (so the operator-datastore rule is checked even when something else is wrong);
 * `target` only when there is no problem at all.
 */
function parseTenantUrl(url: string): { endpoint: Endpoint | null; target: Target | null; problems: string[] } {
  const problems: string[] = [];
  const none = (problem: string) => ({ endpoint: null, target: null, problems: [problem] });
  if (url.length > MAX_URL_LENGTH) return none(`must be at most ${MAX_URL_LENGTH} characters`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return none('is not a valid URL');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    return none('must be a postgres:// or postgresql:// URL');
  }
  const host = parsed.hostname === '' ? null : normalizeHost(parsed.hostname);
  if (parsed.hostname === '') problems.push('has no host');
  else if (parsed.hostname.includes(',')) problems.push('names several hosts; give exactly one');
  else if (host === null) problems.push('has a host that is not a valid host name or IP address');
  const port = parsed.port === '' ? DEFAULT_PORT : Number(parsed.port);
  if (port < 1 || port > 65535) problems.push('has a port outside 1-65535');
  const database = decode(parsed.pathname.replace(/^\//, ''));
  if (database === null) problems.push('has a database name that is not correctly percent-encoded');
  else if (database === '') problems.push('has no database name');
  const user = decode(parsed.username);
  const password = decode(parsed.password);
  if (user === null || password === null)
    problems.push('has a user name or password that is not correctly percent-encoded');
  else if (user === '') problems.push('has no user name');
  for (const name of new Set(parsed.searchParams.keys())) {
    const lower = name.toLowerCase();
    if (isTlsParam(lower)) {
      problems.push(`query parameter ${quotable(name)} overrides TLS settings; use the tls object instead`);
    } else if (TARGET_PARAMS.has(lower)) {
      problems.push(
        `query parameter ${quotable(name)} overrides the host, database or credentials; put them in the URL itself`,
      );
    } else if (!ALLOWED_PARAMS.has(lower)) {
      problems.push(`query parameter ${quotable(name)} is not supported`);
    }
  }
  const endpoint = host && database ? { host: unbracket(host), hostKey: hostKey(host), port, database } : null;
  const target =
    endpoint && user && password !== null && problems.length === 0 ? { ...endpoint, user, password } : null;
  return { endpoint, target, problems };
}

/**
 * The endpoints an operator URL reaches. Operator URLs are trusted configuration, so they are read as
 * libpq would: `host`, `port` and `dbname` query parameters count, a socket directory (a host starting
 * with "/") or no host at all means this machine, and a comma-separated host list yields every host.
 * A URL that does not parse cannot be compared and is skipped.
 */
function operatorEndpoints(url: string): string[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [];
  }
  const params = parsed.searchParams;
  const database = params.get('dbname') ?? decode(parsed.pathname.replace(/^\//, '')) ?? '';
  const port = Number(params.get('port') ?? (parsed.port || DEFAULT_PORT));
  const hosts = (params.get('host') ?? parsed.hostname).split(',');
  return hosts.map((raw) => {
    const host = raw === '' || raw.startsWith('/') ? 'localhost' : (normalizeHost(raw) ?? raw.toLowerCase());
    return endpointKey({ hostKey: hostKey(host), port, database });
  });
}

/** The checks shared by validateByodConfig and testByodConnection. */
function check(
  config: unknown,
  options: ByodValidationOptions,
): { issues: ValidationIssue[]; valid: ValidByodConfig | null; target: Target | null } {
  const issues: ValidationIssue[] = [];
  const add = (path: string, message: string) => issues.push({ path, message });
  const input = (typeof config === 'object' && config !== null ? config : {}) as Record<string, unknown>;
  const tlsInput = (typeof input.tls === 'object' && input.tls !== null ? input.tls : {}) as Record<string, unknown>;
  // Strings are checked below with specific messages; the schema reports everything else.
  const checkedBelow = new Set(
    [typeof input.url === 'string' ? '/url' : null, typeof tlsInput.ca === 'string' ? '/tls/ca' : null].filter(
      (p): p is string => p !== null,
    ),
  );
  const seen = new Set<string>();
  for (const e of Value.Errors(ByodConfig, config)) {
    if (checkedBelow.has(e.path) || seen.has(e.path)) continue;
    seen.add(e.path);
    const message =
      e.message === 'Unexpected property'
        ? 'is not a known field'
        : e.path === '/tls/mode'
          ? 'must be one of disable, require, verify-full'
          : e.message;
    add(`body${e.path}`, message);
  }

  let target: Target | null = null;
  if (typeof input.url === 'string') {
    const parsed = parseTenantUrl(input.url);
    for (const p of parsed.problems) add('body/url', p);
    target = parsed.target;
    const own = new Set(options.operatorDatastoreUrls.flatMap(operatorEndpoints));
    if (parsed.endpoint?.database.toLowerCase().startsWith('strata_ds_')) {
      // The names Strata gives the dedicated databases it creates: never another tenant's database.
      add('body/url', 'names a database reserved for the dedicated databases Strata creates (strata_ds_…)');
    } else if (parsed.endpoint && own.has(endpointKey(parsed.endpoint))) {
      add(
        'body/url',
        "points at one of this deployment's own datastores; a tenant's database must be a separate database",
      );
    }
  }

  if (typeof input.bucket === 'string') {
    try {
      const spec = parseObjectStoreUrl(input.bucket);
      if (spec.kind !== 's3') add('body/bucket', 'must be an s3:// URL');
      else if (!spec.credentials) {
        // Without its own credentials the SDK would fall back to the operator's.
        add('body/bucket', 'must carry its own access key and secret (s3://ACCESS_KEY:SECRET@bucket)');
      } else {
        const own = new Set(
          (options.operatorObjectStoreUrls ?? []).flatMap((u) => {
            try {
              const o = parseObjectStoreUrl(u);
              return o.kind === 's3' ? [bucketKey(o)] : [];
            } catch {
              return [];
            }
          }),
        );
        if (own.has(bucketKey(spec))) {
          add('body/bucket', "is one of this deployment's own buckets; a tenant's bucket must be a separate bucket");
        }
      }
    } catch (err) {
      if (!(err instanceof ObjectStoreUrlError)) throw err;
      add('body/bucket', err.message.slice(err.message.indexOf(': ') + 2));
    }
  }

  const mode = tlsInput.mode;
  if (typeof tlsInput.ca === 'string') {
    if (mode !== undefined && mode !== 'verify-full') add('body/tls/ca', 'is only used with mode verify-full');
    else {
      const problem = pemProblem(tlsInput.ca);
      if (problem) add('body/tls/ca', problem);
    }
  }

  const scrub = scrubber(secretsOf(input.url, input.bucket));
  const clean = issues.map((i) => ({ path: i.path, message: scrub(i.message) }));
  if (clean.length > 0 || !target) return { issues: clean, valid: null, target: null };
  const cfg = config as ByodConfig;
  return {
    issues: [],
    valid: { url: cfg.url, tls: cfg.tls ?? { mode: 'verify-full' }, ...(cfg.bucket ? { bucket: cfg.bucket } : {}) },
    target,
  };
}

/** Null when `ca` is one or more PEM certificates Node can load, else what is wrong with it. */
function pemProblem(ca: string): string | null {
  if (ca.length > MAX_CA_LENGTH) return `must be at most ${MAX_CA_LENGTH} characters`;
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(ca)) return 'must hold certificates only, never a private key';
  const blocks = ca.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (!blocks) return 'must be a PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)';
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch {
      return 'holds a PEM block that is not a valid X.509 certificate';
    }
  }
  return null;
}

/**
 * Validates a BYOD registration without touching the network. Throws validation_failed listing every
 * problem (paths like body/url, body/tls/ca); returns the configuration with the TLS default
 * (verify-full) applied.
 */
export function validateByodConfig(config: unknown, options: ByodValidationOptions): ValidByodConfig {
  const { issues, valid } = check(config, options);
  if (!valid) {
    throw new AppError('validation_failed', issues.map((i) => `${i.path} ${i.message}`).join('; '), {
      errors: issues,
    });
  }
  return valid;
}

/** The URL with its password (and any secret query parameter) replaced by ***, fit for logs and reports. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    const secret = [...parsed.searchParams.keys()].filter((k) => SECRET_PARAMS.has(k.toLowerCase()));
    for (const key of secret) parsed.searchParams.set(key, '***');
    return parsed.toString();
  } catch {
    // Not a URL the parser accepts; hide whatever sits between "user:" and the last "@".
    let out = url;
    const start = out.indexOf('://');
    const at = out.lastIndexOf('@');
    if (start >= 0 && at > start) {
      const colon = out.slice(start + 3, at).indexOf(':');
      if (colon >= 0) out = `${out.slice(0, start + 3 + colon + 1)}***${out.slice(at)}`;
    }
    return out.replace(/((?:ssl)?password=)[^&\s]*/gi, '$1***');
  }
}

// ---- connection test ----

interface Outcome {
  ok: boolean;
  detail: string;
}

const elapsed = (started: number) => Math.round((performance.now() - started) * 100) / 100;
const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

function tlsOptions(tls: ByodTls): false | ConnectionOptions {
  if (tls.mode === 'disable') return false;
  // libpq's "require": encrypted, but the certificate is not checked.
  if (tls.mode === 'require') return { rejectUnauthorized: false };
  // verify-full: the chain must lead to `ca` (or a public root) and the certificate must name the host,
  // which pg passes to the TLS layer (as SNI for names, as the identity to check for IP addresses).
  return tls.ca ? { rejectUnauthorized: true, ca: tls.ca } : { rejectUnauthorized: true };
}

/** Connection settings for a pool on a validated configuration (the password passed as a function, as above). */
export function byodPoolConfig(config: ValidByodConfig): pg.PoolConfig {
  const { target } = parseTenantUrl(config.url);
  if (!target) throw new Error('byodPoolConfig: configuration was not validated');
  return {
    host: target.host,
    port: target.port,
    database: target.database,
    user: target.user,
    password: () => target.password,
    ssl: tlsOptions(config.tls),
    application_name: 'strata',
  };
}

/** Opens the tenant's bucket and writes, reads back and deletes a probe object. */
async function probeBucket(url: string, timeoutMs: number): Promise<Outcome> {
  const key = `strata-probe-${randomBytes(6).toString('hex')}`;
  const body = randomBytes(32);
  let store: ObjectStore | undefined;
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref(),
  );
  try {
    const work = async (): Promise<Outcome> => {
      store = await openObjectStore(url);
      await store.put(key, body, { size: body.length });
      const got = await store.get(key);
      const chunks: Buffer[] = [];
      for await (const c of got?.body ?? []) chunks.push(c as Buffer);
      await store.delete(key);
      if (!Buffer.concat(chunks).equals(body)) return { ok: false, detail: 'a probe object read back different bytes' };
      return { ok: true, detail: `${store.description}: wrote, read back and deleted a probe object` };
    };
    return await Promise.race([work(), timeout]);
  } catch (err) {
    return { ok: false, detail: `the bucket cannot be used: ${(err as Error).message}` };
  } finally {
    await store?.close().catch(() => {});
  }
}

/** TCP alone, so "nothing answers" is told apart from everything that can go wrong after it. */
function probeTcp(target: Target, timeoutMs: number): Promise<Outcome> {
  const where = displayHost(target);
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: target.host, port: target.port });
    const done = (outcome: Outcome) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(
      () =>
        done({ ok: false, detail: `no answer from ${where} within ${timeoutMs} ms (a firewall may drop the packets)` }),
      timeoutMs,
    );
    socket.once('connect', () => done({ ok: true, detail: `TCP connection to ${where} opened` }));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      switch (err.code) {
        case 'ECONNREFUSED':
          return done({ ok: false, detail: `connection refused at ${where}: nothing listens on that port` });
        case 'ENOTFOUND':
        case 'EAI_AGAIN':
        case 'EAI_NONAME':
          return done({ ok: false, detail: `host name ${target.host} does not resolve` });
        case 'EHOSTUNREACH':
        case 'ENETUNREACH':
          return done({ ok: false, detail: `no network route to ${where}` });
        case 'ETIMEDOUT':
          return done({ ok: false, detail: `no answer from ${where} (connection timed out)` });
        default:
          return done({ ok: false, detail: `cannot open a TCP connection to ${where}: ${err.message}` });
      }
    });
  });
}

const TLS_ERROR_CODE = /^(ERR_TLS_|ERR_SSL_|ERR_OSSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH)/;

/** Turns a failed handshake into what the tenant has to fix. */
function describeConnectError(
  err: unknown,
  ctx: { target: Target; mode: ByodTlsMode; timeoutMs: number; ms: number },
): string {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : String(err);
  const role = JSON.stringify(ctx.target.user);
  if (message === 'The server does not support SSL connections' || message.includes('establishing an SSL connection')) {
    return `TLS failed: the server does not accept TLS connections (tls.mode is ${ctx.mode}); enable ssl on the server`;
  }
  if (TLS_ERROR_CODE.test(code) || /certificate|\bSSL\b|\bTLS\b/i.test(message)) {
    const hint = /self.signed|issuer|verify/i.test(`${code} ${message}`)
      ? '; give the CA that signed the server certificate as tls.ca'
      : '';
    return `TLS failed: ${message}${hint}`;
  }
  switch (code) {
    case '28P01':
      // The server gives the same answer for an unknown role, so as not to reveal which roles exist.
      return `authentication failed: password authentication failed for role ${role} (wrong password or unknown role)`;
    case '28000': {
      const needsTls = ctx.mode === 'disable' && /no encryption/i.test(message);
      return `authentication failed: ${message}${needsTls ? '; the server requires TLS, set tls.mode' : ''}`;
    }
    case '3D000':
      return `database ${JSON.stringify(ctx.target.database)} does not exist on the server`;
    case '53300':
      return `the server has no free connection slots: ${message}`;
    case '57P03':
      return `the server is not accepting connections: ${message}`;
  }
  if (/password must be/i.test(message)) {
    return 'authentication failed: the server asks for a password and the URL has none';
  }
  if (message === 'timeout expired' || ctx.ms >= ctx.timeoutMs) {
    return `no PostgreSQL handshake completed within ${ctx.timeoutMs} ms`;
  }
  if (message.startsWith('Connection terminated')) {
    return 'the server closed the connection during the handshake (is this a PostgreSQL server?)';
  }
  return `could not connect: ${message}${code ? ` (${code})` : ''}`;
}

/** Why creating a schema or table failed, naming the privilege that is missing where there is one. */
function describeCreateError(err: unknown, what: 'schema' | 'table', role: string, database: string): string {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : String(err);
  if (code === '42501' && what === 'schema') {
    return `role ${quoteIdent(role)} lacks the CREATE privilege on database ${quoteIdent(database)} (${message}); grant it with GRANT CREATE ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(role)}`;
  }
  if (code === '42501') return `role ${quoteIdent(role)} cannot create tables in its own schema: ${message}`;
  if (code === '25006') {
    return `the server accepts no writes (${message}): it is a standby or default_transaction_read_only is on`;
  }
  return `cannot create a ${what}: ${message}${code ? ` (${code})` : ''}`;
}

async function closeQuietly(client: pg.Client): Promise<void> {
  await Promise.race([client.end().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
}

/**
 * Tests a BYOD connection step by step. Throws validation_failed for a configuration validateByodConfig
 * would refuse; every connection problem is reported, never thrown. A failed required step turns the
 * remaining steps into "skipped" entries, and `ok` is true only when every required step passed.
 * Nothing is left behind on the server: the privilege probe runs in a transaction that is rolled back.
 */
export async function testByodConnection(config: ByodConfig, options: ByodTestOptions = {}): Promise<ByodReport> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_BYOD_TIMEOUT_MS;
  const { issues, valid, target } = check(config, {
    operatorDatastoreUrls: options.operatorDatastoreUrls ?? [],
    operatorObjectStoreUrls: options.operatorObjectStoreUrls ?? [],
  });
  if (!valid || !target) {
    throw new AppError('validation_failed', issues.map((i) => `${i.path} ${i.message}`).join('; '), {
      errors: issues,
    });
  }
  const scrub = scrubber(secretsOf(valid.url, valid.bucket));
  const report: ByodReport = {
    ok: false,
    steps: [],
    server_version: null,
    pgvector: null,
    latency_ms: null,
    warnings: [],
  };
  if (valid.tls.mode === 'disable') {
    report.warnings.push('TLS is disabled: the password and all data cross the network unencrypted');
  }

  let blocker: ByodStepName | null = null;
  const run = async (step: ByodStepName, required: boolean, probe: () => Promise<Outcome>) => {
    if (blocker) {
      report.steps.push({ step, ok: false, required, detail: `skipped: the ${blocker} step failed`, ms: 0 });
      return;
    }
    const started = performance.now();
    let outcome: Outcome;
    try {
      outcome = await probe();
    } catch (err) {
      outcome = { ok: false, detail: `unexpected error: ${(err as Error).message ?? String(err)}` };
    }
    report.steps.push({ step, ok: outcome.ok, required, detail: scrub(outcome.detail), ms: elapsed(started) });
    if (required && !outcome.ok) blocker = step;
  };

  const client = new pg.Client({
    host: target.host,
    port: target.port,
    database: target.database,
    user: target.user,
    // A function, so an empty password stays empty: a plain '' would fall back to PGPASSWORD or
    // ~/.pgpass, sending the operator's own secrets to the tenant's server.
    password: () => target.password,
    ssl: tlsOptions(valid.tls),
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    statement_timeout: timeoutMs,
    application_name: 'strata-byod-check',
  });
  client.on('error', () => {});
  let role = target.user;
  let database = target.database;

  try {
    await run('reachable', true, () => probeTcp(target, timeoutMs));

    await run('authenticated', true, async () => {
      const started = performance.now();
      try {
        await client.connect();
      } catch (err) {
        return {
          ok: false,
          detail: describeConnectError(err, { target, mode: valid.tls.mode, timeoutMs, ms: elapsed(started) }),
        };
      }
      const tls = valid.tls.mode === 'disable' ? 'without TLS' : `over TLS (${valid.tls.mode})`;
      return { ok: true, detail: `connected as ${JSON.stringify(target.user)} ${tls}` };
    });

    await run('version', true, async () => {
      const { rows } = await client.query<{ num: string; version: string; role: string; database: string }>(
        `SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS version,
                current_user AS role, current_database() AS database`,
      );
      const row = rows[0];
      if (!row) return { ok: false, detail: 'the server did not report its version' };
      role = row.role;
      database = row.database;
      report.server_version = row.version;
      const num = Number(row.num);
      if (!Number.isInteger(num) || num < MIN_SERVER_VERSION_NUM) {
        return { ok: false, detail: `PostgreSQL ${row.version} is older than 13, the oldest version Strata supports` };
      }
      return { ok: true, detail: `PostgreSQL ${row.version}` };
    });

    await run('create_privilege', true, async () => {
      const schema = `strata_probe_${randomBytes(6).toString('hex')}`;
      await client.query('BEGIN');
      try {
        try {
          await client.query(`CREATE SCHEMA ${schema}`);
        } catch (err) {
          return { ok: false, detail: describeCreateError(err, 'schema', role, database) };
        }
        try {
          await client.query(`CREATE TABLE ${schema}.probe (id bigint PRIMARY KEY, body jsonb NOT NULL)`);
        } catch (err) {
          return { ok: false, detail: describeCreateError(err, 'table', role, database) };
        }
        return { ok: true, detail: `role ${quoteIdent(role)} can create schemas and tables (probe rolled back)` };
      } finally {
        await client.query('ROLLBACK').catch(() => {});
      }
    });

    await run('pgvector', false, async () => {
      const { rows } = await client.query<{ default_version: string | null; installed_version: string | null }>(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'vector'",
      );
      const row = rows[0];
      report.pgvector = row !== undefined;
      if (!row) {
        report.warnings.push('pgvector is not available: vector search falls back to exact, unindexed search');
        return { ok: false, detail: 'pgvector is not available on this server' };
      }
      if (row.installed_version) return { ok: true, detail: `pgvector ${row.installed_version} is installed` };
      const version = row.default_version ? ` ${row.default_version}` : '';
      return { ok: true, detail: `pgvector${version} is available; CREATE EXTENSION vector installs it` };
    });

    await run('latency', false, async () => {
      const samples: number[] = [];
      for (let i = 0; i < LATENCY_SAMPLES; i++) {
        const started = performance.now();
        await client.query('SELECT 1');
        samples.push(performance.now() - started);
      }
      samples.sort((a, b) => a - b);
      const median = Math.round((samples[Math.floor(samples.length / 2)] ?? 0) * 100) / 100;
      report.latency_ms = median;
      return { ok: true, detail: `median of ${LATENCY_SAMPLES} round trips: ${median} ms` };
    });

    if (valid.bucket) {
      const bucket = valid.bucket;
      await run('bucket', true, () => probeBucket(bucket, timeoutMs));
    }
  } finally {
    await closeQuietly(client);
  }

  report.ok = report.steps.every((s) => s.ok || !s.required);
  report.warnings = report.warnings.map(scrub);
  return report;
}
