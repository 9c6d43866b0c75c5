import { ERROR_CATALOG, type ErrorCode, PROBLEM_TYPE_BASE, type ProblemDocument } from '@strata/contract';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';

export function problemOf(
  code: ErrorCode,
  request: FastifyRequest,
  detail?: string,
  extra: Record<string, unknown> = {},
): ProblemDocument {
  const entry = ERROR_CATALOG[code];
  // Extra members come first so they can never overwrite the standard ones.
  return {
    ...extra,
    type: `${PROBLEM_TYPE_BASE}${code}`,
    title: entry.title,
    status: entry.status,
    code,
    ...(detail ? { detail } : {}),
    instance: request.url.split('?')[0] as string,
    request_id: request.id,
  };
}

function sendProblem(reply: FastifyReply, problem: ProblemDocument): FastifyReply {
  if (problem.code === 'rate_limited' && typeof problem.retry_after === 'number') {
    reply.header('Retry-After', String(problem.retry_after));
  }
  return reply.status(problem.status).type('application/problem+json').send(problem);
}

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** Maps every error, ours or Fastify's, to a problem document with a stable code. Client mistakes never become 500s. */
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE']);

/**
 * Errors that mean a database could not be reached or went away, rather than a bug: network failures,
 * PostgreSQL's connection-exception class (08xxx), server shutdowns (57P01-57P03), too many connections,
 * and a lock not granted in time.
 */
export function isUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') {
    return (
      error instanceof Error && /Connection terminated|timeout exceeded when trying to connect/i.test(error.message)
    );
  }
  // 55P03: a lock was not granted within lock_timeout (a write waiting on a long-held tenant lock).
  return (
    NETWORK_ERRORS.has(code) || code.startsWith('08') || ['57P01', '57P02', '57P03', '53300', '55P03'].includes(code)
  );
}

/**
 * Fastify's refusals before a request reaches a route (a path whose %-escapes do not decode, a path
 * parameter too long), as problem documents like every other error. Passed as the `frameworkErrors` option.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const detail =
    error.code === 'FST_ERR_BAD_URL'
      ? 'The URL path is not valid: a %-escape does not decode to UTF-8'
      : error.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? 'A path parameter is too long'
        : error.message;
  sendProblem(reply, problemOf('bad_request', request, detail));
}

export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | AppError | Error, request, reply) => {
    if (error instanceof AppError) {
      return sendProblem(reply, problemOf(error.code, request, error.message, error.extra));
    }
    const fe = error as FastifyError & { validation?: ValidationIssue[]; validationContext?: string };
    if (fe.validation) {
      const where = fe.validationContext ?? 'body';
      const issues = fe.validation.map((v) => {
        const extraProp = v.params?.additionalProperty;
        const path = `${where}${v.instancePath ?? ''}${extraProp ? `/${String(extraProp)}` : ''}`;
        return { path, message: extraProp ? 'is not a known field' : (v.message ?? 'is invalid') };
      });
      return sendProblem(
        reply,
        problemOf('validation_failed', request, issues.map((i) => `${i.path} ${i.message}`).join('; '), {
          errors: issues,
        }),
      );
    }
    switch (fe.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return sendProblem(reply, problemOf('payload_too_large', request, fe.message));
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return sendProblem(reply, problemOf('unsupported_media_type', request, fe.message));
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return sendProblem(reply, problemOf('invalid_json', request, fe.message));
    }
    if (fe instanceof SyntaxError || fe.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') {
      return sendProblem(reply, problemOf('invalid_json', request, fe.message));
    }
    if (isUnavailable(error)) {
      // A datastore that cannot be reached (or a lock not granted in time) is the server's trouble and usually
      // brief: 503, try again shortly.
      request.log.warn({ err: error, type: 'datastore.unavailable' }, 'datastore unavailable');
      reply.header('retry-after', '5');
      return sendProblem(
        reply,
        problemOf('unavailable', request, 'The datastore holding this data cannot be reached; retry shortly'),
      );
    }
    const status = fe.statusCode ?? 500;
    if (status === 413) return sendProblem(reply, problemOf('payload_too_large', request, fe.message));
    if (status === 415) return sendProblem(reply, problemOf('unsupported_media_type', request, fe.message));
    if (status >= 400 && status < 500) return sendProblem(reply, problemOf('bad_request', request, fe.message));
    request.log.error({ err: error, type: 'http.error' }, 'unhandled error');
    return sendProblem(
      reply,
      problemOf('internal', request, 'An internal error occurred; see the server log for the request id'),
    );
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, problemOf('not_found', request, `No route for ${request.method} ${request.url.split('?')[0]}`)),
  );
}
