import {
  PERMISSIONS,
  type Permission,
  type PlanOverrides,
  permissionsOfRole,
  permissionsOfScopes,
  type Role,
} from '@strata/contract';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Platform } from '../../platform/context.js';
import { withSystem } from '../../platform/db/tenant-context.js';
import { AppError, errors } from '../../platform/errors.js';
import { AuthCache } from './cache.js';
import { type Principal, resolveBearer, type TenantAccess } from './credentials.js';

/**
 * Per-route access rules, declared in the route's `config`:
 *   public: true                    no credential needed
 *   operator: true                  only an operator key
 *   permission: 'members:read'      a credential with that permission on the :tenantId in the path
 * Anything else needs some valid credential.
 */
export interface AccessRule {
  public?: boolean;
  operator?: boolean;
  permission?: Permission;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | undefined;
    access: TenantAccess | undefined;
  }
  interface FastifyContextConfig extends AccessRule {}
}

const ALL = new Set<Permission>(PERMISSIONS);

export function requirePrincipal(request: FastifyRequest): Principal {
  if (!request.principal) throw errors.unauthenticated();
  return request.principal;
}

export function requireAccess(request: FastifyRequest): TenantAccess {
  if (!request.access) throw new Error('route has no tenant access rule');
  return request.access;
}

export interface TenantFacts {
  status: string;
  role: Role | null;
  plan: TenantAccess['plan'];
}

async function tenantFacts(platform: Platform, principal: Principal, tenantId: string) {
  return withSystem(platform.db, async (tx): Promise<TenantFacts | undefined> => {
    const t = await tx.query<{ status: string; plan_id: string; plan_overrides: PlanOverrides }>(
      'SELECT status, plan_id, plan_overrides FROM strata.tenants WHERE id = $1',
      [tenantId],
    );
    const tenant = t.rows[0];
    if (!tenant) return undefined;
    let role: Role | null = null;
    if (principal.kind === 'user') {
      const m = await tx.query<{ role: Role }>(
        'SELECT role FROM strata.memberships WHERE tenant_id = $1 AND user_id = $2',
        [tenantId, principal.id],
      );
      role = m.rows[0]?.role ?? null;
    }
    return { status: tenant.status, role, plan: { id: tenant.plan_id, overrides: tenant.plan_overrides } };
  });
}

async function authorizeTenant(
  platform: Platform,
  cache: AuthCache<Principal, TenantFacts>,
  principal: Principal,
  tenantId: string,
): Promise<TenantAccess> {
  const key = `${principal.kind}:${principal.id}:${tenantId}`;
  let found = cache.access(key);
  if (!found) {
    found = await tenantFacts(platform, principal, tenantId);
    // Only granted access is remembered: a new membership must work at once.
    if (found && (principal.kind !== 'user' || found.role)) cache.rememberAccess(key, found);
  }
  // Not found, deleted, or not this credential's tenant: all look the same (no existence oracle).
  const notFound = () => errors.notFound('tenant');
  if (!found) throw notFound();
  if (principal.kind === 'operator') return { tenantId, role: null, permissions: ALL, plan: found.plan };
  if (found.status === 'deleted') throw notFound();
  if (principal.kind === 'api_key' && principal.tenantId !== tenantId) throw notFound();
  if (principal.kind === 'user' && !found.role) throw notFound();
  if (found.status === 'suspended')
    throw new AppError('tenant_suspended', 'The tenant is suspended; contact the operator');
  if (principal.kind === 'api_key')
    return { tenantId, role: null, permissions: permissionsOfScopes(principal.scopes), plan: found.plan };
  return { tenantId, role: found.role, permissions: permissionsOfRole(found.role as Role), plan: found.plan };
}

function bearerOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) throw errors.unauthenticated('The Authorization header must be "Bearer <token>"');
  return m[1];
}

/** Successful writes to anything but tenant data may change who can do what: they clear the auth cache. */
function changesAccess(method: string, rule: AccessRule | undefined, status: number): boolean {
  if (method === 'GET' || method === 'HEAD' || status >= 400) return false;
  return !rule?.permission?.startsWith('data:');
}

export const authPlugin = fp(async (app: FastifyInstance, platform: Platform) => {
  app.decorateRequest('principal', undefined);
  app.decorateRequest('access', undefined);
  const cache = platform.authCache as AuthCache<Principal, TenantFacts>;

  // Before the response leaves, so a client that sees "revoked" can never then be let in by this node.
  app.addHook('onSend', async (request, reply) => {
    if (changesAccess(request.method, request.routeOptions.config as AccessRule | undefined, reply.statusCode)) {
      cache.clear();
    }
  });

  app.addHook('onRequest', async (request) => {
    const rule = request.routeOptions.config as AccessRule | undefined;
    if (!rule || rule.public || !request.routeOptions.url) return;
    const token = bearerOf(request);
    if (!token) throw errors.unauthenticated();
    const tokenKey = AuthCache.keyOf(token);
    let principal = cache.principal(tokenKey);
    if (!principal) {
      principal = await withSystem(platform.db, (tx) => resolveBearer(tx, token));
      if (!principal) throw errors.unauthenticated('The credential is unknown, revoked or expired');
      cache.rememberPrincipal(tokenKey, principal, principal.expiresAt);
    }
    request.principal = principal;
    request.log = request.log.child({ principal: `${principal.kind}:${principal.id}` });
    // Operator-only routes without a tenant in the path refuse other credentials here. Those with a tenant are
    // refused after the tenant check below, so another tenant's credential still gets 404, not 403.
    if (rule.operator && !rule.permission && principal.kind !== 'operator') {
      throw new AppError('forbidden', 'This route needs an operator key');
    }
  });

  // Tenant access is checked after validation, so a malformed tenant id is a 400, not a lookup.
  app.addHook('preHandler', async (request) => {
    const rule = request.routeOptions.config as AccessRule | undefined;
    if (!rule?.permission || !request.principal) return;
    const tenantId = (request.params as { tenantId?: string }).tenantId;
    if (!tenantId) throw new Error(`route ${request.routeOptions.url} declares a permission but has no :tenantId`);
    const access = await authorizeTenant(platform, cache, request.principal, tenantId);
    if (rule.operator && request.principal.kind !== 'operator') {
      throw new AppError('forbidden', 'This action needs an operator key');
    }
    if (!access.permissions.has(rule.permission)) throw errors.forbidden(rule.permission);
    request.access = access;
    request.log = request.log.child({ tenant_id: tenantId });
  });
});
