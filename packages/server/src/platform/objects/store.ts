import type { Readable } from 'node:stream';

/**
 * The object-store seam: everything above this file keeps bytes through this interface, whether they land
 * in a local directory (LocalObjectStore) or an S3-compatible bucket (S3ObjectStore). Keys are
 * `/`-separated paths (see keyProblem); the same key means the same object on every implementation.
 */
export interface ObjectStore {
  /** Where the store is, for logs and errors (`file:/var/lib/strata/objects/eu`, `s3://bucket at http://…`): never a secret. */
  readonly description: string;
  /**
   * Stores the bytes of a file (its path) or a buffer under the key, replacing what was there. The object
   * appears whole or not at all. `size` must be the byte count of the source (checked); `sha256` (hex), when
   * given, lets a store that can verify it do so.
   */
  put(key: string, source: string | Buffer, options: PutOptions): Promise<void>;
  /** The object's bytes as a stream, or null when there is no object under the key. */
  get(key: string): Promise<ObjectBody | null>;
  head(key: string): Promise<ObjectHead | null>;
  /** Removes the object; removing one that does not exist is not an error. */
  delete(key: string): Promise<void>;
  /** Every object whose key starts with `prefix` (plain string prefix), fetched a page at a time. */
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectEntry>;
  close(): Promise<void>;
}

export interface PutOptions {
  size: number;
  contentType?: string;
  sha256?: string;
}

export interface ObjectHead {
  size: number;
  contentType: string;
  lastModified: Date;
}

export interface ObjectBody extends ObjectHead {
  body: Readable;
}

export interface ObjectEntry {
  key: string;
  size: number;
  lastModified: Date;
}

export interface ListOptions {
  /** Objects fetched per request (S3: MaxKeys, at most 1000). */
  pageSize?: number;
}

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

/** Deletes every object whose key starts with `prefix` (listed first, then deleted); returns how many. */
export async function deletePrefix(store: ObjectStore, prefix: string): Promise<number> {
  const keys: string[] = [];
  for await (const o of store.list(prefix)) keys.push(o.key);
  for (const key of keys) await store.delete(key);
  return keys.length;
}
export const MAX_KEY_BYTES = 1024;
const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Why a key is not acceptable, or undefined when it is: 1 to 1024 bytes of UTF-8, segments separated by `/`,
 * no leading `/`, no empty, `.` or `..` segment, no control characters. The same rule holds for object
 * keys and for the keys of tenant files.
 */
export function keyProblem(key: string): string | undefined {
  if (key.length === 0) return 'is empty';
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_KEY_BYTES) return `is ${bytes} bytes long; at most ${MAX_KEY_BYTES} are allowed`;
  if (UNPAIRED_SURROGATE.test(key)) return 'is not valid UTF-8 (it has an unpaired surrogate)';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this looks for
  const control = /[\u0000-\u001f\u007f-\u009f]/.exec(key);
  if (control) {
    const code = control[0].codePointAt(0)?.toString(16).padStart(4, '0').toUpperCase();
    return `contains the control character U+${code} at position ${control.index}`;
  }
  if (key.startsWith('/')) return 'starts with "/"';
  const segments = key.split('/');
  for (const [i, segment] of segments.entries()) {
    if (segment === '') return i === segments.length - 1 ? 'ends with "/"' : 'has an empty segment ("//")';
    if (segment === '.' || segment === '..') return `has a "${segment}" segment`;
  }
  return undefined;
}

/** keyProblem for code paths where a bad key is a bug (object keys built by Strata itself). */
export function assertKey(key: string): void {
  const problem = keyProblem(key);
  if (problem) throw new Error(`object key ${JSON.stringify(key.slice(0, 100))} ${problem}`);
}

/** A prefix for list(): '' or the start of a key (it may end in `/` or inside a segment). */
export function assertPrefix(prefix: string): void {
  if (prefix === '') return;
  // A prefix ending in "/" is a key with an empty last segment; check it as the key it would be with one more character.
  assertKey(prefix.endsWith('/') ? `${prefix}x` : prefix);
}
