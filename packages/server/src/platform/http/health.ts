import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Platform } from '../context.js';
import { AppError } from '../errors.js';
import { responses } from './schema.js';

const Health = Type.Object({ status: Type.String(), checks: Type.Optional(Type.Record(Type.String(), Type.String())) });

export function healthRoutes(app: FastifyInstance, platform: Platform): void {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: { tags: ['health'], summary: 'The process is up', response: responses({ 200: Health }) },
    },
    async () => ({ status: 'ok' }),
  );
  app.get(
    '/readyz',
    {
      config: { public: true },
      schema: { tags: ['health'], summary: 'Dependencies are reachable', response: responses({ 200: Health }) },
    },
    async () => {
      try {
        await platform.db.query('SELECT 1');
      } catch (err) {
        throw new AppError(
          'unavailable',
          'The database is not reachable',
          { checks: { database: 'down' } },
          { cause: err },
        );
      }
      return { status: 'ok', checks: { database: 'ok' } };
    },
  );
  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
}
