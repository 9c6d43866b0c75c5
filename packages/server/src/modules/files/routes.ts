import type { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../platform/errors.js';
import { NoContent, responses, TenantParams } from '../../platform/http/schema.js';
import { DEFAULT_CONTENT_TYPE } from '../../platform/objects/store.js';
import { requireAccess } from '../auth/plugin.js';
import { parseIfMatch } from '../documents/routes.js';
import type { FileMeta, FileService } from './service.js';

const tags = ['files'];
const security = [{ bearer: [] }];

const FileParams = Type.Composite([
  TenantParams,
  Type.Object({
    '*': Type.String({
      description:
        'The file key: a `/`-separated path of 1 to 1024 bytes of UTF-8, no empty, `.` or `..` segment, no control characters (percent-encode what a URL path cannot hold)',
    }),
  }),
]);
export const FileSchema = Type.Object({
  key: Type.String(),
  size: Type.Integer({ description: 'Bytes' }),
  content_type: Type.String(),
  sha256: Type.String({ description: 'SHA-256 of the bytes, hex' }),
  version: Type.Integer({ description: 'Starts at 1 and increases with every replace; the ETag is "<version>"' }),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
});
const FileList = Type.Object({ data: Type.Array(FileSchema), next_cursor: Type.Union([Type.String(), Type.Null()]) });
const Bytes = Type.String({ format: 'binary', description: "The file's bytes" });

// A media type such as image/png or text/plain; charset=utf-8 (printable ASCII, at most 255 characters).
const MEDIA_TYPE = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+(\s*;[\x20-\x7e]*)?$/;

type P = { tenantId: string; '*': string };

const etag = (file: FileMeta) => `"${file.version}"`;

function contentTypeOf(request: FastifyRequest): string {
  const given = request.headers['content-type'];
  if (given === undefined || given === '') return DEFAULT_CONTENT_TYPE;
  if (given.length > 255 || !MEDIA_TYPE.test(given)) {
    throw new AppError('bad_request', 'Content-Type must be a media type such as image/png (at most 255 characters)');
  }
  return given;
}

function contentLengthOf(request: FastifyRequest): number | undefined {
  const given = request.headers['content-length'];
  return given !== undefined && /^\d{1,16}$/.test(given) ? Number(given) : undefined;
}

/** If-None-Match on a read: `*` or a list of ETags (weak or strong) that includes the file's. */
function notModified(header: string | undefined, file: FileMeta): boolean {
  if (header === undefined) return false;
  const tags = header.split(',').map((t) => t.trim().replace(/^W\//, ''));
  return tags.includes('*') || tags.includes(etag(file));
}

/** `attachment` with the key's last segment as the name: ASCII fallback plus the exact UTF-8 name (RFC 6266). */
function disposition(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  const exact = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${exact}`;
}

function fileHeaders(reply: FastifyReply, file: FileMeta): FastifyReply {
  return reply
    .header('etag', etag(file))
    .header('last-modified', new Date(file.updated_at).toUTCString())
    .header('cache-control', 'private, no-cache');
}

/** What a download (or its HEAD) says about the bytes: never to be shown inline or sniffed as something else. */
function downloadHeaders(reply: FastifyReply, file: FileMeta): FastifyReply {
  return fileHeaders(reply, file)
    .header('content-type', file.content_type)
    .header('content-length', String(file.size))
    .header('content-disposition', disposition(file.key))
    .header('x-content-type-options', 'nosniff')
    .header('content-security-policy', "default-src 'none'; sandbox");
}

/** Files: one encapsulated plugin, so that its body parser (any content type, passed through as a stream) is its own. */
export function fileRoutes(app: FastifyInstance, files: FileService): void {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    // A refused upload is answered before its body is read; closing the connection spares the client sending the rest.
    scope.addHook('onSend', async (request, reply) => {
      if (reply.statusCode >= 400 && request.raw.complete === false) reply.header('connection', 'close');
    });

    scope.put<{ Params: P; Headers: { 'if-match'?: string; 'if-none-match'?: string } }>(
      '/v1/tenants/:tenantId/files/*',
      {
        config: { permission: 'data:write' },
        schema: {
          tags,
          security,
          summary: 'Upload (create or replace) a file',
          description:
            'The body is the file, of any content type (stored as given; application/octet-stream without one). ' +
            'If-Match: "<version>" replaces only that version; If-None-Match: * only creates (else 412). ' +
            'Larger than the plan allows: 413 file_too_large, and nothing is stored.',
          params: FileParams,
          consumes: ['*/*'],
          body: Type.Unsafe<unknown>({ description: "The file's bytes" }),
          headers: Type.Object({
            'if-match': Type.Optional(Type.String({ description: '"<version>" (compare-and-set) or * (must exist)' })),
            'if-none-match': Type.Optional(Type.String({ description: '* : create only, never replace' })),
          }),
          response: responses({ 200: FileSchema, 201: FileSchema }),
        },
      },
      async (request, reply) => {
        const key = request.params['*'];
        const ifNoneMatch = request.headers['if-none-match'];
        if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') {
          throw new AppError('bad_request', 'If-None-Match on an upload must be * (create only)');
        }
        const ifMatch = parseIfMatch(request.headers['if-match']);
        const contentLength = contentLengthOf(request);
        const out = await files.put(requireAccess(request), key, request.body as Readable | undefined, {
          contentType: contentTypeOf(request),
          ...(contentLength === undefined ? {} : { contentLength }),
          ...(ifMatch === undefined ? {} : { ifMatch }),
          ...(ifNoneMatch === undefined ? {} : { ifNoneMatch: true }),
        });
        if (out.created) reply.header('location', request.url.split('?')[0]);
        return fileHeaders(reply, out.file)
          .status(out.created ? 201 : 200)
          .send(out.file);
      },
    );

    // HEAD answers from the metadata alone; Fastify's automatic HEAD would read the whole blob to discard it.
    scope.head<{ Params: P; Headers: { 'if-none-match'?: string } }>(
      '/v1/tenants/:tenantId/files/*',
      { config: { permission: 'data:read' }, schema: { params: FileParams } },
      async (request, reply) => {
        const file = await files.get(request.params.tenantId, request.params['*']);
        if (notModified(request.headers['if-none-match'], file)) return fileHeaders(reply, file).status(304).send();
        return downloadHeaders(reply, file).send();
      },
    );

    scope.get<{ Params: P; Headers: { 'if-none-match'?: string } }>(
      '/v1/tenants/:tenantId/files/*',
      {
        exposeHeadRoute: false,
        config: { permission: 'data:read' },
        schema: {
          tags,
          security,
          summary: 'Download a file',
          description:
            'The bytes, with the stored Content-Type, Content-Length, the ETag "<version>", ' +
            'Content-Disposition: attachment and X-Content-Type-Options: nosniff. If-None-Match with the ETag: 304.',
          params: FileParams,
          headers: Type.Object({ 'if-none-match': Type.Optional(Type.String()) }),
          response: responses({
            200: { description: "The file's bytes", content: { '*/*': { schema: Bytes } } },
            304: NoContent,
          }),
        },
      },
      async (request, reply) => {
        const { tenantId } = request.params;
        const key = request.params['*'];
        if (request.headers['if-none-match'] !== undefined) {
          const file = await files.get(tenantId, key);
          if (notModified(request.headers['if-none-match'], file)) return fileHeaders(reply, file).status(304).send();
        }
        const { file, body } = await files.open(tenantId, key);
        return downloadHeaders(reply, file).send(body);
      },
    );

    scope.delete<{ Params: P; Headers: { 'if-match'?: string } }>(
      '/v1/tenants/:tenantId/files/*',
      {
        config: { permission: 'data:write' },
        schema: {
          tags,
          security,
          summary: 'Delete a file',
          description: 'Its bytes are removed by the orphan sweep once no file refers to them. 404 if absent.',
          params: FileParams,
          headers: Type.Object({
            'if-match': Type.Optional(Type.String({ description: '"<version>": delete only that version (else 412)' })),
          }),
          response: responses({ 204: NoContent }),
        },
      },
      async (request, reply) => {
        await files.remove(requireAccess(request), request.params['*'], parseIfMatch(request.headers['if-match']));
        return reply.status(204).send();
      },
    );

    scope.get<{ Params: { tenantId: string }; Querystring: { prefix?: string; limit?: number; cursor?: string } }>(
      '/v1/tenants/:tenantId/files',
      {
        config: { permission: 'data:read' },
        schema: {
          tags,
          security,
          summary: 'List files by key',
          description: 'In byte order of the keys; `prefix` keeps those that start with it (e.g. `images/`).',
          params: TenantParams,
          querystring: Type.Object(
            {
              prefix: Type.Optional(Type.String({ maxLength: 1024 })),
              limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
              cursor: Type.Optional(Type.String({ maxLength: 1400 })),
            },
            { additionalProperties: false },
          ),
          response: responses({ 200: FileList }),
        },
      },
      async (request) => files.list(request.params.tenantId, request.query),
    );
  });
}
