import { Type } from '@sinclair/typebox';
import { Features, PlanList, Quotas } from '@strata/contract';
import type { FastifyInstance } from 'fastify';
import type { Platform } from '../../platform/context.js';
import { withTenant } from '../../platform/db/tenant-context.js';
import { responses, TenantParams } from '../../platform/http/schema.js';

const Entitlements = Type.Object({ plan: Type.String(), quotas: Quotas, features: Features });
const tags = ['plans'];
const security = [{ bearer: [] }];

export function planRoutes(app: FastifyInstance, platform: Platform): void {
  app.get(
    '/v1/plans',
    { schema: { tags, security, summary: 'List the plans', response: responses({ 200: PlanList }) } },
    async () => ({ data: platform.plans.plans }),
  );

  app.get<{ Params: { tenantId: string } }>(
    '/v1/tenants/:tenantId/entitlements',
    {
      config: { permission: 'tenant:read' },
      schema: {
        tags,
        security,
        summary: "The tenant's effective quotas and features (its plan with overrides applied)",
        params: TenantParams,
        response: responses({ 200: Entitlements }),
      },
    },
    async (request) => {
      const { tenantId } = request.params;
      const ent = await withTenant(platform.db, tenantId, (tx) => platform.plans.forTenant(tx, tenantId));
      return { plan: ent.plan.id, quotas: ent.quotas, features: ent.features };
    },
  );
}
