import { createHash } from 'node:crypto';
import type { Queryable } from '../../platform/db/driver.js';
import { AppError } from '../../platform/errors.js';

/**
 * Remembered responses for retried writes, stored in the same transaction as the write they describe:
 * either both commit or neither does, so a retry either finds the first response or finds nothing and
 * runs again. See claim() for how concurrent retries of one request are kept from both running.
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

/**
 * Claims `key` for the current transaction, or returns the response it already got. The claim is a row
 * inserted before the work is done: a concurrent request with the same key waits on that row until this
 * transaction ends, then finds the stored response (or, if this one rolled back, claims the key itself).
 * Throws idempotency_key_reused when the key was used for different content.
 */
export async function claim(
  tx: Queryable,
  tenantId: string,
  kind: keyof typeof TTL_HOURS,
  scope: string,
  key: string,
  print: string,
): Promise<Remembered | undefined> {
  const inserted = await tx.query(
    `INSERT INTO strata_data.idempotency (tenant_id, scope, key, fingerprint, status, response)
     VALUES ($1, $2, $3, $4, 0, 'null') ON CONFLICT (tenant_id, scope, key) DO NOTHING RETURNING 1`,
    [tenantId, scope, key, print],
  );
  if (inserted.rows.length > 0) return undefined;
  const { rows } = await tx.query<{ fingerprint: string; status: number; response: unknown; fresh: boolean }>(
    `SELECT fingerprint, status, response, created_at > now() - make_interval(hours => $3::int) AS fresh
       FROM strata_data.idempotency WHERE scope = $1 AND key = $2 FOR UPDATE`,
    [scope, key, TTL_HOURS[kind]],
  );
  const row = rows[0];
  if (!row) throw new AppError('conflict', 'A request with this key was being forgotten; retry');
  if (!row.fresh) {
    // Past its time: the key starts over for this request.
    await tx.query(
      `UPDATE strata_data.idempotency SET fingerprint = $3, status = 0, response = 'null', created_at = now()
        WHERE scope = $1 AND key = $2`,
      [scope, key, print],
    );
    return undefined;
  }
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

/** Stores the response for a key this transaction claimed. */
export async function remember(tx: Queryable, scope: string, key: string, value: Remembered): Promise<void> {
  await tx.query('UPDATE strata_data.idempotency SET status = $3, response = $4::jsonb WHERE scope = $1 AND key = $2', [
    scope,
    key,
    value.status,
    JSON.stringify(value.response),
  ]);
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
