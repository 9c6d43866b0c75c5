import type { PlanOverrides, Tenant } from '@strata/contract';
import type { Queryable } from '../../platform/db/driver.js';
import { iso } from '../../platform/ids.js';

export interface TenantRow {
  id: string;
  slug: string;
  name: string;
  plan_id: string;
  plan_overrides: PlanOverrides;
  status: Tenant['status'];
  data_region: string;
  allowed_regions: string[];
  created_at: Date;
  updated_at: Date;
  suspended_at: Date | null;
  deleted_at: Date | null;
  purge_after: Date | null;
  /** A datastore of the tenant's own (strata.datastores), or null for its region's shared one. */
  datastore_id: string | null;
}

export function toTenant(r: TenantRow): Tenant {
  return {
    id: r.id,
    slug: r.slug,
    name: r.name,
    plan: r.plan_id,
    plan_overrides: r.plan_overrides,
    status: r.status,
    data_region: r.data_region,
    allowed_regions: r.allowed_regions,
    created_at: iso(r.created_at) as string,
    updated_at: iso(r.updated_at) as string,
    suspended_at: iso(r.suspended_at),
    deleted_at: iso(r.deleted_at),
    purge_after: iso(r.purge_after),
  };
}

export async function insertTenant(
  tx: Queryable,
  t: Pick<TenantRow, 'id' | 'slug' | 'name' | 'plan_id' | 'plan_overrides' | 'data_region' | 'allowed_regions'>,
): Promise<TenantRow> {
  const { rows } = await tx.query<TenantRow>(
    `INSERT INTO strata.tenants (id, slug, name, plan_id, plan_overrides, data_region, allowed_regions)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (slug) DO NOTHING RETURNING *`,
    [t.id, t.slug, t.name, t.plan_id, JSON.stringify(t.plan_overrides), t.data_region, t.allowed_regions],
  );
  return rows[0] as TenantRow;
}

export async function getTenant(tx: Queryable, id: string): Promise<TenantRow | undefined> {
  const { rows } = await tx.query<TenantRow>('SELECT * FROM strata.tenants WHERE id = $1', [id]);
  return rows[0];
}

export async function listTenants(tx: Queryable, after: string | null, limit: number, status?: string) {
  const { rows } = await tx.query<TenantRow>(
    `SELECT * FROM strata.tenants
     WHERE ($1::uuid IS NULL OR id > $1::uuid) AND ($2::text IS NULL OR status = $2::text)
     ORDER BY id LIMIT $3`,
    [after, status ?? null, limit + 1],
  );
  return rows;
}

export async function updateTenant(
  tx: Queryable,
  id: string,
  fields: Partial<Pick<TenantRow, 'name' | 'plan_id' | 'plan_overrides' | 'allowed_regions' | 'data_region'>>,
): Promise<TenantRow | undefined> {
  const { rows } = await tx.query<TenantRow>(
    `UPDATE strata.tenants SET
       name = coalesce($2, name),
       plan_id = coalesce($3, plan_id),
       plan_overrides = coalesce($4::jsonb, plan_overrides),
       allowed_regions = coalesce($5::text[], allowed_regions),
       updated_at = now()
     WHERE id = $1 RETURNING *`,
    [
      id,
      fields.name ?? null,
      fields.plan_id ?? null,
      fields.plan_overrides ? JSON.stringify(fields.plan_overrides) : null,
      fields.allowed_regions ?? null,
    ],
  );
  return rows[0];
}

export async function renameTenant(tx: Queryable, id: string, name: string): Promise<void> {
  await tx.query('UPDATE strata.tenants SET name = $2, updated_at = now() WHERE id = $1', [id, name]);
}

const STATUS_CHANGES = {
  suspend: `UPDATE strata.tenants SET status = 'suspended', suspended_at = now(), updated_at = now()
            WHERE id = $1 AND status = 'active' RETURNING *`,
  resume: `UPDATE strata.tenants SET status = 'active', suspended_at = NULL, updated_at = now()
           WHERE id = $1 AND status = 'suspended' RETURNING *`,
  delete: `UPDATE strata.tenants SET status = 'deleted', deleted_at = now(), updated_at = now(),
             purge_after = now() + make_interval(secs => $2::double precision * 3600)
           WHERE id = $1 AND status <> 'deleted' RETURNING *`,
  restore: `UPDATE strata.tenants SET status = 'active', deleted_at = NULL, purge_after = NULL, suspended_at = NULL,
              updated_at = now()
            WHERE id = $1 AND status = 'deleted' RETURNING *`,
} as const;
export type StatusChange = keyof typeof STATUS_CHANGES;

export async function changeStatus(tx: Queryable, id: string, change: StatusChange, graceHours = 0) {
  const params = change === 'delete' ? [id, graceHours] : [id];
  const { rows } = await tx.query<TenantRow>(STATUS_CHANGES[change], params);
  return rows[0];
}

/** Permanently removes deleted tenants whose grace period has passed; their control rows cascade. */
export async function purgeDue(tx: Queryable, now: Date = new Date()): Promise<string[]> {
  const { rows } = await tx.query<{ id: string }>(
    `DELETE FROM strata.tenants WHERE status = 'deleted' AND purge_after <= $1 RETURNING id`,
    [now],
  );
  return rows.map((r) => r.id);
}
