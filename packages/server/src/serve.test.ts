import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const cli = join(import.meta.dirname, 'cli.ts');
const dataDir = mkdtempSync(join(tmpdir(), 'strata-serve-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('strata serve', () => {
  it('prints the URL and operator key, logs request ids without secrets, and shuts down cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, 'serve'], {
      env: { PATH: process.env.PATH, STRATA_DATA_DIR: dataDir, PORT: '0', STRATA_LOG_LEVEL: 'info' },
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const deadline = Date.now() + 60_000;
    while (!/Operator key[\s\S]*sto_[a-z2-7]{12}_[A-Za-z0-9_-]{43}/.test(out) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
    const key = /(sto_[a-z2-7]{12}_[A-Za-z0-9_-]{43})/.exec(out)?.[1];
    expect(url, out).toBeTruthy();
    expect(key, out).toBeTruthy();

    const me = await fetch(`${url}/v1/me`, {
      headers: { authorization: `Bearer ${key}`, 'x-request-id': 'trace-me-123' },
    });
    expect(me.status).toBe(200);
    expect(me.headers.get('x-request-id')).toBe('trace-me-123');
    expect((await me.json()).kind).toBe('operator');
    const created = await fetch(`${url}/v1/tenants/${crypto.randomUUID()}/api-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'k', scopes: ['data:read'] }),
    });
    expect(created.status).toBe(404);

    const logsBeforeStop = out;
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    // The key was printed once, in the start-up banner; the request logs never repeat it.
    const afterBanner = logsBeforeStop.slice(logsBeforeStop.indexOf(key as string) + (key as string).length);
    expect(afterBanner).toContain('trace-me-123');
    expect(afterBanner).not.toContain((key as string).slice(17));
    expect(afterBanner).toMatch(/"authorization":"\[redacted\]"|"reqId":"trace-me-123"/);
    expect(out).toMatch(/shutting down/);
  }, 120_000);
});
