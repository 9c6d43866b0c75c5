import { resolve } from 'node:path';
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ObjectStoreUrlError, parseObjectStoreUrl } from './platform/objects/url.js';

/**
 * The one reader of process.env. Parsed once at boot, validated, then passed down.
 */
const Env = Type.Object({
  STRATA_DATA_DIR: Type.String({ default: './.strata' }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  HOST: Type.String({ default: '127.0.0.1' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  STRATA_PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  STRATA_LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  STRATA_PLANS_FILE: Type.Optional(Type.String()),
  STRATA_REGIONS: Type.String({ default: 'local', pattern: '^[a-z0-9-]{1,32}(,[a-z0-9-]{1,32})*$' }),
  STRATA_BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, default: 1_048_576 }),
  STRATA_MAX_DOCUMENT_BYTES: Type.Integer({ minimum: 64, default: 524_288 }),
  STRATA_MAX_FILE_BYTES: Type.Integer({ minimum: 1, maximum: 5_368_709_120, default: 5_368_709_120 }),
  STRATA_OBJECT_STORES: Type.Optional(
    Type.String({ pattern: '^[a-z0-9-]{1,32}=(file:|s3://)[^,]+(,[a-z0-9-]{1,32}=(file:|s3://)[^,]+)*$' }),
  ),
  STRATA_SHARED_DATASTORES: Type.Optional(
    Type.String({
      pattern: '^[a-z0-9-]{1,32}=(postgres(ql)?://|pglite:)[^,]+(,[a-z0-9-]{1,32}=(postgres(ql)?://|pglite:)[^,]+)*$',
    }),
  ),
  STRATA_DEDICATED_POOLS: Type.Optional(
    Type.String({
      pattern: '^[a-z0-9-]{1,32}=(postgres(ql)?://|pglite:)[^,]+(,[a-z0-9-]{1,32}=(postgres(ql)?://|pglite:)[^,]+)*$',
    }),
  ),
  STRATA_AUTH_CACHE_SECONDS: Type.Number({ minimum: 0, maximum: 300, default: 5 }),
  STRATA_SSE_HEARTBEAT_SECONDS: Type.Number({ minimum: 0.05, default: 15 }),
  STRATA_MOVE_SOURCE_GRACE_HOURS: Type.Number({ minimum: 0, default: 24 }),
  STRATA_PURGE_GRACE_HOURS: Type.Number({ minimum: 0, default: 720 }),
  STRATA_INVITATION_TTL_HOURS: Type.Number({ minimum: 0.01, default: 168 }),
  STRATA_SESSION_TTL_HOURS: Type.Number({ minimum: 0.01, default: 24 }),
  STRATA_MAIL_DIR: Type.Optional(Type.String()),
  STRATA_MASTER_KEY_FILE: Type.Optional(Type.String()),
});

export interface Config {
  dataDir: string;
  databaseUrl: string | undefined;
  host: string;
  port: number;
  publicUrl: string;
  logLevel: string;
  plansFile: string | undefined;
  regions: string[];
  defaultRegion: string;
  bodyLimitBytes: number;
  maxDocumentBytes: number;
  /** The largest file accepted whatever the plan (a plan's max_file_bytes may be lower). */
  maxFileBytes: number;
  /** The object store of every region (region -> file:<dir> or s3://…), for tenant files. */
  objectStores: Record<string, string>;
  sseHeartbeatSeconds: number;
  authCacheSeconds: number;
  /** The shared datastore of each region that has its own (region -> postgres:// URL or pglite:<dir>); others use the control database. */
  sharedDatastores: Record<string, string>;
  /**
   * Where dedicated databases are created, per region: a PostgreSQL server on which Strata may CREATE
   * DATABASE (the URL names its maintenance database), or pglite:<dir> for one embedded database per tenant.
   */
  dedicatedPools: Record<string, string>;
  purgeGraceHours: number;
  /** How long the source copy of a moved tenant is kept (for inspection) before it is dropped. */
  moveSourceGraceHours: number;
  invitationTtlHours: number;
  sessionTtlHours: number;
  mailDir: string;
  masterKeyFile: string;
}

export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** `scheme://user:secret@…` -> `scheme://user:***@…`: configuration errors never show a password or secret key. */
const redactSecrets = (text: string) => text.replace(/(\/\/[^:/@\s",]*:)[^@\s",]*@/g, '$1***@');

/**
 * A per-region setting (`eu=…,us=…`): every region named must be one of STRATA_REGIONS and named once, and
 * `normalize` turns each value into its stored form (or throws a message saying what is wrong with it).
 * Every problem is listed in one ConfigError.
 */
function regionMap(
  name: string,
  value: string | undefined,
  regions: string[],
  normalize: (target: string) => string,
): Record<string, string> {
  const map: Record<string, string> = {};
  const problems: string[] = [];
  for (const entry of value?.split(',') ?? []) {
    const at = entry.indexOf('=');
    const region = entry.slice(0, at);
    if (!regions.includes(region)) {
      problems.push(`${name}: region "${region}" is not in STRATA_REGIONS (${regions.join(',')})`);
    } else if (map[region]) {
      problems.push(`${name}: region "${region}" is listed twice`);
    } else {
      try {
        map[region] = normalize(entry.slice(at + 1));
      } catch (err) {
        if (!(err instanceof ObjectStoreUrlError)) throw err;
        problems.push(`${name}: region "${region}": ${err.message}`);
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return map;
}

/** A datastore target: a postgres:// URL as given, or pglite:<dir> with the directory made absolute. */
const datastoreTarget = (target: string) =>
  target.startsWith('pglite:') ? `pglite:${resolve(target.slice(7))}` : target;

/** An object store URL, checked; a file: store's directory made absolute. */
function objectStoreTarget(url: string): string {
  const spec = parseObjectStoreUrl(url);
  return spec.kind === 'file' ? `file:${spec.dir}` : url;
}

/** Parses an environment (process.env by default) into a Config, or throws ConfigError listing every problem. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const raw: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(Env.properties)) {
    const v = env[key];
    if (v === undefined || v === '') continue;
    // Numbers are parsed whole here, not by Value.Convert, which truncates "8.5" to 8 and "1e6" to 1 without a word.
    const numeric = schema.type === 'integer' || schema.type === 'number';
    raw[key] = numeric && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  const converted = Value.Default(Env, raw) as Record<string, unknown>;
  const errors = [...Value.Errors(Env, converted)];
  if (errors.length > 0) {
    throw new ConfigError(
      errors.map(
        (e) =>
          `${e.path.slice(1) || '(root)'}=${redactSecrets(JSON.stringify(env[e.path.slice(1)] ?? null))}: ${e.message}`,
      ),
    );
  }
  const e = converted as Static<typeof Env>;
  const dataDir = resolve(e.STRATA_DATA_DIR);
  const regions = e.STRATA_REGIONS.split(',');
  const sharedDatastores = regionMap('STRATA_SHARED_DATASTORES', e.STRATA_SHARED_DATASTORES, regions, datastoreTarget);
  // Dedicated databases: the home region's default is the control database's server, or embedded
  // databases under the data directory.
  const dedicatedPools = {
    [regions[0] as string]: e.DATABASE_URL ?? `pglite:${dataDir}/dedicated`,
    ...regionMap('STRATA_DEDICATED_POOLS', e.STRATA_DEDICATED_POOLS, regions, datastoreTarget),
  };
  const config: Config = {
    dataDir,
    databaseUrl: e.DATABASE_URL,
    host: e.HOST,
    port: e.PORT,
    publicUrl: e.STRATA_PUBLIC_URL ?? `http://${e.HOST}:${e.PORT}`,
    logLevel: e.STRATA_LOG_LEVEL,
    plansFile: e.STRATA_PLANS_FILE,
    regions,
    defaultRegion: regions[0] as string,
    bodyLimitBytes: e.STRATA_BODY_LIMIT_BYTES,
    maxDocumentBytes: e.STRATA_MAX_DOCUMENT_BYTES,
    maxFileBytes: e.STRATA_MAX_FILE_BYTES,
    // Every region has an object store: the one STRATA_OBJECT_STORES names, or <data dir>/objects/<region>.
    objectStores: {
      ...Object.fromEntries(regions.map((r) => [r, `file:${resolve(dataDir, 'objects', r)}`])),
      ...regionMap('STRATA_OBJECT_STORES', e.STRATA_OBJECT_STORES, regions, objectStoreTarget),
    },
    sseHeartbeatSeconds: e.STRATA_SSE_HEARTBEAT_SECONDS,
    authCacheSeconds: e.STRATA_AUTH_CACHE_SECONDS,
    sharedDatastores,
    dedicatedPools,
    purgeGraceHours: e.STRATA_PURGE_GRACE_HOURS,
    moveSourceGraceHours: e.STRATA_MOVE_SOURCE_GRACE_HOURS,
    invitationTtlHours: e.STRATA_INVITATION_TTL_HOURS,
    sessionTtlHours: e.STRATA_SESSION_TTL_HOURS,
    mailDir: resolve(e.STRATA_MAIL_DIR ?? `${dataDir}/mail`),
    masterKeyFile: resolve(e.STRATA_MASTER_KEY_FILE ?? `${dataDir}/master.key`),
  };
  return { ...config, ...overrides };
}
