/**
 * Roles, permissions and API-key scopes: the one permission matrix.
 * docs/permissions.md shows the same table; a test keeps the two in step.
 */
export const ROLES = ['owner', 'admin', 'developer', 'analyst', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = [
  'tenant:read',
  'tenant:update',
  'members:read',
  'members:invite',
  'members:update',
  'members:remove',
  'api_keys:read',
  'api_keys:create',
  'api_keys:revoke',
  'data:read',
  'data:write',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

export const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  owner: PERMISSIONS,
  admin: PERMISSIONS,
  developer: ['tenant:read', 'members:read', 'api_keys:read', 'api_keys:create', 'data:read', 'data:write'],
  analyst: ['tenant:read', 'members:read', 'data:read'],
  viewer: ['tenant:read', 'members:read'],
};

export const API_KEY_SCOPES = ['data:read', 'data:write', 'tenant:admin'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

export const SCOPE_PERMISSIONS: Record<ApiKeyScope, readonly Permission[]> = {
  'data:read': ['tenant:read', 'data:read'],
  'data:write': ['tenant:read', 'data:read', 'data:write'],
  'tenant:admin': ROLE_PERMISSIONS.admin,
};

export function permissionsOfRole(role: Role): ReadonlySet<Permission> {
  return new Set(ROLE_PERMISSIONS[role]);
}

export function permissionsOfScopes(scopes: readonly ApiKeyScope[]): ReadonlySet<Permission> {
  return new Set(scopes.flatMap((s) => SCOPE_PERMISSIONS[s]));
}
