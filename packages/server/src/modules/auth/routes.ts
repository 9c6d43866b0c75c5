import { AcceptedInvitation, LoginBody, Me, Session, TokenBody } from '@strata/contract';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../platform/errors.js';
import { NoContent, responses } from '../../platform/http/schema.js';
import type { MemberService } from '../members/service.js';
import { requirePrincipal } from './plugin.js';
import type { AuthService } from './service.js';

const tags = ['identity'];
const security = [{ bearer: [] }];

export function authRoutes(app: FastifyInstance, auth: AuthService, members: MemberService): void {
  app.get(
    '/v1/me',
    { schema: { tags, security, summary: 'Who the credential is', response: responses({ 200: Me }) } },
    async (request) => auth.describe(requirePrincipal(request)),
  );

  app.post<{ Body: { email: string } }>(
    '/v1/auth/login',
    {
      config: { public: true },
      schema: {
        tags,
        summary: 'Mail a single-use sign-in token to a user (answers 202 whether or not the email is known)',
        body: LoginBody,
        response: responses({ 202: NoContent }),
      },
    },
    async (request, reply) => {
      await auth.requestLogin(request.body.email);
      return reply.status(202).send();
    },
  );

  app.post<{ Body: { token: string } }>(
    '/v1/auth/sessions',
    {
      config: { public: true },
      schema: {
        tags,
        summary: 'Exchange a sign-in token for a session',
        body: TokenBody,
        response: responses({ 201: Session }),
      },
    },
    async (request, reply) => reply.status(201).send(await auth.exchangeLoginToken(request.body.token)),
  );

  app.delete(
    '/v1/auth/sessions/current',
    {
      schema: {
        tags,
        security,
        summary: 'Sign out (revoke the current session)',
        response: responses({ 204: NoContent }),
      },
    },
    async (request, reply) => {
      const p = requirePrincipal(request);
      if (p.kind !== 'user') throw new AppError('bad_request', 'Only a session can sign out; revoke API keys instead');
      await auth.revokeSession(p.sessionId);
      return reply.status(204).send();
    },
  );

  app.post<{ Body: { token: string } }>(
    '/v1/invitations/accept',
    {
      config: { public: true },
      schema: {
        tags: ['members'],
        summary: 'Accept an invitation; answers with a session for the invited user',
        body: TokenBody,
        response: responses({ 201: AcceptedInvitation }),
      },
    },
    async (request, reply) => {
      const accepted = await members.accept(request.body.token);
      const session = await auth.createSession({ id: accepted.userId, email: accepted.email });
      return reply.status(201).send({ ...session, tenant_id: accepted.tenantId, role: accepted.role });
    },
  );
}
