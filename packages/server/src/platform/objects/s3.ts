import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import {
  assertKey,
  assertPrefix,
  DEFAULT_CONTENT_TYPE,
  type ListOptions,
  type ObjectBody,
  type ObjectEntry,
  type ObjectHead,
  type ObjectStore,
  type PutOptions,
} from './store.js';

export interface S3Settings {
  bucket: string;
  /** Prepended to every key (`''`, or a path ending in `/`), so one bucket can hold several stores. */
  prefix: string;
  /** An S3-compatible endpoint (`http://127.0.0.1:9000`); AWS itself when absent. */
  endpoint?: string;
  region: string;
  /** `http://endpoint/bucket/key` rather than `http://bucket.endpoint/key`. */
  forcePathStyle: boolean;
  /** Absent: the SDK's default chain (environment, shared config, instance or task role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

const notFound = (err: unknown) => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
};

/**
 * Objects in an S3-compatible bucket through the official SDK. Checksums are sent only where the API
 * requires them (plus the SHA-256 the caller knows, as a plain header), because the SDK's default of
 * streaming trailing checksums (`aws-chunked`) is not understood by every S3-compatible server.
 */
export class S3ObjectStore implements ObjectStore {
  readonly description: string;
  readonly #client: S3Client;

  constructor(readonly settings: S3Settings) {
    this.description = `s3://${settings.bucket}/${settings.prefix}${settings.endpoint ? ` at ${settings.endpoint}` : ''}`;
    this.#client = new S3Client({
      region: settings.region,
      forcePathStyle: settings.forcePathStyle,
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      ...(settings.credentials ? { credentials: settings.credentials } : {}),
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /** Checks that the bucket exists and the credentials may use it; the error says which it is. */
  async open(): Promise<this> {
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.settings.bucket }));
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const why =
        status === 404
          ? 'the bucket does not exist'
          : status === 403 || status === 401
            ? 'the credentials are refused for this bucket'
            : (err as Error).message || (err as Error).name;
      this.#client.destroy();
      throw new Error(`object store ${this.description}: ${why}`, { cause: err });
    }
    return this;
  }

  #key(key: string): string {
    assertKey(key);
    return `${this.settings.prefix}${key}`;
  }

  async put(key: string, source: string | Buffer, options: PutOptions): Promise<void> {
    if (Buffer.isBuffer(source) && source.length !== options.size) {
      throw new Error(`put ${key}: the source is ${source.length} bytes, not ${options.size}`);
    }
    await this.#client.send(
      new PutObjectCommand({
        Bucket: this.settings.bucket,
        Key: this.#key(key),
        Body: typeof source === 'string' ? createReadStream(source) : source,
        ContentLength: options.size,
        ContentType: options.contentType ?? DEFAULT_CONTENT_TYPE,
        ...(options.sha256 ? { ChecksumSHA256: Buffer.from(options.sha256, 'hex').toString('base64') } : {}),
      }),
    );
  }

  async get(key: string): Promise<ObjectBody | null> {
    try {
      const r = await this.#client.send(new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.#key(key) }));
      return {
        body: r.Body as Readable,
        size: Number(r.ContentLength ?? 0),
        contentType: r.ContentType ?? DEFAULT_CONTENT_TYPE,
        lastModified: r.LastModified ?? new Date(0),
      };
    } catch (err) {
      if (notFound(err)) return null;
      throw err;
    }
  }

  async head(key: string): Promise<ObjectHead | null> {
    try {
      const r = await this.#client.send(new HeadObjectCommand({ Bucket: this.settings.bucket, Key: this.#key(key) }));
      return {
        size: Number(r.ContentLength ?? 0),
        contentType: r.ContentType ?? DEFAULT_CONTENT_TYPE,
        lastModified: r.LastModified ?? new Date(0),
      };
    } catch (err) {
      if (notFound(err)) return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.settings.bucket, Key: this.#key(key) }));
    } catch (err) {
      if (!notFound(err)) throw err;
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectEntry> {
    assertPrefix(prefix);
    const strip = this.settings.prefix.length;
    let token: string | undefined;
    do {
      const page = await this.#client.send(
        new ListObjectsV2Command({
          Bucket: this.settings.bucket,
          Prefix: `${this.settings.prefix}${prefix}`,
          MaxKeys: Math.min(1000, Math.max(1, options.pageSize ?? 1000)),
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const o of page.Contents ?? []) {
        if (!o.Key) continue;
        yield { key: o.Key.slice(strip), size: Number(o.Size ?? 0), lastModified: o.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }
}
