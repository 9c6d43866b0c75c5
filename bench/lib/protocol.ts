/** Messages between the bench runner and the server processes it forks (over the IPC channel). */

export interface StatementStats {
  /** The SQL text, whitespace collapsed and UUIDs replaced by <uuid>. */
  statement: string;
  count: number;
  totalMs: number;
}

export interface QueryStats {
  /** SQL statements sent (each client.query call is one round trip to PostgreSQL). */
  queries: number;
  /** Sum of the time from sending each statement to receiving its result. */
  totalMs: number;
  statements: StatementStats[];
  /** Statements sent and not yet answered. */
  inFlight: number;
  /** CPU time (user + system) the server process used since the last reset. */
  cpuMs: number;
}

export type ServerMessage =
  | { type: 'ready'; port: number; operatorKey?: string }
  | { type: 'stats'; stats: QueryStats }
  | { type: 'reset' };

/** reset starts a new count; with `detail` each statement's text is also recorded (costs CPU, so not under load). */
export type RunnerMessage = { type: 'reset'; detail?: boolean } | { type: 'stats' } | { type: 'shutdown' };
