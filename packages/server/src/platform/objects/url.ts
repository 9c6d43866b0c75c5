import { resolve } from 'node:path';
import type { S3Settings } from './s3.js';
import { keyProblem } from './store.js';

/**
 * Object-store URLs, as STRATA_OBJECT_STORES holds them:
 *
 *   file:<dir>                      a local directory (relative paths are taken from the working directory)
 *   s3://ACCESS_KEY:SECRET@bucket[/prefix/]?endpoint=http://host:port&region=us-east-1&path_style=true
 *
 * The access key and secret are percent-encoded (a secret with `/` or `+` writes them `%2F`, `%2B`); without
 * them the SDK's default credential chain is used. `endpoint` is for S3-compatible servers (AWS when absent),
 * `region` defaults to us-east-1, `path_style` to true with an endpoint and false without. This file only
 * parses: nothing here opens a connection, and no message it makes contains the secret.
 */
export type ObjectStoreSpec = { kind: 'file'; dir: string } | ({ kind: 's3' } & S3Settings);

export class ObjectStoreUrlError extends Error {}

const BUCKET = /^(?=.{3,63}$)[a-z0-9][a-z0-9.-]*[a-z0-9]$/;
const REGION = /^[a-z0-9-]{1,40}$/;
const PARAMS = new Set(['endpoint', 'region', 'path_style']);

/** The URL with its secret replaced by `***` (safe for logs and error messages). */
export function redactObjectStoreUrl(url: string): string {
  return url.replace(/^(s3:\/\/[^:@/]*:)[^@]*@/i, '$1***@');
}

export function parseObjectStoreUrl(url: string): ObjectStoreSpec {
  const fail = (problem: string): never => {
    throw new ObjectStoreUrlError(`${redactObjectStoreUrl(url)}: ${problem}`);
  };
  if (url.startsWith('file:')) {
    const dir = url.startsWith('file://') ? url.slice(7) : url.slice(5);
    if (!dir) fail('file: needs a directory (file:./data/objects or file:/var/lib/strata/objects)');
    return { kind: 'file', dir: resolve(dir) };
  }
  if (!url.startsWith('s3://')) return fail('must start with file: or s3://');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail('is not a valid URL (percent-encode "/", "+", "@" and ":" in the access key and secret)');
  }
  const bucket = parsed.hostname;
  if (!BUCKET.test(bucket)) {
    fail(
      `"${bucket}" is not a valid bucket name (3 to 63 lower-case letters, digits, dots and hyphens; percent-encode "/" in the secret)`,
    );
  }
  const decode = (text: string, what: string) => {
    try {
      return decodeURIComponent(text);
    } catch {
      return fail(`the ${what} has a malformed %-escape`);
    }
  };
  let prefix = decode(parsed.pathname.replace(/^\/+/, ''), 'path');
  if (prefix && !prefix.endsWith('/')) prefix += '/';
  const bad = prefix ? keyProblem(`${prefix}x`) : undefined;
  if (bad) fail(`the key prefix "${prefix}" ${bad}`);
  const unknown = [...parsed.searchParams.keys()].filter((k) => !PARAMS.has(k));
  if (unknown.length > 0) fail(`unknown parameter(s) ${unknown.join(', ')}; known: ${[...PARAMS].join(', ')}`);
  const endpoint = parsed.searchParams.get('endpoint') ?? undefined;
  if (endpoint !== undefined) {
    let e: URL | undefined;
    try {
      e = new URL(endpoint);
    } catch {}
    if (!e || !/^https?:$/.test(e.protocol) || e.username || e.password) {
      fail(`endpoint "${endpoint}" must be an http:// or https:// URL without credentials`);
    }
  }
  const region = parsed.searchParams.get('region') ?? 'us-east-1';
  if (!REGION.test(region)) fail(`region "${region}" is not a region name`);
  const pathStyle = parsed.searchParams.get('path_style');
  if (pathStyle !== null && pathStyle !== 'true' && pathStyle !== 'false') {
    fail(`path_style must be true or false, not "${pathStyle}"`);
  }
  const accessKeyId = decode(parsed.username, 'access key');
  const secretAccessKey = decode(parsed.password, 'secret');
  if (Boolean(accessKeyId) !== Boolean(secretAccessKey)) {
    fail(accessKeyId ? 'the secret is missing (s3://ACCESS_KEY:SECRET@bucket)' : 'the access key is missing');
  }
  return {
    kind: 's3',
    bucket,
    prefix,
    ...(endpoint ? { endpoint } : {}),
    region,
    forcePathStyle: pathStyle === null ? Boolean(endpoint) : pathStyle === 'true',
    ...(accessKeyId ? { credentials: { accessKeyId, secretAccessKey } } : {}),
  };
}
