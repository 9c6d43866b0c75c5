import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Envelope encryption for secrets Strata must be able to read back (BYOD credentials, webhook secrets):
 * each secret gets its own data key; the data key is wrapped by the master key. Both layers are
 * AES-256-GCM, so tampering with any byte fails decryption. The master key comes from a file (embedded
 * default, created 0600 on first start); a KMS adapter implements the same interface.
 */
export interface Keyring {
  encrypt(plaintext: string, context: string): string;
  decrypt(sealed: string, context: string): string;
}

const VERSION = 'v1';

function seal(key: Buffer, data: Buffer, aad: string): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(data), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

function open(key: Buffer, sealed: Buffer, aad: string): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(sealed.subarray(12, 28));
  return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]);
}

/** A keyring over a 256-bit master key. `context` (e.g. "tenant:<id>:byod") binds a ciphertext to its use. */
export function keyringFromMasterKey(master: Buffer): Keyring {
  if (master.length !== 32) throw new Error('the master key must be 32 bytes');
  return {
    encrypt(plaintext, context) {
      const dataKey = randomBytes(32);
      const wrapped = seal(master, dataKey, `wrap:${context}`);
      const body = seal(dataKey, Buffer.from(plaintext, 'utf8'), context);
      return `${VERSION}.${wrapped.toString('base64url')}.${body.toString('base64url')}`;
    },
    decrypt(sealed, context) {
      const [version, wrapped, body] = sealed.split('.');
      if (version !== VERSION || !wrapped || !body) throw new Error('not a Strata sealed secret');
      const dataKey = open(master, Buffer.from(wrapped, 'base64url'), `wrap:${context}`);
      return open(dataKey, Buffer.from(body, 'base64url'), context).toString('utf8');
    },
  };
}

/** Reads the master key file, creating it (0600) on first start; refuses a file others can read. */
export function fileKeyring(file: string): Keyring {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
    chmodSync(file, 0o600);
  }
  const mode = statSync(file).mode & 0o077;
  if (mode !== 0) throw new Error(`master key file ${file} is readable by group or others; chmod 600 it`);
  const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  return keyringFromMasterKey(key);
}
