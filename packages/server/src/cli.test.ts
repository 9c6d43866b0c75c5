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

describe('strata tenants move', () => {
  it("moves a tenant's data to another region's datastore and drops the source copy on --finish", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-cli-move-'));
    const eu = mkdtempSync(join(tmpdir(), 'strata-cli-eu-'));
    const env = { STRATA_DATA_DIR: dir, STRATA_REGIONS: 'local,eu', STRATA_SHARED_DATASTORES: `eu=pglite:${eu}` };
    try {
      const created = strata(
        ['tenants', 'create', '--slug', 'mover', '--name', 'Mover', '--plan', 'enterprise', '--json'],
        env,
      );
      expect(created.code, created.err).toBe(0);
      const tenantId = JSON.parse(created.out).id as string;

      // Allow the second region and give the tenant some data, through the API of an in-process server.
      const { loadConfig } = await import('./config.js');
      const { createStrata } = await import('./main.js');
      const { createOperatorKey } = await import('./modules/auth/service.js');
      const server = await createStrata(loadConfig({ ...env, STRATA_LOG_LEVEL: 'silent' }));
      try {
        const { token } = await createOperatorKey(server.platform.db, 'test');
        const call = (method: 'POST' | 'PATCH', url: string, body: unknown) =>
          server.app.inject({
            method,
            url,
            payload: JSON.stringify(body),
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          });
        expect((await call('PATCH', `/v1/tenants/${tenantId}`, { allowed_regions: ['local', 'eu'] })).statusCode).toBe(
          200,
        );
        expect((await call('POST', `/v1/tenants/${tenantId}/collections`, { name: 'c' })).statusCode).toBe(201);
        const operations = Array.from({ length: 300 }, (_, i) => ({ op: 'create', collection: 'c', data: { i } }));
        expect((await call('POST', `/v1/tenants/${tenantId}/batch`, { operations })).statusCode).toBe(200);
      } finally {
        await server.close();
      }

      const moved = strata(['tenants', 'move', tenantId, '--region', 'eu', '--json'], env);
      expect(moved.code, moved.err).toBe(0);
      const move = JSON.parse(moved.out);
      expect(move).toMatchObject({
        phase: 'switched',
        target_region: 'eu',
        documents_total: 300,
        documents_copied: 300,
      });
      const shown = strata(['tenants', 'show', tenantId, '--json'], env);
      expect(JSON.parse(shown.out).data_region).toBe('eu');

      const human = strata(['tenants', 'move', tenantId, '--region', 'local'], env);
      expect(human.code, human.err).toBe(0);
      expect(human.err).toMatch(/\[#+\]\s+100%\s+300\/300 documents/);
      expect(human.out).toMatch(/moved to shared in local; writes paused \d+ ms/);
      const finishId = human.out.match(/--finish (\S+)/)?.[1] as string;
      const finished = strata(['tenants', 'move', tenantId, '--finish', finishId, '--json'], env);
      expect(finished.code, finished.err).toBe(0);
      expect(JSON.parse(finished.out).phase).toBe('finished');

      const refused = strata(['tenants', 'move', tenantId, '--region', 'mars'], env);
      expect(refused.code).toBe(4);
      expect(refused.err).toMatch(/region_not_allowed/);

      // Into a dedicated database; a downgrade to a plan without one is refused, or done after moving back.
      const dedicated = strata(['tenants', 'move', tenantId, '--kind', 'dedicated', '--json'], env);
      expect(dedicated.code, dedicated.err).toBe(0);
      expect(JSON.parse(dedicated.out)).toMatchObject({ phase: 'switched', target_kind: 'dedicated' });
      const downgrade = strata(['tenants', 'set-plan', tenantId, '--plan', 'starter'], env);
      expect(downgrade.code).toBe(4);
      expect(downgrade.err).toMatch(/dedicated datastore, which the Starter plan does not include/);
      const both = strata(['tenants', 'set-plan', tenantId, '--plan', 'starter', '--move-back'], env);
      expect(both.code, both.err).toBe(0);
      expect(both.out).toMatch(/now on plan starter/);
      expect(both.err).toMatch(/100%\s+300\/300 documents/);

      // Snapshots: take one, list it, restore it in place.
      const snap = strata(['snapshots', 'create', tenantId, '--json'], env);
      expect(snap.code, snap.err).toBe(0);
      const taken = JSON.parse(snap.out);
      expect(taken).toMatchObject({ status: 'complete', documents: 300, collections: 1 });
      const listed = strata(['snapshots', 'list', tenantId], env);
      expect(listed.out).toContain(taken.id);
      const restored = strata(['snapshots', 'restore', tenantId, '--snapshot', taken.id], env);
      expect(restored.code, restored.err).toBe(0);
      expect(restored.out).toMatch(/restored snapshot .+: 300 documents, 0 files, epoch \d+/);
      const missing = strata(['snapshots', 'restore', tenantId, '--snapshot', crypto.randomUUID()], env);
      expect(missing.code).toBe(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(eu, { recursive: true, force: true });
    }
  }, 120_000);
});
