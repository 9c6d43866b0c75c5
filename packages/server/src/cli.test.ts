import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const cli = join(import.meta.dirname, 'cli.ts');
const dataDir = mkdtempSync(join(tmpdir(), 'strata-cli-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function strata(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], {
    env: { PATH: process.env.PATH, STRATA_DATA_DIR: dataDir, STRATA_LOG_LEVEL: 'silent', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// The CLI on the embedded database: one process at a time, as documented.
describe('strata CLI', () => {
  it('creates and lists tenants and keys, with --json output and meaningful exit codes', () => {
    const created = strata([
      'tenants',
      'create',
      '--slug',
      'cli-co',
      '--name',
      'CLI Co',
      '--plan',
      'starter',
      '--json',
    ]);
    expect(created.code, created.err).toBe(0);
    const tenant = JSON.parse(created.out);
    expect(tenant).toMatchObject({ slug: 'cli-co', plan: 'starter', status: 'active' });

    const dup = strata(['tenants', 'create', '--slug', 'cli-co', '--name', 'Again']);
    expect(dup.code).toBe(4);
    expect(dup.err).toMatch(/slug_taken/);

    const key = strata([
      'keys',
      'create',
      '--tenant',
      tenant.id,
      '--name',
      'worker',
      '--scopes',
      'data:read',
      '--json',
    ]);
    expect(key.code, key.err).toBe(0);
    expect(JSON.parse(key.out).secret).toMatch(/^stk_/);

    const list = strata(['tenants', 'list']);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/SLUG/);
    expect(list.out).toMatch(/cli-co/);

    const missing = strata(['tenants', 'show', crypto.randomUUID()]);
    expect(missing.code).toBe(3);
  }, 120_000);

  it('exits 2 on usage errors and on invalid configuration', () => {
    expect(strata(['tenants', 'frobnicate']).code).toBe(2);
    const bad = strata(['plans', 'list'], { PORT: 'abc' });
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/Invalid configuration[\s\S]*PORT/);
  }, 120_000);
});
