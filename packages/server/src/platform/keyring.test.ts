import { chmodSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileKeyring, keyringFromMasterKey } from './keyring.js';

describe('keyring', () => {
  const ring = keyringFromMasterKey(Buffer.alloc(32, 7));

  it('round-trips, with a fresh ciphertext each time', () => {
    const a = ring.encrypt('postgres://user:pw@db/x', 'tenant:1:byod');
    const b = ring.encrypt('postgres://user:pw@db/x', 'tenant:1:byod');
    expect(a).not.toBe(b);
    expect(a).not.toContain('pw@');
    expect(ring.decrypt(a, 'tenant:1:byod')).toBe('postgres://user:pw@db/x');
  });

  it('refuses another context, another master key and any flipped byte', () => {
    const sealed = ring.encrypt('secret', 'tenant:1:byod');
    expect(() => ring.decrypt(sealed, 'tenant:2:byod')).toThrow();
    expect(() => keyringFromMasterKey(Buffer.alloc(32, 8)).decrypt(sealed, 'tenant:1:byod')).toThrow();
    const body = sealed.split('.')[2] as string;
    const flipped = `${body.slice(0, 5)}${body[5] === 'A' ? 'B' : 'A'}${body.slice(6)}`;
    expect(() => ring.decrypt(sealed.replace(body, flipped), 'tenant:1:byod')).toThrow();
  });

  it('creates the master key file 0600 once, reuses it, and refuses a world-readable one', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'strata-key-')), 'sub', 'master.key');
    const first = fileKeyring(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const sealed = first.encrypt('x', 'c');
    expect(fileKeyring(file).decrypt(sealed, 'c')).toBe('x');
    chmodSync(file, 0o644);
    expect(() => fileKeyring(file)).toThrow(/chmod 600/);
  });
});
