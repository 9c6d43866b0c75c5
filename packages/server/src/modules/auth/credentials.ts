import type { ApiKeyScope, Permission, PlanOverrides, Role } from '@strata/contract';
import type { Queryable } from '../../platform/db/driver.js';
import { parseToken, secretMatches } from '../../platform/tokens.js';

export type Principal = (
  | { kind: 'operator'; id: string; name: string }
  | { kind: 'api_key'; id: string; name: string; tenantId: string; scopes: ApiKeyScope[] }
  | { kind: 'user'; id: string; email: string; sessionId: string }
) & {
  /** When the credential stops being valid (ms since the epoch), if it expires. */
  expiresAt?: number;
};

/** The tenant a request acts on, and what the principal may do there. */
export interface TenantAccess {
  tenantId: string;
  role: Role | null;
  permissions: ReadonlySet<Permission>;
  /** The tenant's plan and overrides, loaded with the access check so data routes need no second lookup. */
  plan: { id: string; overrides: PlanOverrides };
}

interface CredentialRow {
  id: string;
  name: string;
  secret_hash: string;
  tenant_id?: string;
  scopes?: ApiKeyScope[];
  email?: string;
  user_id?: string;
  expires_at?: Date | null;
}

const LOOKUPS = {
  operator: `SELECT id, name, secret_hash FROM strata.operator_keys WHERE public_id = $1 AND revoked_at IS NULL`,
  apiKey: `SELECT id, name, secret_hash, tenant_id, scopes, expires_at FROM strata.api_keys
           WHERE public_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
  session: `SELECT s.id, u.email AS name, s.secret_hash, u.email, s.user_id, s.expires_at FROM strata.sessions s
            JOIN strata.users u ON u.id = s.user_id
            WHERE s.public_id = $1 AND s.revoked_at IS NULL AND s.expires_at > now()`,
} as const;

/** Resolves a bearer token to a principal, or undefined. Runs as the control role (cross-tenant by nature). */
export async function resolveBearer(tx: Queryable, token: string): Promise<Principal | undefined> {
  const parsed = parseToken(token);
  if (!parsed || !(parsed.kind in LOOKUPS)) return undefined;
  const { rows } = await tx.query<CredentialRow>(LOOKUPS[parsed.kind as keyof typeof LOOKUPS], [parsed.publicId]);
  const row = rows[0];
  if (!row || !secretMatches(parsed.secret, row.secret_hash)) return undefined;
  const expiry = row.expires_at ? { expiresAt: new Date(row.expires_at).getTime() } : {};
  switch (parsed.kind) {
    case 'operator':
      await tx.query(
        `UPDATE strata.operator_keys SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
        [row.id],
      );
      return { kind: 'operator', id: row.id, name: row.name };
    case 'apiKey':
      await tx.query(
        `UPDATE strata.api_keys SET last_used_at = now()
         WHERE tenant_id = $1 AND id = $2 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
        [row.tenant_id, row.id],
      );
      return {
        kind: 'api_key',
        id: row.id,
        name: row.name,
        tenantId: row.tenant_id as string,
        scopes: row.scopes ?? [],
        ...expiry,
      };
    default:
      return { kind: 'user', id: row.user_id as string, email: row.email as string, sessionId: row.id, ...expiry };
  }
}
