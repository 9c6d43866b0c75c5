import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Role } from '@strata/contract';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { inject } from 'vitest';
import { type Config, loadConfig } from '../src/config.js';
import { createStrata, type Strata } from '../src/main.js';
import type { Database } from '../src/platform/db/driver.js';
import { openPostgres } from '../src/platform/db/pg-driver.js';
import { openPglite } from '../src/platform/db/pglite-driver.js';
import { createLogger } from '../src/platform/logger.js';
import { adminUrl, databaseUrlFor } from './pg-url.js';

export const driver = (process.env.STRATA_TEST_DRIVER ?? 'pglite') as 'pglite' | 'postgres';

/** A fresh database for one test file, cloned from the run's migrated template. */
export async function cloneDatabase(): Promise<{ db: Database; url?: string; drop: () => Promise<void> }> {
  if (driver === 'postgres') {
    const base = process.env.STRATA_TEST_DATABASE_URL as string;
    const name = `strata_t_${process.ppid}_${randomBytes(4).toString('hex')}`;
    const admin = openPostgres(adminUrl(base), { max: 1 });
    const template = inject('postgresTemplate');
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.exec(`CREATE DATABASE ${name} TEMPLATE ${template}`);
        break;
      } catch (err) {
        // Two files cloning at the same instant can collide on the template; try again shortly.
        if (attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      }
    }
    const url = databaseUrlFor(base, name);
    const db = openPostgres(url, { max: 5 });
    return {
      db,
      url,
      drop: async () => {
        await db.close();
        await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await admin.close();
      },
    };
  }
  const dump = readFileSync(inject('pgliteTemplate'));
  const db = await openPglite({ loadDataDir: new Blob([dump]) });
  return { db, drop: () => db.close() };
}

export interface Harness {
  strata: Strata;
  config: Config;
  db: Database;
  /** The cloned database's URL (PostgreSQL runs only). */
  url: string | undefined;
  operatorToken: string;
  /** HTTP through app.inject with a bearer token; JSON bodies are sent as JSON. */
  call(
    token: string | undefined,
    method: InjectOptions['method'],
    url: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<LightMyRequestResponse>;
  /** Mail written to the outbox so far, oldest first. */
  mail(): { to: string; subject: string; text: string }[];
  close(): Promise<void>;
}

export async function startHarness(env: Record<string, string> = {}): Promise<Harness> {
  const { db, url, drop } = await cloneDatabase();
  const dataDir = mkdtempSync(join(tmpdir(), 'strata-test-'));
  const config = loadConfig({ STRATA_DATA_DIR: dataDir, STRATA_LOG_LEVEL: 'silent', ...env });
  const strata = await createStrata(config, { db, logger: createLogger('silent') });
  const operatorToken = strata.firstOperatorKey as string;
  return {
    strata,
    config,
    db,
    url,
    operatorToken,
    call(token, method, url, body, headers = {}) {
      return strata.app.inject({
        method,
        url,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
      });
    },
    mail() {
      const dir = config.mailDir;
      return readdirSync(dir)
        .sort()
        .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
    },
    async close() {
      await strata.close();
      await drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Pulls the last token of a kind out of the newest mail to an address. */
export function tokenFromMail(h: Harness, to: string, kind: 'sti' | 'stl'): string {
  const messages = h.mail().filter((m) => m.to === to);
  const text = messages[messages.length - 1]?.text ?? '';
  const m = new RegExp(`${kind}_[a-z2-7]{12}_[A-Za-z0-9_-]{43}`).exec(text);
  if (!m) throw new Error(`no ${kind} token in mail to ${to}`);
  return m[0];
}

export interface TestTenant {
  id: string;
  slug: string;
  /** A tenant:admin + data API key. */
  adminKey: string;
  /** Session tokens of members by role. */
  sessions: Partial<Record<Role, string>>;
  userIds: Partial<Record<Role, string>>;
}

let counter = 0;

/** Creates a tenant (operator), its owner through the invitation flow, and an admin API key. */
export async function createTenant(
  h: Harness,
  options: { plan?: string; roles?: Role[]; slug?: string } = {},
): Promise<TestTenant> {
  const slug = options.slug ?? `t${Date.now().toString(36)}${counter++}`;
  const ownerEmail = `owner@${slug}.test`;
  const res = await h.call(h.operatorToken, 'POST', '/v1/tenants', {
    slug,
    name: `Tenant ${slug}`,
    plan: options.plan ?? 'enterprise',
    owner_email: ownerEmail,
  });
  if (res.statusCode !== 201) throw new Error(`create tenant: ${res.statusCode} ${res.body}`);
  const id = res.json().id as string;
  const sessions: TestTenant['sessions'] = {};
  const userIds: TestTenant['userIds'] = {};
  const accept = async (email: string, role: Role) => {
    const a = await h.call(undefined, 'POST', '/v1/invitations/accept', { token: tokenFromMail(h, email, 'sti') });
    if (a.statusCode !== 201) throw new Error(`accept: ${a.statusCode} ${a.body}`);
    sessions[role] = a.json().token;
    userIds[role] = a.json().user.id;
  };
  await accept(ownerEmail, 'owner');
  for (const role of options.roles ?? []) {
    if (role === 'owner') continue;
    const email = `${role}@${slug}.test`;
    const inv = await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/invitations`, { email, role });
    if (inv.statusCode !== 201) throw new Error(`invite: ${inv.statusCode} ${inv.body}`);
    await accept(email, role);
  }
  const key = await h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/api-keys`, {
    name: 'admin',
    scopes: ['tenant:admin', 'data:write'],
  });
  if (key.statusCode !== 201) throw new Error(`api key: ${key.statusCode} ${key.body}`);
  return { id, slug, adminKey: key.json().secret, sessions, userIds };
}
