import type { Static } from '@sinclair/typebox';
import {
  CreatedTenant,
  CreateTenant,
  type CreateTenant as CreateTenantBody,
  page,
  Tenant,
  TenantListQuery,
  UpdateTenant,
  type UpdateTenant as UpdateTenantBody,
} from '@strata/contract';
import type { FastifyInstance } from 'fastify';
import { responses, TenantParams } from '../../platform/http/schema.js';
import { requirePrincipal } from '../auth/plugin.js';
import type { TenantService } from './service.js';

type Params = { tenantId: string };
const tags = ['tenants'];
const security = [{ bearer: [] }];

export function tenantRoutes(app: FastifyInstance, tenants: TenantService): void {
  app.post<{ Body: CreateTenantBody }>(
    '/v1/tenants',
    {
      config: { operator: true },
      schema: {
        tags,
        security,
        summary: 'Create a tenant (operator)',
        body: CreateTenant,
        response: responses({ 201: CreatedTenant }),
      },
    },
    async (request, reply) => reply.status(201).send(await tenants.create(request.body)),
  );

  app.get<{ Querystring: Static<typeof TenantListQuery> }>(
    '/v1/tenants',
    {
      config: { operator: true },
      schema: {
        tags,
        security,
        summary: 'List tenants (operator)',
        querystring: TenantListQuery,
        response: responses({ 200: page(Tenant) }),
      },
    },
    async (request) => tenants.list(request.query),
  );

  app.get<{ Params: Params }>(
    '/v1/tenants/:tenantId',
    {
      config: { permission: 'tenant:read' },
      schema: { tags, security, summary: 'Read a tenant', params: TenantParams, response: responses({ 200: Tenant }) },
    },
    async (request) => tenants.get(request.params.tenantId),
  );

  app.patch<{ Params: Params; Body: UpdateTenantBody }>(
    '/v1/tenants/:tenantId',
    {
      config: { permission: 'tenant:update' },
      schema: {
        tags,
        security,
        summary: 'Update a tenant (name; plan, overrides and regions need an operator key)',
        params: TenantParams,
        body: UpdateTenant,
        response: responses({ 200: Tenant }),
      },
    },
    async (request) =>
      tenants.update(request.params.tenantId, request.body, requirePrincipal(request).kind === 'operator'),
  );

  for (const change of ['suspend', 'resume', 'restore'] as const) {
    app.post<{ Params: Params }>(
      `/v1/tenants/:tenantId/${change}`,
      {
        config: { operator: true, permission: 'tenant:update' },
        schema: {
          tags,
          security,
          summary: `${change[0]?.toUpperCase()}${change.slice(1)} a tenant (operator)`,
          params: TenantParams,
          response: responses({ 200: Tenant }),
        },
      },
      async (request) => tenants.changeStatus(request.params.tenantId, change),
    );
  }

  app.delete<{ Params: Params }>(
    '/v1/tenants/:tenantId',
    {
      config: { operator: true, permission: 'tenant:update' },
      schema: {
        tags,
        security,
        summary: 'Delete a tenant (operator): soft delete, purged after the grace period',
        params: TenantParams,
        response: responses({ 200: Tenant }),
      },
    },
    async (request) => tenants.changeStatus(request.params.tenantId, 'delete'),
  );
}
