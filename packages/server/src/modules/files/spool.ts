import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppError } from '../../platform/errors.js';

/** Bytes written to a temporary file, with their count and SHA-256 (hex). */
export interface Spooled {
  path: string;
  size: number;
  sha256: string;
}

/**
 * Copies a stream to a temporary file (mode 0600, in the OS temp directory) while hashing and counting it.
 * Past `limit` bytes it stops reading at once and fails with `tooLarge()`, leaving nothing behind. The source
 * is piped, not handed to pipeline(): an HTTP request destroyed mid-body takes its socket with it, and the 413
 * could not be sent; here it is only left unread (the route answers with Connection: close).
 */
export async function spool(
  source: Readable | undefined,
  limit: number,
  tooLarge: (seen: number) => Error,
): Promise<Spooled> {
  const path = join(tmpdir(), `strata-spool-${randomUUID()}`);
  const hash = createHash('sha256');
  let size = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (size > limit) return callback(tooLarge(size));
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  const input = source ?? Readable.from([]);
  // A client that goes away mid-body ends the copy with a 400 (it will not read it), not a hang.
  finished(input, (err) => {
    if (err && !meter.destroyed) meter.destroy(new AppError('bad_request', 'The request body ended early'));
  });
  input.pipe(meter);
  const file = createWriteStream(path, { flags: 'wx', mode: 0o600 });
  try {
    await pipeline(meter, file);
  } catch (err) {
    input.unpipe(meter);
    // The file may still be opening when the copy fails: wait until it is closed, or it would be created
    // after the removal below and left behind.
    if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()));
    await rm(path, { force: true });
    throw err;
  }
  return { path, size, sha256: hash.digest('hex') };
}

/** Spools an object store's stream and checks that its bytes are the ones named (a copy between stores). */
export async function spoolVerified(source: Readable, expected: { sha256: string; size?: number }): Promise<Spooled> {
  const spooled = await spool(source, Number.MAX_SAFE_INTEGER, () => new Error('unreachable'));
  if (spooled.sha256 !== expected.sha256 || (expected.size !== undefined && spooled.size !== expected.size)) {
    await rm(spooled.path, { force: true });
    throw new Error(
      `blob ${expected.sha256} read back as ${spooled.size} bytes with SHA-256 ${spooled.sha256}: the source copy is damaged`,
    );
  }
  return spooled;
}
