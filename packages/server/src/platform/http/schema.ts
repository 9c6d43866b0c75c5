import { type TSchema, Type } from '@sinclair/typebox';
import { Problem } from '@strata/contract';
import type { FastifySchema } from 'fastify';

const { $id: _omit, ...ProblemInline } = Problem as typeof Problem & { $id?: string };

export const TenantParams = Type.Object({ tenantId: Type.String({ format: 'uuid' }) });

/** Standard responses: the success schema plus problem+json for every error. */
export function responses(
  ok: Record<number, TSchema | { description: string; content: Record<string, { schema: TSchema }> }>,
) {
  return { ...ok, '4XX': ProblemInline, '5XX': ProblemInline };
}

export const NoContent = Type.Null({ description: 'No content' });

/**
 * Fastify writes a route's trailing wildcard as `*` (a param named `*`); the OpenAPI document writes it as
 * `{key}` (files are the routes that have one). These convert between the two spellings of a route.
 */
export const WILDCARD_PARAM = 'key';
export const openApiPathOf = (url: string): string =>
  url.replace(/:(\w+)/g, '{$1}').replace(/\/\*$/, `/{${WILDCARD_PARAM}}`);
export const routeUrlOf = (path: string): string =>
  path.replace(new RegExp(`/\\{${WILDCARD_PARAM}\\}$`), '/*').replace(/\{(\w+)\}/g, ':$1');

type RouteSchema = { params?: { properties?: Record<string, unknown>; required?: string[] } } & Record<string, unknown>;

/** @fastify/swagger's transform: a trailing `*` becomes the path parameter `{key}`, described by the route's `*` param. */
export function documentWildcard({ schema, url }: { schema: FastifySchema; url: string }): {
  schema: FastifySchema;
  url: string;
} {
  if (!url.endsWith('/*')) return { schema, url };
  const s = (schema ?? {}) as RouteSchema;
  const { '*': wildcard, ...others } = s.params?.properties ?? {};
  const params = {
    ...s.params,
    properties: { ...others, [WILDCARD_PARAM]: wildcard ?? { type: 'string' } },
    required: [...(s.params?.required ?? []).filter((r) => r !== '*'), WILDCARD_PARAM],
  };
  return { schema: { ...s, params } as FastifySchema, url: `${url.slice(0, -1)}:${WILDCARD_PARAM}` };
}
