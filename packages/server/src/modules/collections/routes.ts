import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { NoContent, responses, TenantParams } from '../../platform/http/schema.js';
import { requireAccess } from '../auth/plugin.js';
import { INDEX_PATH_PATTERN } from './indexes.js';
import type { CollectionInput, CollectionService } from './service.js';

const tags = ['collections'];
const security = [{ bearer: [] }];
const Name = Type.String({ pattern: '^[a-z][a-z0-9_]{0,62}$', description: 'lower-case letters, digits and _' });
const JsonSchema = Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], {
  description: 'A JSON Schema the documents must match, or null for none',
});
const Vector = Type.Object(
  {
    field: Type.String({
      pattern: '^[A-Za-z0-9_]{1,63}(\\.[A-Za-z0-9_]{1,63}){0,7}$',
      description: 'Path of the embedding in data',
    }),
    dimensions: Type.Integer({ minimum: 1, maximum: 2000 }),
    metric: Type.Optional(
      Type.Union([Type.Literal('cosine'), Type.Literal('l2'), Type.Literal('inner_product')], {
        description: 'The metric the index is built for (default cosine); searches may use any',
      }),
    ),
  },
  { additionalProperties: false },
);
const VectorOrNull = Type.Union([Vector, Type.Null()], { description: 'The embedding field, or null for none' });
const Index = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z][a-z0-9_]{0,62}$' }),
    path: Type.String({ pattern: INDEX_PATH_PATTERN, description: 'Dotted path into data, e.g. address.city' }),
  },
  { additionalProperties: false },
);
const Collection = Type.Object({
  name: Type.String(),
  json_schema: JsonSchema,
  vector: VectorOrNull,
  indexes: Type.Array(Index),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
});
const CollectionParams = Type.Composite([TenantParams, Type.Object({ collection: Name })]);
const CreateCollection = Type.Object(
  { name: Name, json_schema: Type.Optional(JsonSchema), vector: Type.Optional(VectorOrNull) },
  { additionalProperties: false },
);
const UpdateCollection = Type.Object(
  { json_schema: Type.Optional(JsonSchema), vector: Type.Optional(VectorOrNull) },
  { additionalProperties: false, minProperties: 1 },
);
const IndexParams = Type.Composite([CollectionParams, Type.Object({ index: Name })]);
type P = { tenantId: string; collection: string };

export function collectionRoutes(app: FastifyInstance, collections: CollectionService): void {
  app.post<{ Params: { tenantId: string }; Body: CollectionInput }>(
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
    async (request, reply) => reply.status(201).send(await collections.create(requireAccess(request), request.body)),
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
  app.patch<{ Params: P; Body: Omit<CollectionInput, 'name'> }>(
    '/v1/tenants/:tenantId/collections/:collection',
    {
      config: { permission: 'data:write' },
      schema: {
        tags,
        security,
        summary: "Change a collection's JSON Schema or vector field",
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

  app.post<{ Params: P; Body: { name: string; path: string } }>(
    '/v1/tenants/:tenantId/collections/:collection/indexes',
    {
      config: { permission: 'data:write' },
      schema: {
        tags,
        security,
        summary: 'Declare an index on a JSON path',
        description: 'Built concurrently before the response; filters on the path (eq, in, gt...) can then use it.',
        params: CollectionParams,
        body: Index,
        response: responses({ 201: Collection }),
      },
    },
    async (request, reply) =>
      reply
        .status(201)
        .send(await collections.createIndex(request.params.tenantId, request.params.collection, request.body)),
  );
  app.delete<{ Params: P & { index: string } }>(
    '/v1/tenants/:tenantId/collections/:collection/indexes/:index',
    {
      config: { permission: 'data:write' },
      schema: {
        tags,
        security,
        summary: 'Drop an index',
        params: IndexParams,
        response: responses({ 204: NoContent }),
      },
    },
    async (request, reply) => {
      const { tenantId, collection, index } = request.params;
      await collections.dropIndex(tenantId, collection, index);
      return reply.status(204).send();
    },
  );
}
