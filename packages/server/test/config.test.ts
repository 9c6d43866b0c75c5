import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { DEFAULT_PLANS_FILE, loadPlans } from '../src/modules/plans/catalog.js';

/** Runs fn, expecting it to throw; returns what it threw. */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error, nothing was thrown');
}

describe('loadConfig', () => {
  it('fills every default from an empty environment', () => {
    const data = resolve('./.strata');
    expect(loadConfig({})).toEqual({
      dataDir: data,
      databaseUrl: undefined,
      host: '127.0.0.1',
      port: 8080,
      publicUrl: 'http://127.0.0.1:8080',
      logLevel: 'info',
      plansFile: undefined,
      regions: ['local'],
      defaultRegion: 'local',
      bodyLimitBytes: 1_048_576,
      maxDocumentBytes: 524_288,
      maxFileBytes: 5_368_709_120,
      objectStores: { local: `file:${join(data, 'objects', 'local')}` },
      sseHeartbeatSeconds: 15,
      authCacheSeconds: 5,
      sharedDatastores: {},
      dedicatedPools: { local: `pglite:${join(data, 'dedicated')}` },
      purgeGraceHours: 720,
      moveSourceGraceHours: 24,
      invitationTtlHours: 168,
      sessionTtlHours: 24,
      mailDir: join(data, 'mail'),
      masterKeyFile: join(data, 'master.key'),
    });
  });

  it('reads only the environment it is given, and treats an empty variable as unset', () => {
    expect(loadConfig({ PORT: '', HOST: '', STRATA_REGIONS: '' })).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
      regions: ['local'],
    });
  });

  it('parses given values: numbers, regions (the first is the default), derived paths and URL', () => {
    const c = loadConfig({
      STRATA_DATA_DIR: '/srv/strata',
      DATABASE_URL: 'postgresql://u@db:5432/strata',
      HOST: '0.0.0.0',
      PORT: '9090',
      STRATA_LOG_LEVEL: 'warn',
      STRATA_REGIONS: 'eu-west,us-east',
      STRATA_BODY_LIMIT_BYTES: '2048',
      STRATA_PURGE_GRACE_HOURS: '0',
      STRATA_INVITATION_TTL_HOURS: '1.5',
      STRATA_SESSION_TTL_HOURS: '8',
    });
    expect(c).toMatchObject({
      dataDir: '/srv/strata',
      databaseUrl: 'postgresql://u@db:5432/strata',
      host: '0.0.0.0',
      port: 9090,
      publicUrl: 'http://0.0.0.0:9090',
      logLevel: 'warn',
      regions: ['eu-west', 'us-east'],
      defaultRegion: 'eu-west',
      bodyLimitBytes: 2048,
      purgeGraceHours: 0,
      invitationTtlHours: 1.5,
      sessionTtlHours: 8,
      mailDir: '/srv/strata/mail',
      masterKeyFile: '/srv/strata/master.key',
    });
    expect(loadConfig({ STRATA_PUBLIC_URL: 'https://api.example.com', PORT: '1' }).publicUrl).toBe(
      'https://api.example.com',
    );
  });

  it('lists every problem in one ConfigError', () => {
    const err = thrown(() =>
      loadConfig({ PORT: 'abc', DATABASE_URL: 'mysql://x', STRATA_REGIONS: 'Bad Region', STRATA_LOG_LEVEL: 'loud' }),
    );
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toHaveLength(4);
    for (const [name, value] of [
      ['PORT', 'abc'],
      ['DATABASE_URL', 'mysql://x'],
      ['STRATA_REGIONS', 'Bad Region'],
      ['STRATA_LOG_LEVEL', 'loud'],
    ]) {
      const line = problems.find((p) => p.startsWith(`${name}=`));
      expect(line, name).toBeDefined();
      expect(line).toContain(JSON.stringify(value));
      expect(err.message).toContain(`  - ${line}`);
    }
    expect(err.message.startsWith('Invalid configuration:\n')).toBe(true);
  });

  it('refuses a port out of range, with the value as given', () => {
    const err = thrown(() => loadConfig({ PORT: '70000', STRATA_BODY_LIMIT_BYTES: '10' }));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toHaveLength(2);
    expect(err.message).toMatch(/PORT="?70000"?: .*65535/);
    expect(err.message).toMatch(/STRATA_BODY_LIMIT_BYTES="?10"?: .*1024/);
    expect(() => loadConfig({ PORT: '-1' })).toThrow(ConfigError);
    expect(loadConfig({ PORT: '65535' }).port).toBe(65535);
  });

  it('never truncates a number: a fractional port or a size in exponent notation is not silently changed', () => {
    const fractional = thrown(() => loadConfig({ PORT: '8.5' }));
    expect(fractional).toBeInstanceOf(ConfigError);
    expect(fractional.message).toContain('PORT="8.5"');
    // 1e6 is a whole number: accepted as one million, not read as 1.
    expect(loadConfig({ STRATA_BODY_LIMIT_BYTES: '1e6' }).bodyLimitBytes).toBe(1_000_000);
    expect(() => loadConfig({ STRATA_SESSION_TTL_HOURS: 'soon' })).toThrow(/STRATA_SESSION_TTL_HOURS="soon"/);
  });

  it('refuses malformed region lists and URLs', () => {
    for (const regions of ['eu,,us', 'EU', 'eu,', ',eu', `${'a'.repeat(33)}`]) {
      expect(() => loadConfig({ STRATA_REGIONS: regions }), regions).toThrow(ConfigError);
    }
    expect(() => loadConfig({ STRATA_PUBLIC_URL: 'ftp://x' })).toThrow(/STRATA_PUBLIC_URL/);
    expect(loadConfig({ DATABASE_URL: 'postgres://x' }).databaseUrl).toBe('postgres://x');
  });

  it('gives every region an object store: the ones STRATA_OBJECT_STORES names, a local directory for the rest', () => {
    const s3 = 's3://AK:se%2Fcret@eu-files?endpoint=http://127.0.0.1:9000&path_style=true';
    const c = loadConfig({
      STRATA_DATA_DIR: '/srv/strata',
      STRATA_REGIONS: 'us,eu,ap',
      STRATA_OBJECT_STORES: `eu=${s3},ap=file:./ap-objects`,
      STRATA_MAX_FILE_BYTES: '1048576',
    });
    expect(c.objectStores).toEqual({
      us: 'file:/srv/strata/objects/us',
      eu: s3,
      ap: `file:${resolve('./ap-objects')}`,
    });
    expect(c.maxFileBytes).toBe(1_048_576);
    expect(() => loadConfig({ STRATA_MAX_FILE_BYTES: String(6 * 1024 ** 3) })).toThrow(/STRATA_MAX_FILE_BYTES/);
  });

  it("creates dedicated databases on the home region's default pool, or the pools STRATA_DEDICATED_POOLS names", () => {
    expect(loadConfig({ STRATA_DATA_DIR: '/srv/strata' }).dedicatedPools).toEqual({
      local: 'pglite:/srv/strata/dedicated',
    });
    expect(loadConfig({ DATABASE_URL: 'postgres://strata@db/strata' }).dedicatedPools).toEqual({
      local: 'postgres://strata@db/strata',
    });
    const c = loadConfig({
      STRATA_DATA_DIR: '/srv/strata',
      STRATA_REGIONS: 'us,eu',
      STRATA_DEDICATED_POOLS: 'eu=postgres://strata@pg-eu/postgres,us=pglite:./us-dedicated',
    });
    expect(c.dedicatedPools).toEqual({
      us: `pglite:${resolve('./us-dedicated')}`,
      eu: 'postgres://strata@pg-eu/postgres',
    });
    expect(() => loadConfig({ STRATA_DEDICATED_POOLS: 'mars=pglite:/x' })).toThrow(
      /STRATA_DEDICATED_POOLS: region "mars" is not in STRATA_REGIONS/,
    );
    expect(() => loadConfig({ STRATA_DEDICATED_POOLS: 'eu=mysql://x' })).toThrow(/STRATA_DEDICATED_POOLS/);
  });

  it('refuses a bad STRATA_OBJECT_STORES naming the region and the problem, never the secret', () => {
    const problems = (value: string, regions = 'local,eu') =>
      (thrown(() => loadConfig({ STRATA_REGIONS: regions, STRATA_OBJECT_STORES: value })) as ConfigError).problems;
    expect(problems('mars=file:/x')).toEqual([
      'STRATA_OBJECT_STORES: region "mars" is not in STRATA_REGIONS (local,eu)',
    ]);
    expect(problems('eu=file:/x,eu=file:/y')).toEqual(['STRATA_OBJECT_STORES: region "eu" is listed twice']);
    const [bucket] = problems('eu=s3://AK:hunter2@Bad_Bucket');
    expect(bucket).toMatch(
      /^STRATA_OBJECT_STORES: region "eu": s3:\/\/AK:\*\*\*@Bad_Bucket: "Bad_Bucket" is not a valid bucket/,
    );
    const [param] = problems('eu=s3://AK:hunter2@bucket?regoin=x');
    expect(param).toMatch(/unknown parameter\(s\) regoin/);
    // A value the pattern refuses is shown too, with the secret masked.
    const [shape] = problems('eu=ftp://AK:hunter2@host');
    expect(shape).toMatch(/^STRATA_OBJECT_STORES="eu=ftp:\/\/AK:\*\*\*@host": /);
    for (const p of [bucket, param, shape]) expect(p).not.toContain('hunter2');
  });
});

describe('loadPlans', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-plans-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const write = (content: string) => {
    const file = join(dir, `plans-${n++}.json`);
    writeFileSync(file, content);
    return file;
  };
  const shipped = JSON.parse(readFileSync(DEFAULT_PLANS_FILE, 'utf8')) as { plans: Record<string, unknown>[] };

  it('loads the shipped plans, cheapest first', () => {
    const plans = loadPlans();
    expect(plans.map((p) => p.id)).toEqual(['free', 'starter', 'professional', 'enterprise', 'custom']);
    const ranks = plans.map((p) => p.rank);
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
  });

  it('loads a valid replacement file and sorts it by rank', () => {
    const [a, b] = shipped.plans;
    const file = write(
      JSON.stringify({
        plans: [
          { ...b, rank: 0 },
          { ...a, rank: 5 },
        ],
      }),
    );
    expect(loadPlans(file).map((p) => p.id)).toEqual([b?.id, a?.id]);
  });

  it('names the file and the JSON problem when the file is not JSON', () => {
    const file = write('{ "plans": [');
    expect(() => loadPlans(file)).toThrow(new RegExp(`^Cannot read plans file ${file}: .*JSON`));
  });

  it('names the file when it is missing', () => {
    const file = join(dir, 'missing.json');
    expect(() => loadPlans(file)).toThrow(`Cannot read plans file ${file}: ENOENT`);
  });

  it('lists every schema problem with its path', () => {
    const [first] = shipped.plans;
    const broken = { ...first, rank: 'low', surprise: true } as Record<string, unknown>;
    delete broken.quotas;
    const err = thrown(() => loadPlans(write(JSON.stringify({ plans: [broken], extra: 1 }))));
    expect(err.message).toMatch(/^Invalid plans file .*plans-\d+\.json:\n/);
    expect(err.message).toContain('/plans/0/rank');
    expect(err.message).toContain('/plans/0/quotas');
    expect(err.message).toContain('/plans/0/surprise');
    expect(err.message).toContain('/extra');
    expect(() => loadPlans(write(JSON.stringify({ plans: [] })))).toThrow(/Invalid plans file[\s\S]*\/plans/);
    expect(() => loadPlans(write('null'))).toThrow(/Invalid plans file/);
  });

  it('refuses duplicate plan ids', () => {
    const [a] = shipped.plans;
    expect(() => loadPlans(write(JSON.stringify({ plans: [a, { ...a, rank: 9 }] })))).toThrow(
      /plan ids must be unique/,
    );
  });
});
