import { AppError } from '../errors.js';
import type { Database, Queryable, QueryResult } from './driver.js';

/** The role every request runs as: owns nothing, not superuser, no BYPASSRLS (checked by a test). */
export const APP_ROLE = 'strata_app';
/** Control-plane role for cross-tenant lookups (auth, operator listings); its policies exist only on control tables. */
export const SYSTEM_ROLE = 'strata_system';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/**
 * All tenant data access goes through here: a transaction whose role and tenant context are
 * transaction-local, so a pooled connection never carries one tenant's context into another request.
 * The tenant id is checked against a strict UUID pattern before it is written into the prelude,
 * which lets BEGIN, the role and the context travel in one round trip.
 */
export function withTenant<T>(db: Database, tenantId: string, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  if (!isUuid(tenantId)) throw new AppError('not_found', 'The tenant does not exist');
  return db.transaction(
    fn,
    `SET LOCAL ROLE ${APP_ROLE}; SELECT set_config('strata.tenant_id', '${tenantId.toLowerCase()}', true);`,
  );
}

/**
 * A read-only transaction that sees the tenant's data as of one instant (REPEATABLE READ), however long it
 * runs while writers go on: what a snapshot reads.
 */
export function withTenantSnapshot<T>(db: Database, tenantId: string, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  if (!isUuid(tenantId)) throw new AppError('not_found', 'The tenant does not exist');
  return db.transaction(
    fn,
    `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL ROLE ${APP_ROLE};
     SELECT set_config('strata.tenant_id', '${tenantId.toLowerCase()}', true);`,
  );
}

/**
 * A one-statement read in the tenant's context in a single round trip: BEGIN, role, context, the
 * statement and COMMIT travel together. The statement takes no parameters; build it with sqlLiteral().
 */
export function readInTenant<R>(db: Database, tenantId: string, statement: string): Promise<QueryResult<R>> {
  if (!isUuid(tenantId)) throw new AppError('not_found', 'The tenant does not exist');
  return db.script<R>(
    `SET LOCAL ROLE ${APP_ROLE}; SELECT set_config('strata.tenant_id', '${tenantId.toLowerCase()}', true);`,
    statement,
  );
}

/**
 * A tenant write: withTenant, plus (in the same round trip) making sure the tenant's row in
 * strata_data.tenant_sequences exists. Change rows written in the transaction are numbered from that row
 * as the transaction commits (tenant migration 0005), which is the only moment writers of one tenant
 * wait for each other.
 */
/**
 * How long a write waits for a lock (a document another write holds, the tenant's sequence row while
 * another commit completes) before it gives up with 503 and Retry-After instead of hanging.
 */
export const WRITE_LOCK_TIMEOUT = '5s';

export function withTenantWrite<T>(db: Database, tenantId: string, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  if (!isUuid(tenantId)) throw new AppError('not_found', 'The tenant does not exist');
  const id = tenantId.toLowerCase();
  return db.transaction(
    fn,
    `SET LOCAL ROLE ${APP_ROLE}; SELECT set_config('strata.tenant_id', '${id}', true);
     SET LOCAL lock_timeout = '${WRITE_LOCK_TIMEOUT}';
     INSERT INTO strata_data.tenant_sequences (tenant_id) VALUES ('${id}') ON CONFLICT (tenant_id) DO NOTHING;`,
  );
}

/** Control-plane work that is not about one tenant (resolving a credential, listing tenants for the operator). */
export function withSystem<T>(db: Database, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(fn, `SET LOCAL ROLE ${SYSTEM_ROLE}; SELECT set_config('strata.tenant_id', '', true);`);
}

/**
 * Sets columns of one control-plane row by id: the progress records of background work (moves, snapshots).
 * Column names come from the caller's code, never from a request.
 */
export async function updateById(
  db: Database,
  table: 'strata.moves' | 'strata.snapshots',
  id: string,
  fields: Record<string, unknown>,
): Promise<void> {
  const names = Object.keys(fields);
  if (names.some((n) => !/^[a-z_]+$/.test(n))) throw new Error('invalid column name');
  await withSystem(db, (tx) =>
    tx.query(`UPDATE ${table} SET ${names.map((n, i) => `${n} = $${i + 2}`).join(', ')} WHERE id = $1`, [
      id,
      ...Object.values(fields),
    ]),
  );
}
