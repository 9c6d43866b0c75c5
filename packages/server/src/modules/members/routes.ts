import { Type } from '@sinclair/typebox';
import { CreateInvitation, Invitation, ListQuery, Member, page, type Role, UpdateMember } from '@strata/contract';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NoContent, responses, TenantParams } from '../../platform/http/schema.js';
import { requireAccess, requirePrincipal } from '../auth/plugin.js';
import type { MemberService } from './service.js';

const tags = ['members'];
const security = [{ bearer: [] }];
const MemberParams = Type.Composite([TenantParams, Type.Object({ userId: Type.String({ format: 'uuid' }) })]);
const InvitationParams = Type.Composite([TenantParams, Type.Object({ invitationId: Type.String({ format: 'uuid' }) })]);

function actorOf(request: FastifyRequest) {
  return { role: requireAccess(request).role, operator: requirePrincipal(request).kind === 'operator' };
}

export function memberRoutes(app: FastifyInstance, members: MemberService): void {
  app.get<{ Params: { tenantId: string }; Querystring: ListQuery }>(
    '/v1/tenants/:tenantId/members',
    {
      config: { permission: 'members:read' },
      schema: {
        tags,
        security,
        summary: 'List members',
        params: TenantParams,
        querystring: ListQuery,
        response: responses({ 200: page(Member) }),
      },
    },
    async (request) => members.list(request.params.tenantId, request.query),
  );

  app.patch<{ Params: { tenantId: string; userId: string }; Body: { role: Role } }>(
    '/v1/tenants/:tenantId/members/:userId',
    {
      config: { permission: 'members:update' },
      schema: {
        tags,
        security,
        summary: "Change a member's role",
        params: MemberParams,
        body: UpdateMember,
        response: responses({ 200: Member }),
      },
    },
    async (request) => {
      const a = actorOf(request);
      return members.changeRole(request.params.tenantId, request.params.userId, request.body.role, a.role, a.operator);
    },
  );

  app.delete<{ Params: { tenantId: string; userId: string } }>(
    '/v1/tenants/:tenantId/members/:userId',
    {
      config: { permission: 'members:remove' },
      schema: {
        tags,
        security,
        summary: 'Remove a member',
        params: MemberParams,
        response: responses({ 204: NoContent }),
      },
    },
    async (request, reply) => {
      const a = actorOf(request);
      await members.remove(request.params.tenantId, request.params.userId, a.role, a.operator);
      return reply.status(204).send();
    },
  );

  app.post<{ Params: { tenantId: string }; Body: { email: string; role: Role } }>(
    '/v1/tenants/:tenantId/invitations',
    {
      config: { permission: 'members:invite' },
      schema: {
        tags,
        security,
        summary: 'Invite someone by email',
        params: TenantParams,
        body: CreateInvitation,
        response: responses({ 201: Invitation }),
      },
    },
    async (request, reply) => {
      const a = actorOf(request);
      return reply.status(201).send(await members.invite(request.params.tenantId, request.body, a.role, a.operator));
    },
  );

  app.get<{ Params: { tenantId: string }; Querystring: ListQuery }>(
    '/v1/tenants/:tenantId/invitations',
    {
      config: { permission: 'members:read' },
      schema: {
        tags,
        security,
        summary: 'List invitations',
        params: TenantParams,
        querystring: ListQuery,
        response: responses({ 200: page(Invitation) }),
      },
    },
    async (request) => members.listInvitations(request.params.tenantId, request.query),
  );

  app.delete<{ Params: { tenantId: string; invitationId: string } }>(
    '/v1/tenants/:tenantId/invitations/:invitationId',
    {
      config: { permission: 'members:invite' },
      schema: {
        tags,
        security,
        summary: 'Revoke an invitation',
        params: InvitationParams,
        response: responses({ 200: Invitation }),
      },
    },
    async (request) => members.revokeInvitation(request.params.tenantId, request.params.invitationId),
  );
}
