/**
 * The driver seam: everything above this file talks to Postgres through these two interfaces,
 * whether the server is embedded PGlite or a real PostgreSQL server via node-postgres.
 */
export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  /** One parameterized statement (extended protocol). */
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<QueryResult<R>>;
  /** One or more statements without parameters (simple protocol), e.g. migrations. */
  exec(sql: string): Promise<void>;
}

export interface Database extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /**
   * Runs fn inside a transaction on one connection. `prelude` (parameterless SQL) is sent in the same
   * round trip as BEGIN, which is how withTenant sets its context without an extra round trip.
   * Never call the outer Database from inside fn: use the tx handle.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, prelude?: string): Promise<T>;
  /**
   * BEGIN, `prelude`, one `statement` and COMMIT in a single round trip (simple protocol), returning the
   * statement's rows. The statement cannot take parameters: every value in it must come from sqlLiteral().
   */
  script<R = Record<string, unknown>>(prelude: string, statement: string): Promise<QueryResult<R>>;
  /**
   * Subscribes to NOTIFY on a channel (every node on the same database hears what one node announces).
   * `onGap` is called when notifications may have been missed (the listening connection was lost and is
   * back), so that whatever they would have invalidated can be dropped. Returns the unsubscribe function.
   */
  listen(channel: string, onPayload: (payload: string) => void, onGap?: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** Channel names are identifiers Strata chooses; anything else is refused. */
export function checkChannel(channel: string): string {
  if (!/^[a-z][a-z0-9_]{0,62}$/.test(channel)) throw new Error(`invalid notification channel ${channel}`);
  return channel;
}

const SAFE_TEXT = /^[A-Za-z0-9_.:-]{0,256}$/;

/**
 * A SQL literal for a value that has already been validated against a strict pattern (ids, names).
 * It refuses anything that could need quoting, so a script can never be changed by a value.
 */
export function sqlLiteral(value: string | number): string {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error('sqlLiteral: not a safe integer');
    return String(value);
  }
  if (!SAFE_TEXT.test(value)) throw new Error('sqlLiteral: value has characters that need quoting');
  return `'${value}'`;
}
