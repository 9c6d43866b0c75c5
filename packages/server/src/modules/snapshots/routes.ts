import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Platform } from '../../platform/context.js';
import { responses, TenantParams } from '../../platform/http/schema.js';
import { requireAccess } from '../auth/plugin.js';
import { MoveBody, type MoveRequest, MoveStatusSchema, moveTarget } from '../placement/routes.js';
import type { SnapshotService } from './service.js';

const tags = ['snapshots'];
const security = [{ bearer: [] }];

const SnapshotSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  tenant_id: Type.String({ format: 'uuid' }),
  status: Type.Union([Type.Literal('running'), Type.Literal('complete'), Type.Literal('failed')]),
  region: Type.String({ description: "The region whose object store holds it (the tenant's when it was taken)" }),
  epoch: Type.Union([Type.Integer(), Type.Null()]),
  last_seq: Type.Union([Type.Integer(), Type.Null()], { description: 'The last change it includes' }),
  collections: Type.Integer(),
  documents: Type.Integer(),
  files: Type.Integer(),
  bytes: Type.Integer({ description: 'Stored size: the compressed rows and the copies of the files' }),
  content_checksum: Type.Union([Type.String(), Type.Null()], {
    description: 'md5 over every collection, document and file; a restore must reproduce it',
  }),
  error: Type.Union([Type.String(), Type.Null()]),
  created_at: Type.String({ format: 'date-time' }),
  completed_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
const RestoreResultSchema = Type.Object({
  snapshot_id: Type.String({ format: 'uuid' }),
  epoch: Type.Integer({ description: 'The new epoch: sync clients start over' }),
  collections: Type.Integer(),
  documents: Type.Integer(),
  files: Type.Integer(),
  content_checksum: Type.String({ description: "The restored content's checksum, equal to the snapshot's" }),
  ms: Type.Integer({ description: "How long the tenant's writes were held" }),
});
const SnapshotParams = Type.Composite([TenantParams, Type.Object({ snapshotId: Type.String({ format: 'uuid' }) })]);
type Params = { tenantId: string; snapshotId: string };

export function snapshotRoutes(app: FastifyInstance, platform: Platform, snapshots: SnapshotService): void {
  app.post<{ Params: { tenantId: string } }>(
    '/v1/tenants/:tenantId/snapshots',
    {
      config: { permission: 'tenant:update' },
      schema: {
        tags,
        security,
        summary: "Take a consistent snapshot of the tenant's data and files",
        description:
          'Answers at once (202); the snapshot is taken in the background from one consistent view of the data ' +
          "while the tenant keeps working, and kept in the object store of the tenant's region. Follow it with " +
          'GET .../snapshots/{snapshotId}.',
        params: TenantParams,
        response: responses({ 202: SnapshotSchema }),
      },
    },
    async (request, reply) => reply.status(202).send(await snapshots.create(request.params.tenantId)),
  );
  app.get<{ Params: { tenantId: string } }>(
    '/v1/tenants/:tenantId/snapshots',
    {
      config: { permission: 'tenant:read' },
      schema: {
        tags,
        security,
        summary: "The tenant's snapshots, newest first",
        params: TenantParams,
        response: responses({ 200: Type.Object({ data: Type.Array(SnapshotSchema) }) }),
      },
    },
    async (request) => ({ data: await snapshots.list(request.params.tenantId) }),
  );
  app.get<{ Params: Params }>(
    '/v1/tenants/:tenantId/snapshots/:snapshotId',
    {
      config: { permission: 'tenant:read' },
      schema: {
        tags,
        security,
        summary: 'One snapshot: its state, what it holds, its checksum',
        params: SnapshotParams,
        response: responses({ 200: SnapshotSchema }),
      },
    },
    async (request) => snapshots.get(request.params.tenantId, request.params.snapshotId),
  );
  app.delete<{ Params: Params }>(
    '/v1/tenants/:tenantId/snapshots/:snapshotId',
    {
      config: { permission: 'tenant:update' },
      schema: {
        tags,
        security,
        summary: 'Delete a snapshot and everything it stored',
        params: SnapshotParams,
        response: responses({ 204: Type.Null() }),
      },
    },
    async (request, reply) => {
      await snapshots.delete(request.params.tenantId, request.params.snapshotId);
      return reply.status(204).send();
    },
  );
  app.post<{ Params: Params; Body: { placement?: MoveRequest } }>(
    '/v1/tenants/:tenantId/snapshots/:snapshotId/restore',
    {
      config: { permission: 'tenant:update' },
      schema: {
        tags,
        security,
        summary: 'Restore a snapshot, in place or into a new placement',
        description:
          "`{}` restores into the tenant's current placement: the tenant's writes are held while its data is " +
          "replaced by the snapshot's and checked against the snapshot's checksum (200; the change feed starts a " +
          'new epoch). `{"placement": {"kind": "dedicated"}}` (or a region, or BYOD) restores into a new placement ' +
          'as a live move whose copy comes from the snapshot (202, the move to follow); the plan must include it.',
        params: SnapshotParams,
        body: Type.Object({ placement: Type.Optional(MoveBody) }, { additionalProperties: false }),
        response: responses({ 200: RestoreResultSchema, 202: MoveStatusSchema }),
      },
    },
    async (request, reply) => {
      const access = requireAccess(request);
      const placement = request.body?.placement;
      const target = placement
        ? await moveTarget(platform, access, { ...placement, kind: placement.kind ?? 'shared' } as MoveRequest)
        : undefined;
      const result = await snapshots.restore(access.tenantId, request.params.snapshotId, target);
      return 'move' in result ? reply.status(202).send(result.move) : reply.status(200).send(result.restored);
    },
  );
}
