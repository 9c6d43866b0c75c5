import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Platform } from '../../platform/context.js';
import { responses, TenantParams } from '../../platform/http/schema.js';
import type { TenantAccess } from '../auth/credentials.js';
import { requireAccess } from '../auth/plugin.js';
import { ByodConfig, testByodConnection, validateByodConfig } from './byod-check.js';

const tags = ['placement'];
const security = [{ bearer: [] }];

export const PLACEMENT_KINDS = ['shared', 'dedicated', 'byod'] as const;
export type PlacementKind = (typeof PLACEMENT_KINDS)[number];

const FEATURE_OF = { dedicated: 'dedicated_datastore', byod: 'byod_datastore' } as const;

const Kind = Type.Union(PLACEMENT_KINDS.map((k) => Type.Literal(k)));
const DatastoreOptions = Type.Object({
  current: Type.Object({
    kind: Kind,
    region: Type.String(),
    datastore: Type.String({ description: 'Which datastore: shared:<region> for a shared one' }),
  }),
  options: Type.Array(
    Type.Object({
      kind: Kind,
      allowed: Type.Boolean({ description: "Whether the tenant's plan (with its overrides) includes it" }),
      required_plan: Type.Union([Type.String(), Type.Null()], {
        description: 'The cheapest plan that includes it, when the current plan does not',
      }),
      available: Type.Boolean({ description: 'Whether this deployment offers it today' }),
      detail: Type.String(),
    }),
  ),
  regions: Type.Object({ current: Type.String(), allowed: Type.Array(Type.String()) }),
});

/** What the tenant's plan allows for where its data lives, and where it lives now. */
export async function datastoreOptions(platform: Platform, access: TenantAccess) {
  const ent = platform.plans.entitlements(access.plan.id, access.plan.overrides);
  const region = await platform.router.regionOf(access.tenantId);
  const allowedRegions = await platform.router.allowedRegionsOf(access.tenantId);
  const options = PLACEMENT_KINDS.map((kind) => {
    const allowed = kind === 'shared' || ent.features[FEATURE_OF[kind]];
    const required = allowed ? undefined : platform.plans.cheapestWithFeature(FEATURE_OF[kind as 'dedicated' | 'byod']);
    const available = kind === 'shared';
    return {
      kind,
      allowed,
      required_plan: required?.id ?? null,
      available,
      detail:
        kind === 'shared'
          ? `Shared datastore of region ${region}, isolated by row-level security`
          : kind === 'dedicated'
            ? "A database of its own on the operator's servers; moves into it are not offered by this version yet"
            : "The tenant's own PostgreSQL; connections can be tested (POST .../datastore/test), moves are not offered by this version yet",
    };
  });
  return {
    current: { kind: 'shared' as const, region, datastore: `shared:${region}` },
    options,
    regions: { current: region, allowed: allowedRegions },
  };
}

const ByodStepSchema = Type.Object({
  step: Type.String(),
  ok: Type.Boolean(),
  required: Type.Boolean(),
  detail: Type.String(),
  ms: Type.Number(),
});
const ByodReportSchema = Type.Object({
  ok: Type.Boolean({ description: 'Whether every required step passed' }),
  steps: Type.Array(ByodStepSchema),
  server_version: Type.Union([Type.String(), Type.Null()]),
  pgvector: Type.Union([Type.Boolean(), Type.Null()]),
  latency_ms: Type.Union([Type.Number(), Type.Null()]),
  warnings: Type.Array(Type.String()),
});

/** The operator's own datastores, which a tenant may never name as its own database. */
export function operatorDatastoreUrls(platform: Platform): string[] {
  const urls = Object.values(platform.config.sharedDatastores).filter((u) => !u.startsWith('pglite:'));
  return platform.config.databaseUrl ? [platform.config.databaseUrl, ...urls] : urls;
}

export function placementRoutes(app: FastifyInstance, platform: Platform): void {
  app.post<{ Params: { tenantId: string }; Body: ByodConfig }>(
    '/v1/tenants/:tenantId/datastore/test',
    {
      config: { permission: 'tenant:update' },
      schema: {
        tags,
        security,
        summary: "Test a connection to the tenant's own PostgreSQL (bring your own database)",
        description:
          'The plan check comes first (403 plan_required). Then the configuration is validated (400 naming each ' +
          "problem; the operator's own datastores are refused) and each step is reported: reachable, authenticated, " +
          'version, create_privilege, pgvector, latency. Nothing is stored and the password never appears in the answer.',
        params: TenantParams,
        body: ByodConfig,
        response: responses({ 200: ByodReportSchema }),
      },
    },
    async (request) => {
      const access = requireAccess(request);
      platform.plans.requireFeature(
        platform.plans.entitlements(access.plan.id, access.plan.overrides),
        'byod_datastore',
      );
      const urls = operatorDatastoreUrls(platform);
      const valid = validateByodConfig(request.body, { operatorDatastoreUrls: urls });
      return testByodConnection(valid, { operatorDatastoreUrls: urls });
    },
  );

  app.get<{ Params: { tenantId: string } }>(
    '/v1/tenants/:tenantId/datastore-options',
    {
      config: { permission: 'tenant:read' },
      schema: {
        tags,
        security,
        summary: "Where the tenant's data may live under its plan, and where it lives now",
        params: TenantParams,
        response: responses({ 200: DatastoreOptions }),
      },
    },
    async (request) => datastoreOptions(platform, requireAccess(request)),
  );
}
