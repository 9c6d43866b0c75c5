import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  API_KEY_SCOPES,
  type ApiKeyScope,
  PERMISSIONS,
  type Permission,
  permissionsOfRole,
  permissionsOfScopes,
  ROLE_PERMISSIONS,
  ROLES,
  type Role,
  SCOPE_PERMISSIONS,
} from '@strata/contract';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Strata } from '../src/main.js';
import type { AccessRule } from '../src/modules/auth/plugin.js';
import { openApiPathOf, routeUrlOf } from '../src/platform/http/schema.js';
import { createTenant, type Harness, startHarness, type TestTenant, tokenFromMail } from './harness.js';
import { exampleFor } from './openapi-examples.js';

// ---------------------------------------------------------------------------------------------------------------
// docs/permissions.md
// ---------------------------------------------------------------------------------------------------------------

const doc = readFileSync(new URL('../../../docs/permissions.md', import.meta.url), 'utf8');

/** The first markdown table after a `## heading`, as header cells and body rows of trimmed cells. */
function tableAfter(heading: string): { header: string[]; rows: string[][] } {
  const start = doc.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`docs/permissions.md has no "## ${heading}" section`);
  const lines = doc.slice(start).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  if (first < 0) throw new Error(`no table under "## ${heading}"`);
  const block: string[] = [];
  for (const line of lines.slice(first)) {
    if (!line.startsWith('|')) break;
    block.push(line);
  }
  const cells = (line: string) =>
    line
      .trim()
      .replace(/^\||\|$/g, '')
      .split('|')
      .map((c) => c.trim());
  const [header, separator, ...rows] = block.map(cells);
  if (!header || !separator?.every((c) => /^:?-+:?$/.test(c))) throw new Error(`malformed table under "${heading}"`);
  return { header, rows };
}

/** `a`, `b` -> ['a', 'b'] */
const codeSpans = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);

const sorted = (ps: readonly string[]) => [...ps].sort();

describe('docs/permissions.md stays in step with the code', () => {
  it('the role table is ROLE_PERMISSIONS exactly: one row per permission, one column per role', () => {
    const { header, rows } = tableAfter('Roles');
    expect(header[0]).toBe('permission');
    const roleColumns = header.filter((h) => (ROLES as readonly string[]).includes(h));
    expect(roleColumns).toEqual([...ROLES]);
    const rowPermissions = rows.map((r) => {
      const spans = codeSpans(r[0] ?? '');
      expect(spans, `first cell of ${r.join(' | ')}`).toHaveLength(1);
      return spans[0] as string;
    });
    expect(rowPermissions).toEqual([...PERMISSIONS]);

    const documented = Object.fromEntries(ROLES.map((role) => [role, [] as string[]])) as Record<Role, string[]>;
    for (const row of rows) {
      const permission = codeSpans(row[0] ?? '')[0] as string;
      for (const role of ROLES) {
        const cell = row[header.indexOf(role)];
        expect(['✓', ''], `${permission} / ${role}: "${cell}"`).toContain(cell);
        if (cell === '✓') documented[role].push(permission);
      }
    }
    const inCode = Object.fromEntries(ROLES.map((role) => [role, sorted(ROLE_PERMISSIONS[role])]));
    expect(Object.fromEntries(ROLES.map((role) => [role, sorted(documented[role])]))).toEqual(inCode);
  });

  it('the scope table is SCOPE_PERMISSIONS exactly', () => {
    const { header, rows } = tableAfter('API-key scopes');
    expect(header.slice(0, 2)).toEqual(['scope', 'permissions']);
    const documented = Object.fromEntries(
      rows.map((r) => [codeSpans(r[0] ?? '')[0], sorted(codeSpans(r[1] ?? ''))] as const),
    );
    expect(Object.keys(documented)).toEqual([...API_KEY_SCOPES]);
    expect(documented).toEqual(
      Object.fromEntries(API_KEY_SCOPES.map((s) => [s, sorted(SCOPE_PERMISSIONS[s as ApiKeyScope])])),
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The running app's access rules
// ---------------------------------------------------------------------------------------------------------------

interface RouteAccess {
  method: string;
  /** Fastify form: /v1/tenants/:tenantId */
  url: string;
  rule: AccessRule;
}

const keyOf = (method: string, url: string) => `${method} ${url}`;

/** The access rule of every route, as the running app registered it: routes added later are covered too. */
function accessRules(strata: Strata): Map<string, RouteAccess> {
  return new Map(strata.routes.map((r) => [keyOf(r.method, r.url), { method: r.method, url: r.url, rule: r.access }]));
}

type OpenApiDoc = {
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: object }> } }>>;
};

let h: Harness;
let rules: Map<string, RouteAccess>;
let openapi: OpenApiDoc;
beforeAll(async () => {
  // A second region (an embedded datastore) so that the operator's move routes have somewhere to move to.
  const eu = mkdtempSync(join(tmpdir(), 'strata-matrix-eu-'));
  h = await startHarness({ STRATA_REGIONS: 'local,eu', STRATA_SHARED_DATASTORES: `eu=pglite:${eu}` });
  rules = accessRules(h.strata);
  openapi = (await h.call(undefined, 'GET', '/openapi.json')).json();
});
afterAll(async () => {
  await h?.close();
});

/** Every operation of the OpenAPI document with its access rule. */
function operations() {
  return Object.entries(openapi.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([m, op]) => {
      const method = m.toUpperCase();
      const url = routeUrlOf(path);
      const route = rules.get(keyOf(method, url));
      if (!route) throw new Error(`${method} ${path} is documented but was not found among the route modules`);
      return { ...route, path, bodySchema: op.requestBody?.content['application/json']?.schema };
    }),
  );
}

/** What a route needs, in the words of the "Which call needs which permission" table. */
function needOf(rule: AccessRule): string {
  if (rule.public) return 'public';
  if (rule.operator) return 'operator';
  if (rule.permission) return `\`${rule.permission}\``;
  return 'any credential';
}

describe('the route table', () => {
  it('the OpenAPI document lists every route the running app serves, but the hidden ones', () => {
    expect(rules.size).toBeGreaterThan(20);
    const documented = operations().map((o) => keyOf(o.method, o.url));
    const visible = h.strata.routes.filter((r) => !r.hidden).map((r) => keyOf(r.method, r.url));
    expect(documented.sort()).toEqual([...new Set(visible)].sort());
  });

  it('every tenant route declares a permission (or is operator-only), and each declared permission exists', () => {
    for (const { method, url, rule } of rules.values()) {
      if (rule.permission) expect(PERMISSIONS, `${method} ${url}`).toContain(rule.permission);
      if (url.includes(':tenantId')) expect(rule.permission, `${method} ${url}`).toBeDefined();
    }
  });

  it('docs/permissions.md lists every route with what it needs', () => {
    const { header, rows } = tableAfter('Which call needs which permission');
    expect(header).toEqual(['call', 'needs']);
    const documented = Object.fromEntries(rows.map((r) => [codeSpans(r[0] ?? '')[0], r[1]]));
    const actual = Object.fromEntries(
      [...rules.values()].map((r) => [keyOf(r.method, openApiPathOf(r.url)), needOf(r.rule)]),
    );
    expect(documented).toEqual(actual);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The matrix: every permission-guarded or operator-only route, called as every role, every scope and the operator
// ---------------------------------------------------------------------------------------------------------------

interface Caller {
  name: string;
  token: string;
  operator: boolean;
  permissions: ReadonlySet<Permission>;
}

let n = 0;
const fresh = (prefix: string) => `${prefix}${Date.now().toString(36)}${n++}`;

function is2xx(res: LightMyRequestResponse) {
  return res.statusCode >= 200 && res.statusCode < 300;
}

async function ok(res: Promise<LightMyRequestResponse>, what: string): Promise<LightMyRequestResponse> {
  const r = await res;
  if (!is2xx(r)) throw new Error(`${what}: ${r.statusCode} ${r.body}`);
  return r;
}

/** Fresh resources of a tenant, made with the operator key, so that every call has its own target. */
let lastCollection = '';

function fixtures(t: TestTenant) {
  const op = () => h.operatorToken;
  return {
    /** A new viewer, through the invitation flow; returns the user id. */
    async member(): Promise<string> {
      const email = `${fresh('spare')}@${t.slug}.test`;
      await ok(h.call(op(), 'POST', `/v1/tenants/${t.id}/invitations`, { email, role: 'viewer' }), 'invite spare');
      const accepted = await ok(
        h.call(undefined, 'POST', '/v1/invitations/accept', { token: tokenFromMail(h, email, 'sti') }),
        'accept spare',
      );
      return accepted.json().user.id;
    },
    async key(scopes: ApiKeyScope[] = ['data:read']): Promise<{ id: string; secret: string }> {
      const r = await ok(
        h.call(op(), 'POST', `/v1/tenants/${t.id}/api-keys`, { name: fresh('key'), scopes }),
        'create key',
      );
      return { id: r.json().id, secret: r.json().secret };
    },
    /** A collection with a one-dimensional vector field, so search requests succeed too. */
    async collection(): Promise<string> {
      const name = `c${randomUUID().replaceAll('-', '').slice(0, 12)}`;
      const vector = { field: 'v', dimensions: 1 };
      await ok(h.call(op(), 'POST', `/v1/tenants/${t.id}/collections`, { name, vector }), 'create collection');
      lastCollection = name;
      return name;
    },
    /** A document in the collection the URL named before it. */
    async document(): Promise<string> {
      const url = `/v1/tenants/${t.id}/collections/${lastCollection}/documents`;
      return (await ok(h.call(op(), 'POST', url, { data: { v: [1] } }), 'create document')).json().id;
    },
    async index(): Promise<string> {
      const name = `i${randomUUID().replaceAll('-', '').slice(0, 12)}`;
      const url = `/v1/tenants/${t.id}/collections/${lastCollection}/indexes`;
      await ok(h.call(op(), 'POST', url, { name, path: 'n' }), 'create index');
      return name;
    },
    /** A file (its key, for a route's trailing `*`). */
    async file(): Promise<string> {
      const key = `dir/f${randomUUID().replaceAll('-', '').slice(0, 12)}.json`;
      await ok(h.call(op(), 'PUT', `/v1/tenants/${t.id}/files/${key}`, { n: 1 }), 'upload file');
      return key;
    },
    /** A finished-copying (switched) move of the given tenant to eu. */
    async move(tenantId: string): Promise<string> {
      await ok(h.call(op(), 'PATCH', `/v1/tenants/${tenantId}`, { allowed_regions: ['local', 'eu'] }), 'allow eu');
      const tenant = await ok(h.call(op(), 'GET', `/v1/tenants/${tenantId}`), 'tenant');
      const region = tenant.json().data_region === 'eu' ? 'local' : 'eu';
      const started = await ok(h.call(op(), 'POST', `/v1/tenants/${tenantId}/moves`, { region }), 'move');
      await h.strata.services.moves.settled(started.json().id);
      return started.json().id;
    },
    /** A complete snapshot of the given tenant. */
    async snapshot(tenantId: string): Promise<string> {
      const started = await ok(h.call(op(), 'POST', `/v1/tenants/${tenantId}/snapshots`), 'snapshot');
      await h.strata.services.snapshots.settled(started.json().id);
      return started.json().id;
    },
    async invitation(): Promise<string> {
      const email = `${fresh('invitee')}@${t.slug}.test`;
      const r = await ok(h.call(op(), 'POST', `/v1/tenants/${t.id}/invitations`, { email, role: 'viewer' }), 'invite');
      return r.json().id;
    },
  };
}

/** Request bodies that succeed for a caller allowed to make the call; other routes get one built from the schema. */
function bodyFor(key: string, t: TestTenant, schema: object | undefined): unknown {
  switch (key) {
    case 'POST /v1/tenants':
      return { slug: fresh('m'), name: 'Matrix' };
    case 'PATCH /v1/tenants/:tenantId':
      return { name: fresh('Renamed ') };
    case 'PATCH /v1/tenants/:tenantId/members/:userId':
      return { role: 'analyst' };
    case 'POST /v1/tenants/:tenantId/invitations':
      return { email: `${fresh('invitee')}@${t.slug}.test`, role: 'viewer' };
    case 'POST /v1/tenants/:tenantId/api-keys':
      return { name: fresh('made-by-'), scopes: ['data:read'] };
    case 'POST /v1/tenants/:tenantId/datastore/test':
      // Nothing listens on port 1: the test runs and reports the first step failed, quickly.
      return { url: 'postgresql://app@127.0.0.1:1/app', tls: { mode: 'disable' } };
    case 'POST /v1/tenants/:tenantId/moves':
      return { region: 'eu' };
    case 'POST /v1/tenants/:tenantId/snapshots/:snapshotId/restore':
      return {};
    case 'POST /v1/tenants/:tenantId/batch':
      return { operations: [{ op: 'create', collection: lastCollection, data: { n: 1 } }] };
    default:
      return schema ? exampleFor(schema as Parameters<typeof exampleFor>[0]) : undefined;
  }
}

/** The state an operator-only tenant route needs to succeed, on a tenant of its own. */
const operatorSetup: Record<string, (tenantId: string) => Promise<unknown>> = {
  'POST /v1/tenants/:tenantId/resume': (id) =>
    ok(h.call(h.operatorToken, 'POST', `/v1/tenants/${id}/suspend`), 'suspend'),
  'POST /v1/tenants/:tenantId/restore': (id) => ok(h.call(h.operatorToken, 'DELETE', `/v1/tenants/${id}`), 'delete'),
  'POST /v1/tenants/:tenantId/moves': (id) =>
    ok(h.call(h.operatorToken, 'PATCH', `/v1/tenants/${id}`, { allowed_regions: ['local', 'eu'] }), 'allow eu'),
};

describe('permission matrix', () => {
  it('allows exactly the roles, scopes and operator the rules name, and refuses the rest with 403 forbidden', async () => {
    const t = await createTenant(h, { roles: ['admin', 'developer', 'analyst', 'viewer'] });
    const make = fixtures(t);
    const callers: Caller[] = ROLES.map((role) => ({
      name: `session:${role}`,
      token: t.sessions[role] as string,
      operator: false,
      permissions: permissionsOfRole(role),
    }));
    for (const scope of API_KEY_SCOPES) {
      callers.push({
        name: `key:${scope}`,
        token: (await make.key([scope])).secret,
        operator: false,
        permissions: permissionsOfScopes([scope]),
      });
    }
    callers.push({ name: 'operator', token: h.operatorToken, operator: true, permissions: new Set(PERMISSIONS) });
    for (const c of callers) expect(c.token, c.name).toMatch(/^st[osk]_/);

    const guarded = operations().filter((o) => o.rule.permission || o.rule.operator);
    const keys = guarded.map((o) => keyOf(o.method, o.url));
    expect(keys.length).toBeGreaterThanOrEqual(15);
    expect(keys).toEqual(
      expect.arrayContaining([
        'POST /v1/tenants',
        'GET /v1/tenants/:tenantId',
        'PATCH /v1/tenants/:tenantId',
        'POST /v1/tenants/:tenantId/suspend',
        'GET /v1/tenants/:tenantId/members',
        'PATCH /v1/tenants/:tenantId/members/:userId',
        'DELETE /v1/tenants/:tenantId/members/:userId',
        'POST /v1/tenants/:tenantId/invitations',
        'DELETE /v1/tenants/:tenantId/invitations/:invitationId',
        'POST /v1/tenants/:tenantId/api-keys',
        'GET /v1/tenants/:tenantId/api-keys/:keyId',
        'DELETE /v1/tenants/:tenantId/api-keys/:keyId',
      ]),
    );

    const wrong: string[] = [];
    let readMove: string | undefined;
    let allowedCalls = 0;
    let refusedCalls = 0;
    for (const op of guarded) {
      const key = keyOf(op.method, op.url);
      for (const caller of callers) {
        // Members and keys act on their tenant; the operator's tenant-lifecycle calls get a tenant of their own,
        // in the state the call needs, so that suspending or deleting never disturbs the rest of the matrix.
        let tenantId = t.id;
        if (caller.operator && op.rule.operator && op.url.includes(':tenantId')) {
          const created = await ok(
            h.call(h.operatorToken, 'POST', '/v1/tenants', { slug: fresh('op'), name: 'Lifecycle' }),
            'create tenant',
          );
          tenantId = created.json().id;
          await operatorSetup[key]?.(tenantId);
        }
        const params: Record<string, () => Promise<string>> = {
          tenantId: async () => tenantId,
          userId: () => make.member(),
          keyId: async () => (await make.key()).id,
          invitationId: () => make.invitation(),
          collection: () => make.collection(),
          id: () => make.document(),
          index: () => make.index(),
          // A real move: a fresh one to finish (finishing ends it), one shared by the readers otherwise.
          snapshotId: () => make.snapshot(tenantId),
          moveId: async () => {
            if (caller.operator || op.method === 'POST') return make.move(tenantId);
            readMove = readMove ?? (await make.move(t.id));
            return readMove;
          },
        };
        let url = op.url;
        for (const [, name] of op.url.matchAll(/:(\w+)/g)) {
          const value = params[name as string];
          if (!value) throw new Error(`${key}: no fixture for the :${name} parameter; add one to this test`);
          url = url.replace(`:${name}`, await value());
        }
        if (url.endsWith('/*')) url = `${url.slice(0, -1)}${await make.file()}`;
        // The change stream stays open; a short lifetime lets the allowed calls finish.
        if (key === 'GET /v1/tenants/:tenantId/changes/stream') url += '?max_seconds=0.05';
        const res = await h.call(caller.token, op.method, url, bodyFor(key, t, op.bodySchema));
        // A rollback is a move under way: let it end before the next fixture moves the tenant again.
        if (key.endsWith('/rollback') && is2xx(res)) await h.strata.services.moves.settled(res.json().id);
        const body = res.headers['content-type']?.toString().includes('json') ? res.json() : {};
        const allowed =
          caller.operator || (!op.rule.operator && op.rule.permission && caller.permissions.has(op.rule.permission));
        const cell = `${caller.name} ${key}`;
        if (allowed) {
          allowedCalls++;
          if (!is2xx(res)) wrong.push(`${cell}: expected 2xx, got ${res.statusCode} ${res.body}`);
        } else {
          refusedCalls++;
          if (res.statusCode !== 403 || body.code !== 'forbidden') {
            wrong.push(`${cell}: expected 403 forbidden, got ${res.statusCode} ${res.body}`);
          } else if (!op.rule.operator && body.permission !== op.rule.permission) {
            wrong.push(`${cell}: refused for ${body.permission}, expected ${op.rule.permission}`);
          }
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(allowedCalls + refusedCalls).toBe(guarded.length * callers.length);
    // Both sides of the matrix were exercised: every member role is refused something except the top two.
    expect(allowedCalls).toBeGreaterThan(guarded.length);
    expect(refusedCalls).toBeGreaterThan(guarded.length);

    // No refused call got through: the tenant is still active and the members are who they were.
    const after = await h.call(h.operatorToken, 'GET', `/v1/tenants/${t.id}`);
    expect(after.json().status).toBe('active');
    const members = await h.call(h.operatorToken, 'GET', `/v1/tenants/${t.id}/members?limit=200`);
    const roleOf = (userId: string | undefined) =>
      members.json().data.find((m: { user_id: string }) => m.user_id === userId)?.role;
    for (const role of ROLES) expect(roleOf(t.userIds[role]), role).toBe(role);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Refusals that must not leak: strangers get 404, anonymous callers 401, a suspended tenant's members 403
// ---------------------------------------------------------------------------------------------------------------

describe('refusals', () => {
  let a: TestTenant;
  let b: TestTenant;
  /** Real targets in tenant a, so that a stranger wrongly let through would reach them (and not a 404 of the handler). */
  let targets: Record<string, string>;
  beforeAll(async () => {
    a = await createTenant(h, { roles: ['viewer'] });
    b = await createTenant(h);
    const make = fixtures(a);
    targets = {
      userId: a.userIds.viewer as string,
      keyId: (await make.key()).id,
      invitationId: await make.invitation(),
      collection: await make.collection(),
      id: await make.document(),
      index: await make.index(),
      '*': await make.file(),
    };
  });

  const tenantRoutes = () => operations().filter((o) => o.url.includes(':tenantId'));
  const urlFor = (url: string, tenantId: string) =>
    url
      .replace(':tenantId', tenantId)
      .replace(/:(\w+)/g, (_, name: string) => targets[name] ?? randomUUID())
      .replace(/\/\*$/, () => `/${targets['*']}`);

  it("another tenant's session and API key get 404 not_found on every tenant route, the same as a missing tenant", async () => {
    const routes = tenantRoutes();
    expect(routes.length).toBeGreaterThanOrEqual(15);
    const strangers = {
      'owner of another tenant': b.sessions.owner as string,
      'admin key of another tenant': b.adminKey,
    };
    const wrong: string[] = [];
    const strip = (r: LightMyRequestResponse) => {
      const { instance: _i, request_id: _r, ...rest } = r.json();
      return rest;
    };
    for (const op of routes) {
      const key = keyOf(op.method, op.url);
      for (const [who, token] of Object.entries(strangers)) {
        const body = bodyFor(key, a, op.bodySchema);
        const existing = await h.call(token, op.method, urlFor(op.url, a.id), body);
        const missing = await h.call(token, op.method, urlFor(op.url, randomUUID()), body);
        if (existing.statusCode !== 404 || existing.json().code !== 'not_found') {
          wrong.push(`${who} ${key}: expected 404 not_found, got ${existing.statusCode} ${existing.body}`);
        } else if (JSON.stringify(strip(existing)) !== JSON.stringify(strip(missing))) {
          wrong.push(`${who} ${key}: answers differ for an existing and a missing tenant`);
        }
      }
    }
    expect(wrong).toEqual([]);
    // Nothing was touched: the viewer is still there.
    const members = await h.call(a.sessions.owner, 'GET', `/v1/tenants/${a.id}/members`);
    expect(members.json().data.map((m: { user_id: string }) => m.user_id)).toContain(a.userIds.viewer);
  });

  it('a missing, malformed or revoked credential gets 401 on every route that is not public', async () => {
    const key = await fixtures(a).key();
    await ok(h.call(h.operatorToken, 'DELETE', `/v1/tenants/${a.id}/api-keys/${key.id}`), 'revoke');
    const guarded = operations().filter((o) => !o.rule.public);
    expect(guarded.length).toBeGreaterThan(15);
    const wrong: string[] = [];
    for (const op of guarded) {
      const url = urlFor(op.url, a.id);
      for (const [who, token] of [
        ['no credential', undefined],
        ['revoked key', key.secret],
        ['made-up token', `stk_${'a'.repeat(12)}_${'b'.repeat(43)}`],
      ] as const) {
        const res = await h.call(token, op.method, url, bodyFor(keyOf(op.method, op.url), a, op.bodySchema));
        if (res.statusCode !== 401 || res.json().code !== 'unauthenticated') {
          wrong.push(`${who} ${op.method} ${op.url}: expected 401, got ${res.statusCode}`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it("a suspended tenant's members and keys get 403 tenant_suspended on every tenant route; the operator does not", async () => {
    const c = await createTenant(h, { roles: ['viewer'] });
    await ok(h.call(h.operatorToken, 'POST', `/v1/tenants/${c.id}/suspend`), 'suspend');
    const wrong: string[] = [];
    for (const op of tenantRoutes()) {
      for (const [who, token] of Object.entries({
        owner: c.sessions.owner,
        viewer: c.sessions.viewer,
        key: c.adminKey,
      })) {
        const res = await h.call(
          token,
          op.method,
          urlFor(op.url, c.id),
          bodyFor(keyOf(op.method, op.url), c, op.bodySchema),
        );
        if (res.statusCode !== 403 || res.json().code !== 'tenant_suspended') {
          wrong.push(`${who} ${op.method} ${op.url}: expected 403 tenant_suspended, got ${res.statusCode} ${res.body}`);
        }
      }
    }
    expect(wrong).toEqual([]);
    expect((await h.call(h.operatorToken, 'GET', `/v1/tenants/${c.id}/members`)).statusCode).toBe(200);
  });
});
