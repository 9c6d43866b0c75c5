import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Platform } from '../../platform/context.js';
import { AppError } from '../../platform/errors.js';
import { responses, TenantParams } from '../../platform/http/schema.js';
import type { TenantAccess } from '../auth/credentials.js';
import { requireAccess } from '../auth/plugin.js';
import { ByodConfig, testByodConnection, type ValidByodConfig, validateByodConfig } from './byod-check.js';
import type { MoveService, MoveTarget } from './move.js';
import { PLACEMENT_FEATURE } from './router.js';

const tags = ['placement'];
const security = [{ bearer: [] }];

export const PLACEMENT_KINDS = ['shared', 'dedicated', 'byod'] as const;
export type PlacementKind = (typeof PLACEMENT_KINDS)[number];

const Kind = Type.Union(PLACEMENT_KINDS.map((k) => Type.Literal(k)));
const DatastoreOptions = Type.Object({
  current: Type.Object({
    kind: Kind,
    region: Type.String(),
    datastore: Type.String({ description: 'Which datastore: shared:<region>, dedicated:<id> or byod:<id>' }),
    url: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'Its URL, password hidden' })),
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
    const allowed = kind === 'shared' || ent.features[PLACEMENT_FEATURE[kind]];
    const required = allowed
      ? undefined
      : platform.plans.cheapestWithFeature(PLACEMENT_FEATURE[kind as 'dedicated' | 'byod']);
    const available = kind !== 'dedicated' || region in platform.config.dedicatedPools;
    return {
      kind,
      allowed,
      required_plan: required?.id ?? null,
      available,
      detail:
        kind === 'shared'
          ? `Shared datastore of region ${region}, isolated by row-level security`
          : kind === 'dedicated'
            ? available
              ? `A database of its own, created on the operator's servers in region ${region}`
              : `Region ${region} offers no dedicated databases`
            : "The tenant's own PostgreSQL: test it (POST .../datastore/test), then choose it (PUT .../datastore)",
    };
  });
  const placement = await platform.router.placementOf(access.tenantId);
  return {
    current: placement.datastoreId
      ? {
          kind: placement.kind,
          region,
          datastore: `${placement.kind}:${placement.datastoreId}`,
          url: placement.displayUrl,
        }
      : { kind: 'shared' as const, region, datastore: `shared:${region}` },
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

/** The operator's own datastores and buckets, which a tenant may never name as its own. */
export function operatorStores(platform: Platform) {
  const pools = Object.values(platform.config.dedicatedPools);
  const urls = [...Object.values(platform.config.sharedDatastores), ...pools].filter((u) => !u.startsWith('pglite:'));
  return {
    operatorDatastoreUrls: platform.config.databaseUrl ? [platform.config.databaseUrl, ...urls] : urls,
    operatorObjectStoreUrls: Object.values(platform.config.objectStores),
  };
}

/** The tenant has data where it is now (any collection): changing placement then takes a live move. */
async function hasData(platform: Platform, tenantId: string): Promise<boolean> {
  const r = await platform.router.withTenant(tenantId, (tx) =>
    tx.query('SELECT 1 FROM strata_data.collections LIMIT 1'),
  );
  return r.rows.length > 0;
}

type Choice = { kind: 'shared' } | { kind: 'dedicated' } | { kind: 'byod'; config: ByodConfig };

/** Validates a BYOD configuration and runs the connection test; 422 with the report when a required step fails. */
async function testedByod(platform: Platform, config: ByodConfig): Promise<ValidByodConfig> {
  const own = operatorStores(platform);
  const valid = validateByodConfig(config, own);
  const report = await testByodConnection(valid, own);
  if (!report.ok) {
    throw new AppError('datastore_test_failed', 'The database failed a required step of the connection test', {
      report,
    });
  }
  return valid;
}

/** The plan check for a placement: 403 plan_required naming the cheapest plan that has it. */
function requirePlacement(platform: Platform, access: TenantAccess, kind: PlacementKind): void {
  if (kind === 'shared') return;
  platform.plans.requireFeature(
    platform.plans.entitlements(access.plan.id, access.plan.overrides),
    PLACEMENT_FEATURE[kind],
  );
}

/** A move target from a request: the plan check, the region (default: where the data is), BYOD tested. */
export async function moveTarget(
  platform: Platform,
  access: TenantAccess,
  choice: Choice & { region?: string },
): Promise<MoveTarget> {
  requirePlacement(platform, access, choice.kind);
  const region = choice.region ?? (await platform.router.regionOf(access.tenantId));
  if (choice.kind === 'byod') return { kind: 'byod', region, config: await testedByod(platform, choice.config) };
  return { kind: choice.kind, region };
}

/**
 * Chooses where the tenant's data lives, in its current region. The plan check comes first, then (for
 * BYOD) validation and the connection test. The change is always a move (so writes racing with it are
 * fenced, never lost): a tenant without data is switched before the answer (200, and the empty source
 * is dropped at once); a tenant with data gets 202 and the move's status to follow.
 */
async function choosePlacement(
  platform: Platform,
  moves: MoveService,
  access: TenantAccess,
  choice: Choice,
): Promise<{ status: 200 | 202; body: unknown }> {
  const { tenantId } = access;
  const target = await moveTarget(platform, access, choice);
  const current = await platform.router.placementOf(tenantId);
  if (current.kind === choice.kind && choice.kind !== 'byod') {
    return { status: 200, body: await datastoreOptions(platform, access) };
  }
  const empty = !(await hasData(platform, tenantId));
  const move = await moves.start(tenantId, target);
  platform.log.info(
    { type: 'placement.changing', tenant_id: tenantId, kind: choice.kind, move_id: move.id },
    'placement change started',
  );
  if (!empty) return { status: 202, body: move };
  await moves.settled(move.id);
  const done = await moves.get(tenantId, move.id);
  if (done.phase !== 'switched') {
    throw new AppError('unavailable', `The placement could not be changed: ${done.error ?? done.phase}`);
  }
  await moves.finish(tenantId, move.id);
  return { status: 200, body: await datastoreOptions(platform, access) };
}

export const MoveStatusSchema = Type.Object({
  id: Type.String(),
  tenant_id: Type.String(),
  source_region: Type.String(),
  source_kind: Kind,
  target_region: Type.String(),
  target_kind: Kind,
  phase: Type.Union(['copying', 'fenced', 'switched', 'finished', 'failed', 'rolled_back'].map((p) => Type.Literal(p))),
  rolls_back: Type.Union([Type.String(), Type.Null()], { description: 'The move this one rolls back, if any' }),
  documents_total: Type.Integer(),
  documents_copied: Type.Integer(),
  rate_per_second: Type.Union([Type.Number(), Type.Null()]),
  eta_seconds: Type.Union([Type.Number(), Type.Null()]),
  pause_ms: Type.Union([Type.Integer(), Type.Null()], { description: 'How long writes were held at the switch' }),
  error: Type.Union([Type.String(), Type.Null()]),
  started_at: Type.String({ format: 'date-time' }),
  switched_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  finished_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
const MoveParams = Type.Composite([TenantParams, Type.Object({ moveId: Type.String({ format: 'uuid' }) })]);

const ChoiceSchema = Type.Union([
  Type.Object({ kind: Type.Literal('shared') }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('dedicated') }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('byod'), config: ByodConfig }, { additionalProperties: false }),
]);
const Region = Type.String({ pattern: '^[a-z0-9-]{1,32}$' });
export const MoveBody = Type.Union([
  Type.Object({ region: Region, kind: Type.Optional(Type.Literal('shared')) }, { additionalProperties: false }),
  Type.Object(
    { kind: Type.Union([Type.Literal('shared'), Type.Literal('dedicated')]), region: Type.Optional(Region) },
    { additionalProperties: false },
  ),
  Type.Object(
    { kind: Type.Literal('byod'), config: ByodConfig, region: Type.Optional(Region) },
    { additionalProperties: false },
  ),
]);
export type MoveRequest = Choice & { region?: string };

export function moveRoutes(app: FastifyInstance, platform: Platform, moves: MoveService): void {
  app.post<{ Params: { tenantId: string }; Body: MoveRequest }>(
    '/v1/tenants/:tenantId/moves',
    {
      config: { permission: 'tenant:update', operator: true },
      schema: {
        tags,
        security,
        summary: "Move the tenant's data, live, to another placement or region",
        description:
          '`{"region": "eu"}` moves to the shared datastore of a region; `{"kind": "dedicated"}` to a database of its ' +
          'own (created now); `{"kind": "byod", "config": {...}}` to its own PostgreSQL (tested first). `region` ' +
          "defaults to where the data is. The tenant's plan must include the placement (403 plan_required). Answers " +
          'at once (202); follow it with GET .../moves/{moveId}. The tenant keeps working; writes wait briefly at the ' +
          'switch (or get 503 with Retry-After). The source copy stays until .../finish or the grace period.',
        params: TenantParams,
        body: MoveBody,
        response: responses({ 202: MoveStatusSchema }),
      },
    },
    async (request, reply) => {
      const access = requireAccess(request);
      const body = request.body;
      const target = await moveTarget(platform, access, { ...body, kind: body.kind ?? 'shared' } as MoveRequest);
      return reply.status(202).send(await moves.start(access.tenantId, target));
    },
  );
  app.get<{ Params: { tenantId: string } }>(
    '/v1/tenants/:tenantId/moves',
    {
      config: { permission: 'tenant:read' },
      schema: {
        tags,
        security,
        summary: "The tenant's moves, newest first",
        params: TenantParams,
        response: responses({ 200: Type.Object({ data: Type.Array(MoveStatusSchema) }) }),
      },
    },
    async (request) => ({ data: await moves.list(request.params.tenantId) }),
  );
  app.get<{ Params: { tenantId: string; moveId: string } }>(
    '/v1/tenants/:tenantId/moves/:moveId',
    {
      config: { permission: 'tenant:read' },
      schema: {
        tags,
        security,
        summary: 'Progress of a move: phase, documents copied, rate, time left, write pause',
        params: MoveParams,
        response: responses({ 200: MoveStatusSchema }),
      },
    },
    async (request) => moves.get(request.params.tenantId, request.params.moveId),
  );
  app.post<{ Params: { tenantId: string; moveId: string } }>(
    '/v1/tenants/:tenantId/moves/:moveId/finish',
    {
      config: { permission: 'tenant:update' },
      schema: {
        tags,
        security,
        summary: 'Confirm a switched move: drop the source copy now instead of after the grace period',
        params: MoveParams,
        response: responses({ 200: MoveStatusSchema }),
      },
    },
    async (request) => moves.finish(request.params.tenantId, request.params.moveId),
  );
  app.post<{ Params: { tenantId: string; moveId: string } }>(
    '/v1/tenants/:tenantId/moves/:moveId/rollback',
    {
      config: { permission: 'tenant:update' },
      schema: {
        tags,
        security,
        summary: 'Roll a switched move back: move the tenant live to where it was, while that copy is kept',
        description:
          'Starts a move back to the source placement (the same datastore, refreshed with everything written ' +
          'since; 202, follow it like any move). When it switches, the rolled-back move becomes rolled_back. Only ' +
          'a switched move can be rolled back: once finished, its source copy is gone.',
        params: MoveParams,
        response: responses({ 202: MoveStatusSchema }),
      },
    },
    async (request, reply) =>
      reply.status(202).send(await moves.rollback(request.params.tenantId, request.params.moveId)),
  );
}

export function placementRoutes(app: FastifyInstance, platform: Platform, moves: MoveService): void {
  app.put<{ Params: { tenantId: string }; Body: Choice }>(
    '/v1/tenants/:tenantId/datastore',
    {
      config: { permission: 'tenant:update' },
      schema: {
        tags,
        security,
        summary: "Choose where the tenant's data lives",
        description:
          '`{"kind": "shared"}`, `{"kind": "dedicated"}` or `{"kind": "byod", "config": {...}}`, in the current ' +
          'region. The plan check comes first (403 plan_required), then validation and the connection test (422 ' +
          'datastore_test_failed with the report). A tenant without data is switched at once (200, the options); a ' +
          'tenant with data is moved live (202, the move to follow at .../moves/{moveId}). The credentials are ' +
          'stored envelope-encrypted and never returned.',
        params: TenantParams,
        body: ChoiceSchema,
        response: responses({ 200: DatastoreOptions, 202: MoveStatusSchema }),
      },
    },
    async (request, reply) => {
      const { status, body } = await choosePlacement(platform, moves, requireAccess(request), request.body);
      return reply.status(status).send(body);
    },
  );

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
      const own = operatorStores(platform);
      return testByodConnection(validateByodConfig(request.body, own), own);
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
