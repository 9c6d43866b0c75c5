import type { FeatureName, Plan, PlanOverrides, QuotaName } from '@strata/contract';
import type { Queryable } from '../../platform/db/driver.js';
import { AppError, errors } from '../../platform/errors.js';

/**
 * The tier logic: what a tenant's plan (with its overrides) allows. Every check in Strata that
 * depends on the plan calls into this file, so the rules live in one place.
 */
export interface Entitlements {
  plan: Plan;
  quotas: Record<QuotaName, number | null>;
  features: Record<FeatureName, boolean>;
}

export class PlanCatalog {
  readonly #byId: Map<string, Plan>;
  constructor(readonly plans: Plan[]) {
    this.#byId = new Map(plans.map((p) => [p.id, p]));
  }

  get(id: string): Plan | undefined {
    return this.#byId.get(id);
  }

  require(id: string): Plan {
    const plan = this.#byId.get(id);
    if (!plan) {
      throw new AppError('unknown_plan', `There is no plan "${id}"`, { available: this.plans.map((p) => p.id) });
    }
    return plan;
  }

  entitlements(planId: string, overrides: PlanOverrides = {}): Entitlements {
    const plan = this.require(planId);
    return {
      plan,
      quotas: { ...plan.quotas, ...(overrides.quotas ?? {}) } as Entitlements['quotas'],
      features: { ...plan.features, ...(overrides.features ?? {}) } as Entitlements['features'],
    };
  }

  /** The entitlements of the tenant in the transaction's context (its plan with its overrides). */
  async forTenant(tx: Queryable, tenantId: string): Promise<Entitlements> {
    const { rows } = await tx.query<{ plan_id: string; plan_overrides: PlanOverrides }>(
      'SELECT plan_id, plan_overrides FROM strata.tenants WHERE id = $1',
      [tenantId],
    );
    const row = rows[0];
    if (!row) throw errors.notFound('tenant');
    return this.entitlements(row.plan_id, row.plan_overrides);
  }

  /** The cheapest self-serve-or-not plan with the feature, to name in a plan_required error. */
  cheapestWithFeature(feature: FeatureName): Plan | undefined {
    return this.plans.find((p) => p.features[feature]);
  }

  cheapestAllowing(quota: QuotaName, amount: number): Plan | undefined {
    return this.plans.find((p) => p.quotas[quota] === null || (p.quotas[quota] as number) >= amount);
  }

  /** Throws 403 plan_required, naming the plan that would allow the feature. */
  requireFeature(ent: Entitlements, feature: FeatureName): void {
    if (ent.features[feature]) return;
    const upgrade = this.cheapestWithFeature(feature);
    throw new AppError(
      'plan_required',
      `The ${ent.plan.name} plan does not include ${feature}${upgrade ? `; the ${upgrade.name} plan does` : ''}`,
      { feature, current_plan: ent.plan.id, required_plan: upgrade?.id ?? null },
    );
  }

  /** Throws 403 quota_exceeded when `usage + adding` would pass the limit; names the limit, usage and a plan that allows it. */
  requireQuota(ent: Entitlements, quota: QuotaName, usage: number, adding = 1): void {
    const limit = ent.quotas[quota];
    if (limit === null || usage + adding <= limit) return;
    const upgrade = this.cheapestAllowing(quota, usage + adding);
    throw new AppError(
      'quota_exceeded',
      `The ${ent.plan.name} plan allows ${limit} ${quota.replaceAll('_', ' ')}; the tenant has ${usage}`,
      { limit: quota, limit_value: limit, usage, current_plan: ent.plan.id, required_plan: upgrade?.id ?? null },
    );
  }
}
