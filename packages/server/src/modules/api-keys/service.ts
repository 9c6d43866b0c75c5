import { type ApiKey, type ApiKeyScope, type Permission, SCOPE_PERMISSIONS } from '@strata/contract';
import type { Platform } from '../../platform/context.js';
import { withTenant } from '../../platform/db/tenant-context.js';
import { AppError, errors } from '../../platform/errors.js';
import { decodeCursor, toPage } from '../../platform/http/pagination.js';
import { iso, newId } from '../../platform/ids.js';
import { issueToken } from '../../platform/tokens.js';

interface ApiKeyRow {
  id: string;
  name: string;
  public_id: string;
  scopes: ApiKeyScope[];
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}
const COLUMNS = 'id, name, public_id, scopes, created_at, expires_at, revoked_at, last_used_at';
const toApiKey = (r: ApiKeyRow): ApiKey => ({
  id: r.id,
  name: r.name,
  prefix: `stk_${r.public_id}`,
  scopes: r.scopes,
  created_at: iso(r.created_at) as string,
  expires_at: iso(r.expires_at),
  revoked_at: iso(r.revoked_at),
  last_used_at: iso(r.last_used_at),
});

export class ApiKeyService {
  constructor(private readonly platform: Platform) {}

  /** Creates a key. A credential cannot mint a key that could do more than it can itself. */
  async create(
    tenantId: string,
    input: { name: string; scopes: ApiKeyScope[]; expires_at?: string },
    granted: ReadonlySet<Permission>,
  ) {
    const beyond = input.scopes.filter((s) => SCOPE_PERMISSIONS[s].some((p) => !granted.has(p)));
    if (beyond.length > 0) {
      throw new AppError('forbidden', `You cannot create a key with scope(s) ${beyond.join(', ')}`, { scopes: beyond });
    }
    if (input.expires_at && new Date(input.expires_at) <= new Date()) {
      throw new AppError('validation_failed', 'expires_at must be in the future', {
        errors: [{ path: 'body/expires_at', message: 'must be in the future' }],
      });
    }
    const t = issueToken('apiKey');
    const row = await withTenant(this.platform.db, tenantId, async (tx) => {
      const ent = await this.platform.plans.forTenant(tx, tenantId);
      const used = await tx.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM strata.api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())',
      );
      this.platform.plans.requireQuota(ent, 'api_keys', used.rows[0]?.n ?? 0);
      const { rows } = await tx.query<ApiKeyRow>(
        `INSERT INTO strata.api_keys (tenant_id, id, public_id, name, secret_hash, scopes, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${COLUMNS}`,
        [tenantId, newId(), t.publicId, input.name, t.secretHash, input.scopes, input.expires_at ?? null],
      );
      return rows[0] as ApiKeyRow;
    });
    return { ...toApiKey(row), secret: t.token };
  }

  async list(tenantId: string, query: { limit?: number; cursor?: string }) {
    const limit = query.limit ?? 50;
    const rows = await withTenant(this.platform.db, tenantId, async (tx) => {
      const r = await tx.query<ApiKeyRow>(
        `SELECT ${COLUMNS} FROM strata.api_keys WHERE ($1::uuid IS NULL OR id > $1::uuid) ORDER BY id LIMIT $2`,
        [decodeCursor(query.cursor), limit + 1],
      );
      return r.rows;
    });
    return toPage(rows, limit, (r) => r.id, toApiKey);
  }

  async get(tenantId: string, id: string): Promise<ApiKey> {
    const row = await withTenant(this.platform.db, tenantId, async (tx) => {
      const r = await tx.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM strata.api_keys WHERE id = $1`, [id]);
      return r.rows[0];
    });
    if (!row) throw errors.notFound('API key');
    return toApiKey(row);
  }

  async revoke(tenantId: string, id: string): Promise<ApiKey> {
    const row = await withTenant(this.platform.db, tenantId, async (tx) => {
      const r = await tx.query<ApiKeyRow>(
        `UPDATE strata.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`,
        [id],
      );
      return r.rows[0];
    });
    if (!row) throw errors.notFound('API key');
    return toApiKey(row);
  }
}
