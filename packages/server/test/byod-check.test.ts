import { randomBytes } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ByodReport,
  redactUrl,
  testByodConnection,
  validateByodConfig,
} from '../src/modules/placement/byod-check.js';
import { AppError } from '../src/platform/errors.js';
import { openObjectStore } from '../src/platform/objects/open.js';
import { adminUrl, databaseUrlFor } from './pg-url.js';
import { S3_SECRET, type S3Server, startS3Server } from './s3-server.js';
import { startTlsProxy, type TlsProxy } from './tls-proxy.js';

/**
 * BYOD registration checks. The validation cases are pure and always run; the connection cases need a real
 * PostgreSQL server (STRATA_TEST_DATABASE_URL) and build their own "customer" database and a limited role.
 */

const PASSWORD = 's3cret-pw';
const OPERATOR_DATASTORES = [
  'postgres://strata:operator-pw@127.0.0.1:5432/strata',
  'postgres://strata@localhost/strata_dedicated_7',
  'postgres://strata@db.internal.example:6432/strata',
];
const CA = rootCertificates[0] as string;

function refusal(config: unknown, operatorDatastoreUrls = OPERATOR_DATASTORES): AppError {
  try {
    validateByodConfig(config, { operatorDatastoreUrls });
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected validation_failed');
}

const issuesOf = (err: AppError) => err.extra.errors as { path: string; message: string }[];

describe('validateByodConfig', () => {
  const url = (rest: string) => `postgres://app:${PASSWORD}@${rest}`;
  const corruptCa = CA.replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!');

  const cases: { name: string; config: unknown; path: string; message?: RegExp }[] = [
    { name: 'not an object', config: 'postgres://x', path: 'body' },
    { name: 'no url', config: { tls: { mode: 'disable' } }, path: 'body/url' },
    { name: 'url not a string', config: { url: 42 }, path: 'body/url' },
    { name: 'unknown field', config: { url: url('db.example.com/app'), extra: 1 }, path: 'body/extra' },
    {
      name: 'unparseable URL',
      config: { url: `postgres://app:${PASSWORD}@db.example.com:99999/app` },
      path: 'body/url',
    },
    { name: 'not a URL at all', config: { url: `app ${PASSWORD} db.example.com` }, path: 'body/url' },
    { name: 'wrong scheme', config: { url: `mysql://app:${PASSWORD}@db.example.com/app` }, path: 'body/url' },
    { name: 'no host', config: { url: 'postgres:///app' }, path: 'body/url', message: /no host/ },
    { name: 'several hosts', config: { url: url('a.example.com,b.example.com/app') }, path: 'body/url' },
    { name: 'no database', config: { url: url('db.example.com') }, path: 'body/url', message: /no database/ },
    { name: 'empty database', config: { url: url('db.example.com/') }, path: 'body/url', message: /no database/ },
    {
      name: 'no user name',
      config: { url: `postgres://:${PASSWORD}@db.example.com/app` },
      path: 'body/url',
      message: /no user/,
    },
    {
      name: 'sslmode',
      config: { url: url('db.example.com/app?sslmode=disable') },
      path: 'body/url',
      message: /sslmode.*tls/,
    },
    {
      name: 'sslrootcert',
      config: { url: url('db.example.com/app?sslrootcert=/etc/ca.pem') },
      path: 'body/url',
      message: /sslrootcert.*tls/,
    },
    {
      name: 'host override',
      config: { url: url('db.example.com/app?host=127.0.0.1') },
      path: 'body/url',
      message: /host/,
    },
    {
      name: 'password parameter',
      config: { url: `postgres://app@db.example.com/app?password=${PASSWORD}` },
      path: 'body/url',
    },
    { name: 'unknown parameter', config: { url: url('db.example.com/app?options=-c') }, path: 'body/url' },
    {
      name: 'operator datastore, localhost for 127.0.0.1',
      config: { url: url('localhost/strata') },
      path: 'body/url',
      message: /own datastores/,
    },
    {
      name: 'operator datastore, 127.0.0.1:5432 for localhost without port',
      config: { url: url('127.0.0.1:5432/strata_dedicated_7') },
      path: 'body/url',
      message: /own datastores/,
    },
    {
      name: 'operator datastore, ::1',
      config: { url: url('[::1]/strata') },
      path: 'body/url',
      message: /own datastores/,
    },
    {
      name: 'operator datastore, upper-case host and postgresql scheme',
      config: { url: `postgresql://app:${PASSWORD}@LocalHost:5432/strata` },
      path: 'body/url',
      message: /own datastores/,
    },
    {
      name: 'operator datastore, short IPv4 form',
      config: { url: url('127.1/strata') },
      path: 'body/url',
      message: /own datastores/,
    },
    {
      name: 'operator datastore on a named host and port',
      config: { url: url('DB.Internal.Example:6432/strata') },
      path: 'body/url',
      message: /own datastores/,
    },
    {
      name: 'unknown TLS mode',
      config: { url: url('db.example.com/app'), tls: { mode: 'prefer' } },
      path: 'body/tls/mode',
    },
    {
      name: 'CA that is not PEM',
      config: { url: url('db.example.com/app'), tls: { mode: 'verify-full', ca: 'not a certificate' } },
      path: 'body/tls/ca',
      message: /PEM/,
    },
    {
      name: 'CA with a corrupt PEM block',
      config: { url: url('db.example.com/app'), tls: { mode: 'verify-full', ca: corruptCa } },
      path: 'body/tls/ca',
      message: /not a valid X\.509/,
    },
    {
      name: 'CA with mode disable',
      config: { url: url('db.example.com/app'), tls: { mode: 'disable', ca: CA } },
      path: 'body/tls/ca',
    },
  ];

  it.each(cases)('refuses: $name', ({ config, path, message }) => {
    const err = refusal(config);
    expect(err.code).toBe('validation_failed');
    expect(err.status).toBe(400);
    const issues = issuesOf(err);
    expect(issues.map((i) => i.path)).toContain(path);
    if (message) expect(issues.find((i) => i.path === path)?.message).toMatch(message);
    expect(err.message).not.toContain(PASSWORD);
    expect(JSON.stringify(issues)).not.toContain(PASSWORD);
  });

  it('lists every problem at once', () => {
    const err = refusal({
      url: url('localhost/strata?sslmode=require'),
      tls: { mode: 'verify-full', ca: 'nope' },
      extra: true,
    });
    expect(issuesOf(err)).toEqual([
      { path: 'body/extra', message: 'is not a known field' },
      { path: 'body/url', message: expect.stringContaining('sslmode') },
      { path: 'body/url', message: expect.stringContaining('own datastores') },
      { path: 'body/tls/ca', message: expect.stringContaining('PEM') },
    ]);
    expect(err.message).toContain('body/url');
    expect(err.message).not.toContain(PASSWORD);
  });

  it('accepts another database, port or host than the operator uses, and defaults TLS to verify-full', () => {
    for (const u of [
      url('localhost/acme'),
      url('127.0.0.1:5433/strata'),
      url('db.internal.example/strata'),
      url('customer.example.com/strata?application_name=strata'),
    ]) {
      expect(validateByodConfig({ url: u }, { operatorDatastoreUrls: OPERATOR_DATASTORES })).toEqual({
        url: u,
        tls: { mode: 'verify-full' },
      });
    }
  });

  it('accepts a PEM CA bundle with verify-full', () => {
    const config = { url: url('db.example.com/app'), tls: { mode: 'verify-full' as const, ca: `${CA}\n${CA}` } };
    expect(validateByodConfig(config, { operatorDatastoreUrls: [] })).toEqual(config);
  });

  it('reads operator URLs the way libpq does (socket directory, host and dbname parameters)', () => {
    const operator = [
      'postgres:///strata?host=/var/run/postgresql',
      'postgres://x@ignored/x?host=10.0.0.5&dbname=main',
    ];
    expect(issuesOf(refusal({ url: url('localhost/strata') }, operator))[0]?.path).toBe('body/url');
    expect(issuesOf(refusal({ url: url('10.0.0.5/main') }, operator))[0]?.path).toBe('body/url');
  });
});

describe("validateByodConfig: the tenant's own bucket", () => {
  const db = `postgres://app:${PASSWORD}@db.example.com/app`;
  const refusedBucket = (bucket: string, operatorObjectStoreUrls: string[] = []) => {
    try {
      validateByodConfig({ url: db, bucket }, { operatorDatastoreUrls: [], operatorObjectStoreUrls });
    } catch (err) {
      const issues = issuesOf(err as AppError);
      expect(JSON.stringify(issues)).not.toContain('bucket-s3cret');
      return issues.find((i) => i.path === 'body/bucket')?.message;
    }
    throw new Error('expected validation_failed');
  };

  it('accepts an s3:// bucket with its own credentials and keeps it', () => {
    const bucket = 's3://KEY:bucket-s3cret@acme-files/strata/?endpoint=https://s3.acme.example&region=eu-west-1';
    expect(validateByodConfig({ url: db, bucket }, { operatorDatastoreUrls: [] })).toMatchObject({ bucket });
  });

  it('refuses a bucket without credentials (they would be the operator’s), malformed, or one of the operator’s', () => {
    expect(refusedBucket('s3://acme-files?region=eu-west-1')).toMatch(/its own access key and secret/);
    expect(refusedBucket('s3://KEY:bucket-s3cret@Not_A_Bucket')).toMatch(/not a valid bucket name/);
    expect(refusedBucket('s3://KEY:bucket-s3cret@acme-files?colour=red')).toMatch(/unknown parameter/);
    const operator = 's3://OPKEY:op-secret@strata-eu/tenants/?endpoint=http://minio.internal:9000';
    expect(refusedBucket('s3://KEY:bucket-s3cret@strata-eu/?endpoint=http://MINIO.internal:9000', [operator])).toMatch(
      /own buckets/,
    );
  });

  it('refuses the database names Strata gives the dedicated databases it creates', () => {
    const err = refusal({ url: `postgres://app:${PASSWORD}@db.example.com/strata_ds_0123abcd` });
    expect(issuesOf(err)[0]?.message).toMatch(/reserved for the dedicated databases/);
  });
});

describe('redactUrl', () => {
  it('replaces the password and secret parameters with ***', () => {
    expect(redactUrl(`postgres://app:${PASSWORD}@db.example.com:5432/app`)).toBe(
      'postgres://app:***@db.example.com:5432/app',
    );
    expect(redactUrl('postgres://app@db.example.com/app')).toBe('postgres://app@db.example.com/app');
    expect(redactUrl(`postgres://app@db.example.com/app?password=${PASSWORD}`)).not.toContain(PASSWORD);
    expect(redactUrl(`postgres://app:${PASSWORD}@db.example.com:99999/app`)).toBe(
      'postgres://app:***@db.example.com:99999/app',
    );
  });
});

const base = process.env.STRATA_TEST_DATABASE_URL;

describe.skipIf(!base)('testByodConnection against PostgreSQL', () => {
  const suffix = randomBytes(4).toString('hex');
  const customerDb = `strata_byod_${suffix}`;
  const limitedRole = `strata_byod_ro_${suffix}`;
  const reports: ByodReport[] = [];
  let admin: pg.Client;
  let expectedVersion: string;
  let hasPgvector: boolean;

  /** The test server with another user, password, database, or port. */
  const urlFor = (parts: { user?: string; database?: string; port?: number }) => {
    const u = new URL(base as string);
    u.username = parts.user ?? (u.username || 'postgres');
    u.password = PASSWORD;
    u.pathname = `/${parts.database ?? customerDb}`;
    if (parts.port) u.port = String(parts.port);
    return u.toString();
  };
  const probe = async (url: string, mode: 'disable' | 'require' | 'verify-full' = 'disable') => {
    const report = await testByodConnection(
      { url, tls: { mode } },
      { timeoutMs: 3000, operatorDatastoreUrls: [base as string] },
    );
    reports.push(report);
    return report;
  };
  const step = (report: ByodReport, name: string) => report.steps.find((s) => s.step === name);
  const expectSkippedAfter = (report: ByodReport, failed: string) => {
    const at = report.steps.findIndex((s) => s.step === failed);
    expect(report.steps[at]?.ok).toBe(false);
    for (const later of report.steps.slice(at + 1)) {
      expect(later.ok).toBe(false);
      expect(later.detail).toMatch(/^skipped: /);
    }
  };

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: adminUrl(base as string) });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${customerDb}`);
    await admin.query(`REVOKE CREATE ON DATABASE ${customerDb} FROM PUBLIC`);
    await admin.query(`CREATE ROLE ${limitedRole} LOGIN`);
    await admin.query(`GRANT CONNECT ON DATABASE ${customerDb} TO ${limitedRole}`);
    expectedVersion = (await admin.query<{ server_version: string }>('SHOW server_version')).rows[0]
      ?.server_version as string;
    hasPgvector = (await admin.query("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).rows.length > 0;
  });

  afterAll(async () => {
    if (!admin) return;
    await admin.query(`DROP DATABASE IF EXISTS ${customerDb} WITH (FORCE)`);
    await admin.query(`DROP ROLE IF EXISTS ${limitedRole}`);
    await admin.end();
    // Whatever happened above, the password never reached a report.
    for (const r of reports) expect(JSON.stringify(r)).not.toContain(PASSWORD);
  });

  it('passes every required step on a suitable database and leaves nothing behind', async () => {
    const report = await probe(urlFor({}));
    expect(report.steps.map((s) => [s.step, s.required])).toEqual([
      ['reachable', true],
      ['authenticated', true],
      ['version', true],
      ['create_privilege', true],
      ['pgvector', false],
      ['latency', false],
    ]);
    expect(report.steps.filter((s) => s.required).every((s) => s.ok)).toBe(true);
    expect(report.ok).toBe(true);
    expect(report.server_version).toBe(expectedVersion);
    expect(step(report, 'version')?.detail).toBe(`PostgreSQL ${expectedVersion}`);
    expect(report.pgvector).toBe(hasPgvector);
    expect(step(report, 'pgvector')?.ok).toBe(hasPgvector);
    expect(report.latency_ms).toEqual(expect.any(Number));
    expect(report.latency_ms).toBeGreaterThanOrEqual(0);
    expect(report.warnings.some((w) => /TLS is disabled/.test(w))).toBe(true);

    const customer = new pg.Client({ connectionString: databaseUrlFor(base as string, customerDb) });
    await customer.connect();
    try {
      const left = await customer.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'strata_probe_%'");
      expect(left.rows).toEqual([]);
    } finally {
      await customer.end();
    }
  });

  it('fails at reachable when nothing listens, and skips the rest', async () => {
    const report = await probe(urlFor({ port: 1 }));
    expect(report.ok).toBe(false);
    expect(report.steps[0]).toMatchObject({ step: 'reachable', ok: false, required: true });
    expect(report.steps[0]?.detail).toMatch(/refused|no answer/);
    expect(report.steps).toHaveLength(6);
    expectSkippedAfter(report, 'reachable');
    expect(report.server_version).toBeNull();
    expect(report.pgvector).toBeNull();
    expect(report.latency_ms).toBeNull();
  });

  it('fails at authenticated for an unknown role', async () => {
    const report = await probe(urlFor({ user: `strata_byod_nobody_${suffix}` }));
    expect(step(report, 'reachable')?.ok).toBe(true);
    expect(step(report, 'authenticated')).toMatchObject({ ok: false, required: true });
    expect(step(report, 'authenticated')?.detail).toMatch(/^authentication failed: .*does not exist/);
    expectSkippedAfter(report, 'authenticated');
    expect(report.ok).toBe(false);
  });

  it('says so when the database does not exist', async () => {
    const missing = `strata_byod_missing_${suffix}`;
    const report = await probe(urlFor({ database: missing }));
    expect(step(report, 'authenticated')?.ok).toBe(false);
    expect(step(report, 'authenticated')?.detail).toBe(`database "${missing}" does not exist on the server`);
    expectSkippedAfter(report, 'authenticated');
  });

  it('reports a TLS failure at authenticated when the server does not offer TLS', async () => {
    for (const mode of ['require', 'verify-full'] as const) {
      const report = await probe(urlFor({}), mode);
      expect(step(report, 'reachable')?.ok).toBe(true);
      expect(step(report, 'authenticated')?.ok).toBe(false);
      expect(step(report, 'authenticated')?.detail).toMatch(/^TLS failed/);
      expect(report.warnings).toEqual([]);
      expectSkippedAfter(report, 'authenticated');
    }
  });

  it('names the missing privilege for a role that may connect but not create', async () => {
    const report = await probe(urlFor({ user: limitedRole }));
    expect(step(report, 'authenticated')?.ok).toBe(true);
    expect(step(report, 'version')?.ok).toBe(true);
    const create = step(report, 'create_privilege');
    expect(create).toMatchObject({ ok: false, required: true });
    expect(create?.detail).toContain(`lacks the CREATE privilege on database "${customerDb}"`);
    expect(create?.detail).toContain(`"${limitedRole}"`);
    expectSkippedAfter(report, 'create_privilege');
    expect(report.ok).toBe(false);
  });

  describe('over TLS (a TLS-terminating proxy in front of the server, with a certificate made for the test)', () => {
    let proxy: TlsProxy;
    beforeAll(async () => {
      const u = new URL(base as string);
      // The certificate names 127.0.0.1 only: connecting by another name must fail verify-full.
      proxy = await startTlsProxy({ host: u.hostname, port: Number(u.port || 5432) }, 'IP:127.0.0.1');
    });
    afterAll(async () => {
      await proxy?.close();
    });
    const over = (host: string, tls: { mode: 'require' | 'verify-full'; ca?: string }) => {
      const u = new URL(urlFor({}));
      u.hostname = host;
      u.port = String(proxy.port);
      return testByodConnection(
        { url: u.toString(), tls },
        { timeoutMs: 5000, operatorDatastoreUrls: [base as string] },
      ).then((r) => {
        reports.push(r);
        return r;
      });
    };

    it('passes verify-full with the CA that signed the certificate', async () => {
      const report = await over('127.0.0.1', { mode: 'verify-full', ca: proxy.certificate });
      expect(step(report, 'authenticated')).toMatchObject({ ok: true, detail: expect.stringContaining('verify-full') });
      expect(report.ok).toBe(true);
      expect(report.warnings.some((w) => /TLS is disabled/.test(w))).toBe(false);
    });

    it('fails verify-full on a certificate no trusted CA signed, and says to give tls.ca', async () => {
      const report = await over('127.0.0.1', { mode: 'verify-full' });
      expect(step(report, 'authenticated')?.ok).toBe(false);
      expect(step(report, 'authenticated')?.detail).toMatch(/^TLS failed: .*self.signed.*give the CA/i);
      expectSkippedAfter(report, 'authenticated');
    });

    it('fails verify-full when the certificate does not name the host connected to', async () => {
      const report = await over('localhost', { mode: 'verify-full', ca: proxy.certificate });
      expect(step(report, 'authenticated')?.ok).toBe(false);
      expect(step(report, 'authenticated')?.detail).toMatch(/^TLS failed: .*(altnames|localhost)/i);
    });

    it('passes require (encrypted, certificate not checked)', async () => {
      const report = await over('127.0.0.1', { mode: 'require' });
      expect(step(report, 'authenticated')).toMatchObject({ ok: true, detail: expect.stringContaining('require') });
      expect(report.ok).toBe(true);
    });
  });

  describe('with a bucket of its own (a real S3-protocol server)', () => {
    let s3: S3Server;
    beforeAll(async () => {
      s3 = await startS3Server(['customer-bucket']);
    });
    afterAll(async () => {
      await s3?.close();
    });
    const withBucket = (bucket: string) =>
      testByodConnection(
        { url: urlFor({}), tls: { mode: 'disable' }, bucket },
        { timeoutMs: 5000, operatorDatastoreUrls: [base as string] },
      );

    it('adds a required bucket step that writes, reads back and deletes a probe object', async () => {
      const report = await withBucket(s3.url('customer-bucket'));
      expect(report.steps.at(-1)).toMatchObject({ step: 'bucket', ok: true, required: true });
      expect(report.ok).toBe(true);
      const store = await openObjectStore(s3.url('customer-bucket'));
      const left: string[] = [];
      for await (const o of store.list('')) left.push(o.key);
      await store.close();
      expect(left).toEqual([]);
      expect(JSON.stringify(report)).not.toContain(S3_SECRET);
    });

    it('fails the bucket step for a bucket that does not exist, without the secret in the report', async () => {
      const report = await withBucket(s3.url('no-such-bucket'));
      expect(report.steps.at(-1)).toMatchObject({ step: 'bucket', ok: false, required: true });
      expect(report.ok).toBe(false);
      expect(report.steps.at(-1)?.detail).toMatch(/cannot be used/);
    });
  });

  it('refuses to test the operator datastore itself', async () => {
    const own = urlFor({ database: new URL(base as string).pathname.slice(1) });
    const err = await probe(own).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ code: 'validation_failed', extra: { errors: [{ path: 'body/url' }] } });
    expect((err as AppError).message).not.toContain(PASSWORD);
  });
});
