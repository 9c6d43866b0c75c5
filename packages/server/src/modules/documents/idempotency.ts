import { createHash } from 'node:crypto';
import type { Queryable } from '../../platform/db/driver.js';
import { AppError } from '../../platform/errors.js';

/**
 * Remembered responses for retried writes, stored in the same transaction as the write they describe:
 * either both commit or neither does, so a retry either finds the first response or finds nothing and
 * runs again. Writers of a tenant are serialized (withTenantWrite), so two concurrent retries of one
 * request cannot both miss: the second waits for the first to commit and then finds its response.
 */

export interface Remembered {
  status: number;
  response: unknown;
}

/** How long a response is remembered: a day for HTTP Idempotency-Key, a week for sync mutations. */
const TTL_HOURS = { http: 24, sync: 24 * 7 };

/**
 * What a request says, independent of how the client ordered its object members when it serialized it
 * again: a retry is recognised by content, not by byte order.
 */
export const fingerprint = (value: unknown): string =>
  createHash('sha256')
    .update(JSON.stringify(canonical(value)))
    .digest('base64url');

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(entries.map(([k, v]) => [k, canonical(v)]));
  }
  return value;
}

export async function recall(
  tx: Queryable,
  kind: keyof typeof TTL_HOURS,
  scope: string,
  key: string,
  print: string,
): Promise<Remembered | undefined> {
  const { rows } = await tx.query<{ fingerprint: string; status: number; response: unknown }>(
    `SELECT fingerprint, status, response FROM strata_data.idempotency
      WHERE scope = $1 AND key = $2 AND created_at > now() - make_interval(hours => $3)`,
    [scope, key, TTL_HOURS[kind]],
  );
  const row = rows[0];
  if (!row) return undefined;
  if (row.fingerprint !== print) {
    throw new AppError(
      'idempotency_key_reused',
      kind === 'http'
        ? 'This Idempotency-Key was used for a different request; use a new key for a new request'
        : `Mutation ${key} was already applied with different contents; give each mutation a new id`,
    );
  }
  return { status: row.status, response: row.response };
}

export async function remember(
  tx: Queryable,
  tenantId: string,
  scope: string,
  key: string,
  print: string,
  value: Remembered,
): Promise<void> {
  await tx.query(
    `INSERT INTO strata_data.idempotency (tenant_id, scope, key, fingerprint, status, response)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb)
     ON CONFLICT (tenant_id, scope, key) DO UPDATE
       SET fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status, response = EXCLUDED.response, created_at = now()`,
    [tenantId, scope, key, print, value.status, JSON.stringify(value.response)],
  );
  // Housekeeping rides along on roughly one write in a hundred: the tenant's expired entries go.
  if (Math.random() < 0.01) await forgetExpired(tx);
}

/** Deletes the tenant's remembered responses that are past their time. */
export async function forgetExpired(tx: Queryable): Promise<number> {
  const r = await tx.query(
    `DELETE FROM strata_data.idempotency
      WHERE created_at < now() - make_interval(hours => CASE WHEN scope = 'http' THEN $1::int ELSE $2::int END)`,
    [TTL_HOURS.http, TTL_HOURS.sync],
  );
  return r.rowCount;
}
