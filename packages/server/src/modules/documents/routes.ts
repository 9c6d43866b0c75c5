import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { AppError } from '../../platform/errors.js';
import { NoContent, responses, TenantParams } from '../../platform/http/schema.js';
import { requireAccess } from '../auth/plugin.js';
import { OPERATORS } from './query.js';
import type { BatchOperation, DocumentService, QueryInput, SearchInput } from './service.js';
import type { Document as Doc } from './write.js';

const tags = ['documents'];
const security = [{ bearer: [] }];

export const DOCUMENT_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$';
export const CollectionName = Type.String({ pattern: '^[a-z][a-z0-9_]{0,62}$' });
export const DocumentId = Type.String({
  pattern: DOCUMENT_ID_PATTERN,
  description: 'letters, digits and _ . : - (up to 128); server-chosen ids are UUIDv7',
});
const Data = Type.Object({}, { additionalProperties: true, description: 'The document itself (a JSON object)' });
export const DocumentSchema = Type.Object({
  id: Type.String(),
  collection: Type.String(),
  version: Type.Integer({ description: 'Starts at 1 and increases with every change; the ETag is "<version>"' }),
  deleted: Type.Boolean(),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
  data: Type.Union([Data, Type.Null()]),
});
export const CheckpointSchema = Type.Object({
  epoch: Type.Integer({ description: 'Changes when sequences may have been reset; a client on another epoch resyncs' }),
  seq: Type.Integer({ description: "The tenant's change sequence number" }),
});

const CollectionParams = Type.Composite([TenantParams, Type.Object({ collection: CollectionName })]);
const DocumentParams = Type.Composite([CollectionParams, Type.Object({ id: DocumentId })]);
const WriteHeaders = Type.Object({
  'if-match': Type.Optional(Type.String({ description: '"<version>" (compare-and-set) or * (must exist)' })),
});
const CreateHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ minLength: 1, maxLength: 255, description: 'A retry with the same key returns the first response' }),
  ),
});
const QueryBody = Type.Object(
  {
    filter: Type.Optional(
      Type.Object(
        {},
        {
          additionalProperties: true,
          description: `{"path","op","value"} with op one of ${OPERATORS.join(', ')}; or {"and":[...]}, {"or":[...]}, {"not":{...}}. See docs/data.md.`,
        },
      ),
    ),
    sort: Type.Optional(
      Type.Array(
        Type.Object(
          { path: Type.String(), order: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')])) },
          { additionalProperties: false },
        ),
      ),
    ),
    fields: Type.Optional(Type.Array(Type.String(), { description: 'Projection: the data paths to return' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 4096 })),
    count: Type.Optional(Type.Boolean({ description: 'Also return how many documents match in all' })),
  },
  { additionalProperties: false },
);
const QueryResultSchema = Type.Object({
  data: Type.Array(DocumentSchema),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
  count: Type.Optional(Type.Integer()),
});
const BatchBody = Type.Object(
  {
    operations: Type.Array(
      Type.Object(
        {
          op: Type.Union([Type.Literal('create'), Type.Literal('put'), Type.Literal('patch'), Type.Literal('delete')]),
          collection: CollectionName,
          id: Type.Optional(DocumentId),
          data: Type.Optional(Data),
          if_version: Type.Optional(Type.Integer({ minimum: 1 })),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 500 },
    ),
  },
  { additionalProperties: false },
);

const etag = (doc: Doc) => `"${doc.version}"`;

export function parseIfMatch(header: string | undefined): number | '*' | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (value === '*') return '*';
  const m = /^"(\d{1,15})"$/.exec(value) ?? /^(\d{1,15})$/.exec(value);
  if (!m) throw new AppError('bad_request', 'If-Match must be * or a version ETag such as "3"');
  return Number(m[1]);
}

function sendDocument(reply: FastifyReply, status: number, doc: Doc) {
  return reply.status(status).header('etag', etag(doc)).send(doc);
}

type P = { tenantId: string; collection: string };
type PD = P & { id: string };

export function documentRoutes(app: FastifyInstance, documents: DocumentService): void {
  // PATCH bodies are JSON Merge Patch documents (RFC 7396).
  app.addContentTypeParser(
    'application/merge-patch+json',
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );

  app.post<{
    Params: P;
    Body: { id?: string; data: Record<string, unknown> };
    Headers: { 'idempotency-key'?: string };
  }>(
    '/v1/tenants/:tenantId/collections/:collection/documents',
    {
      config: { permission: 'data:write' },
      schema: {
        tags,
        security,
        summary: 'Create a document',
        description: 'The server chooses the id (UUIDv7) unless the body gives one. 409 if the id exists.',
        params: CollectionParams,
        headers: CreateHeaders,
        body: Type.Object({ id: Type.Optional(DocumentId), data: Data }, { additionalProperties: false }),
        response: responses({ 201: DocumentSchema }),
      },
    },
    async (request, reply) => {
      const { tenantId, collection } = request.params;
      const out = await documents.create(
        requireAccess(request),
        collection,
        request.body,
        request.headers['idempotency-key'],
      );
      if (out.replayed) reply.header('idempotent-replayed', 'true');
      reply.header('location', `/v1/tenants/${tenantId}/collections/${collection}/documents/${out.document.id}`);
      return sendDocument(reply, out.status, out.document);
    },
  );

  app.get<{ Params: P; Querystring: { limit?: number; cursor?: string } }>(
    '/v1/tenants/:tenantId/collections/:collection/documents',
    {
      config: { permission: 'data:read' },
      schema: {
        tags,
        security,
        summary: 'List documents by id',
        params: CollectionParams,
        querystring: Type.Object(
          {
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
            cursor: Type.Optional(Type.String({ maxLength: 4096 })),
          },
          { additionalProperties: false },
        ),
        response: responses({ 200: QueryResultSchema }),
      },
    },
    async (request) => {
      const { tenantId, collection } = request.params;
      const { limit, cursor } = request.query;
      return documents.query(tenantId, collection, {
        ...(limit ? { limit } : {}),
        ...(cursor ? { cursor } : {}),
      });
    },
  );

  app.get<{ Params: PD; Headers: { 'if-none-match'?: string } }>(
    '/v1/tenants/:tenantId/collections/:collection/documents/:id',
    {
      config: { permission: 'data:read' },
      schema: {
        tags,
        security,
        summary: 'Read a document',
        params: DocumentParams,
        response: responses({ 200: DocumentSchema, 304: NoContent }),
      },
    },
    async (request, reply) => {
      const { tenantId, collection, id } = request.params;
      const doc = await documents.get(tenantId, collection, id);
      if (request.headers['if-none-match'] === etag(doc)) return reply.status(304).header('etag', etag(doc)).send();
      return sendDocument(reply, 200, doc);
    },
  );

  app.put<{ Params: PD; Body: { data: Record<string, unknown> }; Headers: { 'if-match'?: string } }>(
    '/v1/tenants/:tenantId/collections/:collection/documents/:id',
    {
      config: { permission: 'data:write' },
      schema: {
        tags,
        security,
        summary: 'Replace (or create) a document',
        description: 'With If-Match the write happens only if the document is at that version (else 412).',
        params: DocumentParams,
        headers: WriteHeaders,
        body: Type.Object({ data: Data }, { additionalProperties: false }),
        response: responses({ 200: DocumentSchema, 201: DocumentSchema }),
      },
    },
    async (request, reply) => {
      const { collection, id } = request.params;
      const ifMatch = parseIfMatch(request.headers['if-match']);
      const out = await documents.put(requireAccess(request), collection, id, request.body.data, ifMatch);
      return sendDocument(reply, out.created ? 201 : 200, out.document);
    },
  );

  app.patch<{ Params: PD; Body: Record<string, unknown>; Headers: { 'if-match'?: string } }>(
    '/v1/tenants/:tenantId/collections/:collection/documents/:id',
    {
      config: { permission: 'data:write' },
      schema: {
        tags,
        security,
        summary: 'Merge-patch a document (RFC 7396)',
        description: 'Send application/merge-patch+json (or application/json): members set, null removes.',
        params: DocumentParams,
        headers: WriteHeaders,
        body: Type.Object({}, { additionalProperties: true }),
        response: responses({ 200: DocumentSchema }),
      },
    },
    async (request, reply) => {
      const { collection, id } = request.params;
      const ifMatch = parseIfMatch(request.headers['if-match']);
      const out = await documents.patch(requireAccess(request), collection, id, request.body, ifMatch);
      return sendDocument(reply, 200, out.document);
    },
  );

  app.delete<{ Params: PD; Headers: { 'if-match'?: string } }>(
    '/v1/tenants/:tenantId/collections/:collection/documents/:id',
    {
      config: { permission: 'data:write' },
      schema: {
        tags,
        security,
        summary: 'Delete a document (a tombstone stays in the change feed)',
        params: DocumentParams,
        headers: WriteHeaders,
        response: responses({ 204: NoContent }),
      },
    },
    async (request, reply) => {
      const { collection, id } = request.params;
      await documents.remove(requireAccess(request), collection, id, parseIfMatch(request.headers['if-match']));
      return reply.status(204).send();
    },
  );

  app.post<{ Params: P; Body: QueryInput }>(
    '/v1/tenants/:tenantId/collections/:collection/query',
    {
      config: { permission: 'data:read' },
      schema: {
        tags,
        security,
        summary: 'Query documents: filter, sort, projection, cursor, count',
        params: CollectionParams,
        body: QueryBody,
        response: responses({ 200: QueryResultSchema }),
      },
    },
    async (request) => documents.query(request.params.tenantId, request.params.collection, request.body),
  );

  app.post<{ Params: { tenantId: string }; Body: { operations: BatchOperation[] } }>(
    '/v1/tenants/:tenantId/batch',
    {
      config: { permission: 'data:write' },
      schema: {
        tags,
        security,
        summary: 'Write several documents, all or nothing',
        description: 'If any operation fails, nothing is written and the 409 batch_failed names its index.',
        params: TenantParams,
        body: BatchBody,
        response: responses({
          200: Type.Object({
            results: Type.Array(Type.Object({ op: Type.String(), document: DocumentSchema })),
            checkpoint: CheckpointSchema,
          }),
        }),
      },
    },
    async (request) => documents.batch(requireAccess(request), request.body.operations),
  );

  app.post<{ Params: P; Body: SearchInput }>(
    '/v1/tenants/:tenantId/collections/:collection/search',
    {
      config: { permission: 'data:read' },
      schema: {
        tags,
        security,
        summary: "Nearest-neighbour search on the collection's vector field",
        description:
          'Distances: cosine = 1 - cosine similarity, l2 = Euclidean, inner_product = the negated dot product (smaller is nearer).',
        params: CollectionParams,
        body: Type.Object(
          {
            vector: Type.Array(Type.Number(), { minItems: 1, maxItems: 2000 }),
            k: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 10 })),
            metric: Type.Optional(
              Type.Union([Type.Literal('cosine'), Type.Literal('l2'), Type.Literal('inner_product')]),
            ),
            filter: QueryBody.properties.filter,
            fields: QueryBody.properties.fields,
            exact: Type.Optional(Type.Boolean({ description: 'Compute every distance instead of using the index' })),
          },
          { additionalProperties: false },
        ),
        response: responses({
          200: Type.Object({
            data: Type.Array(Type.Object({ distance: Type.Number(), document: DocumentSchema })),
            exact: Type.Boolean({ description: 'Whether the search was exact (no approximate index used)' }),
          }),
        }),
      },
    },
    async (request) => documents.search(request.params.tenantId, request.params.collection, request.body),
  );
}
