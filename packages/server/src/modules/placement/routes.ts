import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Platform } from '../../platform/context.js';
import { withSystem, withTenant } from '../../platform/db/tenant-context.js';
import { AppError } from '../../platform/errors.js';
import { responses, TenantParams } from '../../platform/http/schema.js';
import { newId } from '../../platform/ids.js';
import type { TenantAccess } from '../auth/credentials.js';
import { requireAccess } from '../auth/plugin.js';
import { ByodConfig, redactUrl, testByodConnection, type ValidByodConfig, validateByodConfig } from './byod-check.js';
import type { MoveService } from './move.js';
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
    datastore: Type.String({ description: 'Which datastore: shared:<region>, or byod:<id>' }),
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
    const available = kind !== 'dedicated';
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
            : "The tenant's own PostgreSQL: test it (POST .../datastore/test), choose it (PUT .../datastore) while the tenant has no data",
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

/** The operator's own datastores, which a tenant may never name as its own database. */
export function operatorDatastoreUrls(platform: Platform): string[] {
  const urls = Object.values(platform.config.sharedDatastores).filter((u) => !u.startsWith('pglite:'));
  return platform.config.databaseUrl ? [platform.config.databaseUrl, ...urls] : urls;
}

/** The tenant has data where it is now (any collection): changing placement then needs a move. */
async function hasData(platform: Platform, tenantId: string): Promise<boolean> {
  const db = await platform.router.forTenant(tenantId);
  const r = await withTenant(db, tenantId, (tx) => tx.query('SELECT 1 FROM strata_data.collections LIMIT 1'));
  return r.rows.length > 0;
}

type Choice = { kind: 'shared' } | { kind: 'byod'; config: ByodConfig };

/**
 * Chooses where the tenant's data lives. The plan check comes first, then (for BYOD) validation and the
 * connection test; the target is brought to the tenant migrations before the tenant is pointed at it.
 * This version changes the placement only of a tenant without data (at onboarding); live moves of a
 * tenant with data come with the move machinery.
 */
async function choosePlacement(platform: Platform, access: TenantAccess, choice: Choice) {
  const { tenantId } = access;
  const ent = platform.plans.entitlements(access.plan.id, access.plan.overrides);
  if (choice.kind === 'byod') platform.plans.requireFeature(ent, 'byod_datastore');
  const current = await platform.router.placementOf(tenantId);
  if (choice.kind === 'shared' && !current.datastoreId) return datastoreOptions(platform, access);
  let valid: ValidByodConfig | undefined;
  if (choice.kind === 'byod') {
    const urls = operatorDatastoreUrls(platform);
    valid = validateByodConfig(choice.config, { operatorDatastoreUrls: urls });
    const report = await testByodConnection(valid, { operatorDatastoreUrls: urls });
    if (!report.ok) {
      throw new AppError('datastore_test_failed', 'The database failed a required step of the connection test', {
        report,
      });
    }
  }
  if (await hasData(platform, tenantId)) {
    throw new AppError(
      'move_required',
      'The tenant already has collections where it is; this version changes placement only for a tenant without data',
      { current: current.kind },
    );
  }
  const previous = current.datastoreId;
  if (valid) {
    const id = newId();
    const sealed = platform.keyring.encrypt(JSON.stringify(valid), `datastore:${id}`);
    await withSystem(platform.db, (tx) =>
      tx.query(
        `INSERT INTO strata.datastores (id, kind, owner_tenant, region, config_ciphertext, display_url)
         VALUES ($1, 'byod', $2, $3, $4, $5)`,
        [id, tenantId, current.region, sealed, redactUrl(valid.url)],
      ),
    );
    try {
      await platform.router.forDatastore(id); // migrated before any request is routed there
    } catch (err) {
      await withSystem(platform.db, (tx) => tx.query('DELETE FROM strata.datastores WHERE id = $1', [id]));
      throw err;
    }
    await setDatastore(platform, tenantId, id);
  } else {
    await setDatastore(platform, tenantId, null);
  }
  if (previous) {
    await platform.router.release(previous);
    await withSystem(platform.db, (tx) => tx.query('DELETE FROM strata.datastores WHERE id = $1', [previous]));
  }
  platform.log.info({ type: 'placement.changed', tenant_id: tenantId, kind: choice.kind }, 'placement changed');
  return datastoreOptions(platform, access);
}

async function setDatastore(platform: Platform, tenantId: string, id: string | null) {
  await withSystem(platform.db, (tx) =>
    tx.query('UPDATE strata.tenants SET datastore_id = $2, updated_at = now() WHERE id = $1', [tenantId, id]),
  );
  platform.router.invalidate(tenantId);
}

const MoveStatusSchema = Type.Object({
  id: Type.String(),
  tenant_id: Type.String(),
  source_region: Type.String(),
  target_region: Type.String(),
  phase: Type.Union(['copying', 'fenced', 'switched', 'finished', 'failed'].map((p) => Type.Literal(p))),
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

export function moveRoutes(app: FastifyInstance, moves: MoveService): void {
  app.post<{ Params: { tenantId: string }; Body: { region: string } }>(
    '/v1/tenants/:tenantId/moves',
    {
      config: { permission: 'tenant:update', operator: true },
      schema: {
        tags,
        security,
        summary: "Move the tenant's data, live, to the shared datastore of a region",
        description:
          'Starts the move and answers at once (202); follow it with GET .../moves/{moveId}. The tenant keeps working; ' +
          'writes wait briefly at the switch (or get 503 with Retry-After). The source copy stays until .../finish.',
        params: TenantParams,
        body: Type.Object({ region: Type.String({ pattern: '^[a-z0-9-]{1,32}$' }) }, { additionalProperties: false }),
        response: responses({ 202: MoveStatusSchema }),
      },
    },
    async (request, reply) => reply.status(202).send(await moves.start(request.params.tenantId, request.body.region)),
  );
  app.get<{ Params: { tenantId: string; moveId: string } }>(
    '/v1/tenants/:tenantId/moves/:moveId',
    {
      config: { permission: 'tenant:read', operator: true },
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
      config: { permission: 'tenant:update', operator: true },
      schema: {
        tags,
        security,
        summary: 'Drop the source copy of a switched move',
        params: MoveParams,
        response: responses({ 200: MoveStatusSchema }),
      },
    },
    async (request) => moves.finish(request.params.tenantId, request.params.moveId),
  );
}

export function placementRoutes(app: FastifyInstance, platform: Platform): void {
  app.put<{ Params: { tenantId: string }; Body: Choice }>(
    '/v1/tenants/:tenantId/datastore',
    {
      config: { permission: 'tenant:update' },
      schema: {
        tags,
        security,
        summary: "Choose where the tenant's data lives",
        description:
          '`{"kind": "byod", "config": {...}}` or `{"kind": "shared"}`. The plan check comes first (403 plan_required), ' +
          'then validation and the connection test (422 datastore_test_failed with the report). This version changes ' +
          'the placement only of a tenant without data (409 move_required otherwise). The credentials are stored ' +
          'envelope-encrypted and never returned.',
        params: TenantParams,
        body: Type.Union([
          Type.Object({ kind: Type.Literal('shared') }, { additionalProperties: false }),
          Type.Object({ kind: Type.Literal('byod'), config: ByodConfig }, { additionalProperties: false }),
        ]),
        response: responses({ 200: DatastoreOptions }),
      },
    },
    async (request) => choosePlacement(platform, requireAccess(request), request.body),
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
