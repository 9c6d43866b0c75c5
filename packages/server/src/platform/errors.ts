import { ERROR_CATALOG, type ErrorCode } from '@strata/contract';

/** The one error class: a stable code from the catalog, its HTTP status, and optional extra members. */
export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    detail?: string,
    readonly extra: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(detail ?? ERROR_CATALOG[code].title, options);
    this.status = ERROR_CATALOG[code].status;
  }
}

export const errors = {
  notFound: (what = 'resource') => new AppError('not_found', `The ${what} does not exist`),
  forbidden: (permission: string) =>
    new AppError('forbidden', `This action needs the ${permission} permission`, { permission }),
  unauthenticated: (detail = 'Send a valid credential as Authorization: Bearer <token>') =>
    new AppError('unauthenticated', detail),
  conflict: (detail: string) => new AppError('conflict', detail),
  badRequest: (detail: string) => new AppError('bad_request', detail),
};
