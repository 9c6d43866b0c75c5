import { Type } from '@sinclair/typebox';
import { ApiKey, type ApiKeyScope, CreateApiKey, CreatedApiKey, ListQuery, page } from '@strata/contract';
import type { FastifyInstance } from 'fastify';
import { responses, TenantParams } from '../../platform/http/schema.js';
import { requireAccess } from '../auth/plugin.js';
import type { ApiKeyService } from './service.js';

const tags = ['api-keys'];
const security = [{ bearer: [] }];
const KeyParams = Type.Composite([TenantParams, Type.Object({ keyId: Type.String({ format: 'uuid' }) })]);
type P = { tenantId: string; keyId: string };

export function apiKeyRoutes(app: FastifyInstance, keys: ApiKeyService): void {
  app.post<{ Params: { tenantId: string }; Body: { name: string; scopes: ApiKeyScope[]; expires_at?: string } }>(
    '/v1/tenants/:tenantId/api-keys',
    {
      config: { permission: 'api_keys:create' },
      schema: {
        tags,
        security,
        summary: 'Create an API key (the secret is in this response only)',
        params: TenantParams,
        body: CreateApiKey,
        response: responses({ 201: CreatedApiKey }),
      },
    },
    async (request, reply) =>
      reply
        .status(201)
        .send(await keys.create(request.params.tenantId, request.body, requireAccess(request).permissions)),
  );

  app.get<{ Params: { tenantId: string }; Querystring: ListQuery }>(
    '/v1/tenants/:tenantId/api-keys',
    {
      config: { permission: 'api_keys:read' },
      schema: {
        tags,
        security,
        summary: 'List API keys',
        params: TenantParams,
        querystring: ListQuery,
        response: responses({ 200: page(ApiKey) }),
      },
    },
    async (request) => keys.list(request.params.tenantId, request.query),
  );

  app.get<{ Params: P }>(
    '/v1/tenants/:tenantId/api-keys/:keyId',
    {
      config: { permission: 'api_keys:read' },
      schema: { tags, security, summary: 'Read an API key', params: KeyParams, response: responses({ 200: ApiKey }) },
    },
    async (request) => keys.get(request.params.tenantId, request.params.keyId),
  );

  app.delete<{ Params: P }>(
    '/v1/tenants/:tenantId/api-keys/:keyId',
    {
      config: { permission: 'api_keys:revoke' },
      schema: { tags, security, summary: 'Revoke an API key', params: KeyParams, response: responses({ 200: ApiKey }) },
    },
    async (request) => keys.revoke(request.params.tenantId, request.params.keyId),
  );
}
