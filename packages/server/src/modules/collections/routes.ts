import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { NoContent, responses, TenantParams } from '../../platform/http/schema.js';
import type { CollectionService } from './service.js';

const tags = ['collections'];
const security = [{ bearer: [] }];
const Name = Type.String({ pattern: '^[a-z][a-z0-9_]{0,62}$', description: 'lower-case letters, digits and _' });
const JsonSchema = Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], {
  description: 'A JSON Schema the documents must match, or null for none',
});
const Collection = Type.Object({
  name: Type.String(),
  json_schema: JsonSchema,
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
});
const CollectionParams = Type.Composite([TenantParams, Type.Object({ collection: Name })]);
const CreateCollection = Type.Object(
  { name: Name, json_schema: Type.Optional(JsonSchema) },
  { additionalProperties: false },
);
const UpdateCollection = Type.Object({ json_schema: JsonSchema }, { additionalProperties: false });
type P = { tenantId: string; collection: string };

export function collectionRoutes(app: FastifyInstance, collections: CollectionService): void {
  app.post<{ Params: { tenantId: string }; Body: { name: string; json_schema?: object | null } }>(
    '/v1/tenants/:tenantId/collections',
    {
      config: { permission: 'data:write' },
      schema: {
        tags,
        security,
        summary: 'Create a collection',
        params: TenantParams,
        body: CreateCollection,
        response: responses({ 201: Collection }),
      },
    },
    async (request, reply) => reply.status(201).send(await collections.create(request.params.tenantId, request.body)),
  );
  app.get<{ Params: { tenantId: string } }>(
    '/v1/tenants/:tenantId/collections',
    {
      config: { permission: 'data:read' },
      schema: {
        tags,
        security,
        summary: 'List collections',
        params: TenantParams,
        response: responses({ 200: Type.Object({ data: Type.Array(Collection) }) }),
      },
    },
    async (request) => collections.list(request.params.tenantId),
  );
  app.get<{ Params: P }>(
    '/v1/tenants/:tenantId/collections/:collection',
    {
      config: { permission: 'data:read' },
      schema: {
        tags,
        security,
        summary: 'Read a collection',
        params: CollectionParams,
        response: responses({ 200: Collection }),
      },
    },
    async (request) => collections.get(request.params.tenantId, request.params.collection),
  );
  app.patch<{ Params: P; Body: { json_schema: object | null } }>(
    '/v1/tenants/:tenantId/collections/:collection',
    {
      config: { permission: 'data:write' },
      schema: {
        tags,
        security,
        summary: "Change a collection's JSON Schema",
        params: CollectionParams,
        body: UpdateCollection,
        response: responses({ 200: Collection }),
      },
    },
    async (request) => collections.update(request.params.tenantId, request.params.collection, request.body),
  );
  app.delete<{ Params: P }>(
    '/v1/tenants/:tenantId/collections/:collection',
    {
      config: { permission: 'data:write' },
      schema: {
        tags,
        security,
        summary: 'Delete a collection',
        params: CollectionParams,
        response: responses({ 204: NoContent }),
      },
    },
    async (request, reply) => {
      await collections.remove(request.params.tenantId, request.params.collection);
      return reply.status(204).send();
    },
  );
}
