/**
 * The error catalog: every error Strata returns has one of these stable codes.
 * The server renders them as RFC 9457 problem+json; the SDK and portal switch on `code`.
 */
export const ERROR_CATALOG = {
  bad_request: { status: 400, title: 'The request is malformed' },
  validation_failed: { status: 400, title: 'The request does not match the schema' },
  invalid_json: { status: 400, title: 'The request body is not valid JSON' },
  unsupported_media_type: { status: 415, title: 'The request body must be application/json' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  unauthenticated: { status: 401, title: 'A valid credential is required' },
  forbidden: { status: 403, title: 'The credential lacks the permission for this action' },
  tenant_suspended: { status: 403, title: 'The tenant is suspended' },
  plan_required: { status: 403, title: "The tenant's plan does not include this feature" },
  quota_exceeded: { status: 403, title: "The tenant's plan limit is reached" },
  not_found: { status: 404, title: 'The resource does not exist' },
  conflict: { status: 409, title: 'The request conflicts with the current state' },
  version_conflict: { status: 409, title: 'The document changed since the version the write was based on' },
  precondition_failed: { status: 412, title: 'The If-Match version does not match the current document' },
  document_too_large: { status: 413, title: 'The document is larger than the size limit' },
  file_too_large: { status: 413, title: 'The file is larger than the size limit' },
  idempotency_key_reused: { status: 422, title: 'The Idempotency-Key was used for a different request' },
  invalid_filter: { status: 400, title: 'The query filter is not valid' },
  resync_required: { status: 409, title: 'The checkpoint is from another epoch; resynchronize from the start' },
  batch_failed: { status: 409, title: 'An operation in the batch failed; nothing was written' },
  slug_taken: { status: 409, title: 'The slug is already in use' },
  already_member: { status: 409, title: 'The user is already a member of the tenant' },
  last_owner: { status: 409, title: 'A tenant must keep at least one owner' },
  invitation_invalid: { status: 410, title: 'The invitation is expired, used or revoked' },
  token_invalid: { status: 401, title: 'The token is expired, used or unknown' },
  datastore_test_failed: { status: 422, title: 'The datastore failed its connection test' },
  snapshot_damaged: { status: 422, title: 'The stored snapshot does not match its checksums' },
  region_not_allowed: { status: 422, title: 'The region is not allowed' },
  unknown_plan: { status: 422, title: 'The plan does not exist' },
  rate_limited: { status: 429, title: 'Too many requests' },
  internal: { status: 500, title: 'An internal error occurred' },
  unavailable: { status: 503, title: 'A dependency is unavailable' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

/** Base URI for the `type` member of problem documents; each code has a page in docs/errors.md. */
export const PROBLEM_TYPE_BASE = 'https://strata.dev/errors/';

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail?: string;
  instance?: string;
  request_id?: string;
  errors?: { path: string; message: string }[];
  [extra: string]: unknown;
}
