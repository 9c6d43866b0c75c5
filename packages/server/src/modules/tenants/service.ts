import type { CreateTenant, Tenant, UpdateTenant } from '@strata/contract';
import type { Platform } from '../../platform/context.js';
import type { Database, Queryable } from '../../platform/db/driver.js';
import { withSystem, withTenant } from '../../platform/db/tenant-context.js';
import { AppError, errors } from '../../platform/errors.js';
import { decodeCursor, toPage } from '../../platform/http/pagination.js';
import { newId } from '../../platform/ids.js';
import type { IndexManager } from '../collections/indexes.js';
import type { MemberService } from '../members/service.js';
import { discardDatastore } from '../placement/datastores.js';
import { PLACEMENT_FEATURE } from '../placement/router.js';
import * as store from './store.js';

/** Every tenant data table, children first: what purging a tenant removes from its datastore. */
// In delete order (documents before the collections they reference).
export const TENANT_DATA_TABLES = [
  'strata_data.changes',
  'strata_data.idempotency',
  'strata_data.documents',
  'strata_data.collections',
  'strata_data.files',
  'strata_data.tenant_sequences',
] as const;

/** Removes every row and index of the tenant from one datastore (a purge, or a moved tenant's old copy). */
export async function removeTenantData(db: Database, tenantId: string, indexes: IndexManager): Promise<void> {
  await withTenant(db, tenantId, async (tx) => {
    for (const table of TENANT_DATA_TABLES) await tx.query(`DELETE FROM ${table}`);
  });
  await indexes.dropForTenant(db, tenantId);
}

export class TenantService {
  /** Run for each tenant about to be purged, before its data goes (e.g. dropping the source copies of its moves). */
  readonly beforePurge: ((tenantId: string) => Promise<void>)[] = [];

  constructor(
    private readonly platform: Platform,
    private readonly invitations: MemberService,
    private readonly indexes: IndexManager,
  ) {}

  #checkRegions(dataRegion: string, allowed: string[]): void {
    const known = this.platform.config.regions;
    const unknown = allowed.filter((r) => !known.includes(r));
    if (unknown.length > 0) {
      throw new AppError('region_not_allowed', `Unknown region(s): ${unknown.join(', ')}`, { regions: known });
    }
    if (!allowed.includes(dataRegion)) {
      throw new AppError('region_not_allowed', `data_region ${dataRegion} is not in allowed_regions`, {
        allowed_regions: allowed,
      });
    }
  }

  async create(input: CreateTenant) {
    const planId = input.plan ?? 'free';
    this.platform.plans.require(planId);
    const dataRegion = input.data_region ?? input.allowed_regions?.[0] ?? this.platform.config.defaultRegion;
    const allowed = input.allowed_regions ?? [dataRegion];
    this.#checkRegions(dataRegion, allowed);
    const id = newId();
    const row = await withSystem(this.platform.db, (tx) =>
      store.insertTenant(tx, {
        id,
        slug: input.slug,
        name: input.name,
        plan_id: planId,
        plan_overrides: input.plan_overrides ?? {},
        data_region: dataRegion,
        allowed_regions: allowed,
      }),
    );
    if (!row) throw new AppError('slug_taken', `The slug "${input.slug}" is already in use`);
    const tenant = store.toTenant(row);
    if (!input.owner_email) return tenant;
    const invitation = await this.invitations.invite(id, { email: input.owner_email, role: 'owner' }, null, true);
    return {
      ...tenant,
      owner_invitation: { id: invitation.id, email: invitation.email, expires_at: invitation.expires_at },
    };
  }

  async list(query: { limit?: number; cursor?: string; status?: Tenant['status'] }) {
    const limit = query.limit ?? 50;
    const rows = await withSystem(this.platform.db, (tx) =>
      store.listTenants(tx, decodeCursor(query.cursor), limit, query.status),
    );
    return toPage(rows, limit, (r) => r.id, store.toTenant);
  }

  async get(tenantId: string): Promise<Tenant> {
    const row = await withTenant(this.platform.db, tenantId, (tx) => store.getTenant(tx, tenantId));
    if (!row) throw errors.notFound('tenant');
    return store.toTenant(row);
  }

  /** Operators may change anything; tenant credentials may only rename. */
  async update(tenantId: string, input: UpdateTenant, asOperator: boolean): Promise<Tenant> {
    const { name, ...operatorFields } = input;
    if (!asOperator) {
      const fields = Object.keys(operatorFields);
      if (fields.length > 0) {
        throw new AppError('forbidden', `Only the operator can change ${fields.join(', ')}`, { fields });
      }
      await withTenant(this.platform.db, tenantId, (tx) => store.renameTenant(tx, tenantId, name as string));
      return this.get(tenantId);
    }
    if (input.plan) this.platform.plans.require(input.plan);
    const row = await withSystem(this.platform.db, async (tx) => {
      const current = await store.getTenant(tx, tenantId);
      if (!current) return undefined;
      if (input.allowed_regions) this.#checkRegions(current.data_region, input.allowed_regions);
      if (input.plan !== undefined || input.plan_overrides !== undefined) {
        await this.#checkPlacementKept(tx, current, input);
      }
      return store.updateTenant(tx, tenantId, {
        ...(name !== undefined ? { name } : {}),
        ...(input.plan !== undefined ? { plan_id: input.plan } : {}),
        ...(input.plan_overrides !== undefined ? { plan_overrides: input.plan_overrides } : {}),
        ...(input.allowed_regions !== undefined ? { allowed_regions: input.allowed_regions } : {}),
      });
    });
    if (!row) throw errors.notFound('tenant');
    return store.toTenant(row);
  }

  /**
   * A plan change may not take away the entitlement the tenant's current placement rests on: a tenant in
   * its own database stays on a plan with byod_datastore until its data has moved back to a shared one.
   */
  async #checkPlacementKept(tx: Queryable, current: store.TenantRow, input: UpdateTenant): Promise<void> {
    if (!current.datastore_id) return;
    const { rows } = await tx.query<{ kind: 'dedicated' | 'byod' }>(
      'SELECT kind FROM strata.datastores WHERE id = $1',
      [current.datastore_id],
    );
    const kind = rows[0]?.kind;
    if (!kind) return;
    const feature = PLACEMENT_FEATURE[kind];
    const next = this.platform.plans.entitlements(
      input.plan ?? current.plan_id,
      input.plan_overrides ?? current.plan_overrides,
    );
    if (next.features[feature]) return;
    throw new AppError(
      'conflict',
      `The tenant's data is in a ${kind === 'byod' ? 'database of its own' : 'dedicated datastore'}, which the ${next.plan.name} plan does not include; move it to a shared datastore first`,
      { placement: kind, feature, plan: next.plan.id },
    );
  }

  async changeStatus(tenantId: string, change: store.StatusChange): Promise<Tenant> {
    const { changed, current } = await withSystem(this.platform.db, async (tx) => {
      const row = await store.changeStatus(tx, tenantId, change, this.platform.config.purgeGraceHours);
      return { changed: row, current: row ? undefined : await store.getTenant(tx, tenantId) };
    });
    if (changed) return store.toTenant(changed);
    if (!current) throw errors.notFound('tenant');
    throw new AppError('conflict', `Cannot ${change} a tenant that is ${current.status}`, {
      tenant_status: current.status,
    });
  }

  /** Removes tenants whose deletion grace period has passed: their data first, then their control rows. */
  async purgeDue(now = new Date()): Promise<string[]> {
    const due = await withSystem(this.platform.db, async (tx) => {
      const { rows } = await tx.query<{ id: string }>(
        `SELECT id FROM strata.tenants WHERE status = 'deleted' AND purge_after <= $1`,
        [now],
      );
      return rows.map((r) => r.id);
    });
    for (const id of due) {
      for (const hook of this.beforePurge) await hook(id);
      const placement = await this.platform.router.placementOf(id);
      await removeTenantData(await this.platform.router.forTenant(id), id, this.indexes);
      if (placement.datastoreId) {
        // A datastore of its own: a dedicated database is dropped, a BYOD one keeps only the customer's own data.
        await withSystem(this.platform.db, (tx) =>
          tx.query('UPDATE strata.tenants SET datastore_id = NULL WHERE id = $1', [id]),
        );
        await this.platform.router.announce(id);
        await discardDatastore(this.platform, placement.datastoreId, null);
      }
    }
    const purged = await withSystem(this.platform.db, (tx) => store.purgeDue(tx, now));
    if (purged.length > 0) this.platform.log.info({ type: 'tenants.purged', tenant_ids: purged }, 'purged tenants');
    return purged;
  }
}
