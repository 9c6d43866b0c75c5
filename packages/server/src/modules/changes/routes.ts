import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Platform } from '../../platform/context.js';
import { AppError } from '../../platform/errors.js';
import { responses, TenantParams } from '../../platform/http/schema.js';
import { requireAccess } from '../auth/plugin.js';
import { CheckpointSchema, CollectionName, DocumentId, DocumentSchema } from '../documents/routes.js';
import type { ChangeNotifier } from './notifier.js';
import type { ChangeService, Mutation } from './service.js';

const tags = ['changes'];
const security = [{ bearer: [] }];

const ChangeSchema = Type.Object({
  seq: Type.Integer(),
  collection: Type.String(),
  id: Type.String(),
  version: Type.Integer(),
  deleted: Type.Boolean(),
  data: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
  at: Type.String({ format: 'date-time' }),
  client_id: Type.Union([Type.String(), Type.Null()]),
  mutation_id: Type.Union([Type.String(), Type.Null()]),
});
const FeedQuery = Type.Object(
  {
    since: Type.Optional(Type.Integer({ minimum: 0, description: 'Return changes after this sequence number' })),
    epoch: Type.Optional(Type.Integer({ minimum: 1, description: 'The epoch of the client checkpoint; 409 if stale' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    collection: Type.Optional(CollectionName),
  },
  { additionalProperties: false },
);
const ClientId = Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,128}$' });
const PushBody = Type.Object(
  {
    client_id: ClientId,
    mutations: Type.Array(
      Type.Object(
        {
          mutation_id: ClientId,
          collection: CollectionName,
          id: DocumentId,
          base_version: Type.Integer({
            minimum: 0,
            description: 'The version the client last saw; 0 for a new document',
          }),
          data: Type.Optional(Type.Object({}, { additionalProperties: true })),
          deleted: Type.Optional(Type.Literal(true)),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 500 },
    ),
  },
  { additionalProperties: false },
);
const MutationResultSchema = Type.Object({
  mutation_id: Type.String(),
  status: Type.Union([Type.Literal('applied'), Type.Literal('conflict'), Type.Literal('rejected')]),
  version: Type.Optional(Type.Integer()),
  seq: Type.Optional(Type.Integer()),
  current: Type.Optional(Type.Union([DocumentSchema, Type.Null()])),
  error: Type.Optional(Type.Object({ code: Type.String(), detail: Type.String() })),
});

export function changeRoutes(
  app: FastifyInstance,
  platform: Platform,
  changes: ChangeService,
  notifier: ChangeNotifier,
): void {
  app.get<{
    Params: { tenantId: string };
    Querystring: { since?: number; epoch?: number; limit?: number; collection?: string };
  }>(
    '/v1/tenants/:tenantId/changes',
    {
      config: { permission: 'data:read' },
      schema: {
        tags,
        security,
        summary: "Read the tenant's change feed",
        description: 'Changes after `since` in commit order, tombstones included, with a checkpoint to resume from.',
        params: TenantParams,
        querystring: FeedQuery,
        response: responses({
          200: Type.Object({
            changes: Type.Array(ChangeSchema),
            checkpoint: CheckpointSchema,
            has_more: Type.Boolean(),
          }),
        }),
      },
    },
    async (request) => changes.feed(request.params.tenantId, request.query),
  );

  app.post<{ Params: { tenantId: string }; Body: { client_id: string; mutations: Mutation[] } }>(
    '/v1/tenants/:tenantId/sync/push',
    {
      config: { permission: 'data:write' },
      schema: {
        tags,
        security,
        summary: 'Push offline mutations (compare-and-set on base_version)',
        description:
          'Each mutation is applied, or answered with a conflict carrying the current document. Retries are harmless.',
        params: TenantParams,
        body: PushBody,
        response: responses({
          200: Type.Object({ results: Type.Array(MutationResultSchema), checkpoint: CheckpointSchema }),
        }),
      },
    },
    async (request) => changes.push(requireAccess(request), request.body),
  );

  // Open streams, each with the function that ends it. Closing the app ends them all and waits for
  // any read they have in flight, so no stream touches the database after the app has closed.
  const streams = new Set<() => Promise<void>>();
  app.addHook('preClose', async () => {
    await Promise.all([...streams].map((stop) => stop()));
  });

  app.get<{
    Params: { tenantId: string };
    Querystring: { since?: number; epoch?: number; collection?: string; max_seconds?: number };
    Headers: { 'last-event-id'?: string };
  }>(
    '/v1/tenants/:tenantId/changes/stream',
    {
      config: { permission: 'data:read' },
      schema: {
        tags,
        security,
        summary: 'Stream changes as Server-Sent Events',
        description:
          'Events `change` (id = seq, data = the change as JSON), `resync` (the epoch changed: start over), and heartbeat comments. ' +
          'Reconnect with Last-Event-ID to resume without missing anything; pass the `epoch` of your checkpoint so a reconnect ' +
          'after the epoch changed is refused with 409 resync_required instead of resuming from a position that no longer exists.',
        params: TenantParams,
        querystring: Type.Object(
          {
            since: Type.Optional(Type.Integer({ minimum: 0 })),
            epoch: Type.Optional(
              Type.Integer({ minimum: 1, description: 'The epoch of the client checkpoint; 409 if stale' }),
            ),
            collection: Type.Optional(CollectionName),
            max_seconds: Type.Optional(
              Type.Number({
                minimum: 0.05,
                maximum: 86_400,
                default: 300,
                description:
                  'Close the stream after this long; clients reconnect with Last-Event-ID (credentials are checked again)',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: responses({ 200: Type.String({ description: 'text/event-stream' }) }),
      },
    },
    async (request, reply) => {
      const { tenantId } = request.params;
      const { collection } = request.query;
      const lastEventId = request.headers['last-event-id'];
      if (lastEventId !== undefined && !/^\d{1,15}$/.test(lastEventId)) {
        throw new AppError('bad_request', 'Last-Event-ID must be a sequence number this stream sent');
      }
      let cursor = lastEventId !== undefined ? Number(lastEventId) : (request.query.since ?? 0);
      const filter = collection ? { collection } : {};
      // Fail before the stream starts if the position is bad.
      const first = await changes.feed(tenantId, {
        since: cursor,
        limit: 1,
        ...(request.query.epoch !== undefined ? { epoch: request.query.epoch } : {}),
        ...filter,
      });
      const epoch = first.checkpoint.epoch;

      reply.hijack();
      const res = reply.raw;
      // The client may have gone while the position was checked; then there is nothing to stream to.
      if (res.destroyed || request.raw.destroyed) return;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        'x-request-id': request.id,
      });
      res.write(`retry: 1000\n\n`);

      let closed = false;
      // One read at a time; a wake-up during a read makes that read go round once more.
      let running = false;
      let again = false;
      let active: Promise<void> = Promise.resolve();
      const send = (text: string) => {
        if (!closed && !res.writableEnded) res.write(text);
      };
      // A client that reads slower than the feed holds the stream back: it waits for the socket to
      // drain rather than buffering the tenant's history in memory.
      let release: (() => void) | undefined;
      const drained = () =>
        new Promise<void>((resolve) => {
          release = resolve;
          res.once('drain', resolve);
        });
      const pump = async () => {
        try {
          do {
            again = false;
            const page = await changes.feed(tenantId, { since: cursor, limit: 500, ...filter });
            if (closed) return;
            if (page.checkpoint.epoch !== epoch) {
              send(`event: resync\ndata: ${JSON.stringify(page.checkpoint)}\n\n`);
              res.end();
              return;
            }
            for (const change of page.changes) {
              send(`id: ${change.seq}\nevent: change\ndata: ${JSON.stringify(change)}\n\n`);
              if (res.writableNeedDrain) await drained();
              if (closed) return;
            }
            cursor = page.checkpoint.seq;
            if (page.has_more) again = true;
          } while (again && !closed);
        } catch (err) {
          if (closed) return;
          if (err instanceof AppError && err.code === 'resync_required') {
            send(`event: resync\ndata: ${JSON.stringify(err.extra)}\n\n`);
          } else {
            request.log.error({ err }, 'change stream failed');
          }
          res.end();
        } finally {
          running = false;
        }
      };
      const wake = () => {
        if (closed) return;
        if (running) {
          again = true;
          return;
        }
        running = true;
        active = pump();
      };
      const unsubscribe = notifier.subscribe(tenantId, wake);
      // Polling catches writes committed by other nodes; the notifier makes local writes immediate.
      const poll = setInterval(wake, 1000);
      const heartbeat = setInterval(() => send(': heartbeat\n\n'), platform.config.sseHeartbeatSeconds * 1000);
      // At the end of its life the stream ends; a client that has stopped reading is cut off soon after.
      const lifetime = setTimeout(
        () => {
          res.end();
          setTimeout(() => res.destroy(), 10_000).unref();
        },
        (request.query.max_seconds ?? 300) * 1000,
      );
      const cleanup = () => {
        closed = true;
        clearTimeout(lifetime);
        unsubscribe();
        clearInterval(poll);
        clearInterval(heartbeat);
        streams.delete(stop);
        release?.();
      };
      const stop = async () => {
        cleanup();
        res.end();
        await active;
      };
      streams.add(stop);
      res.on('close', cleanup);
      res.on('error', cleanup);
      wake();
    },
  );
}
