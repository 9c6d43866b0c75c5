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
  close(): Promise<void>;
}
