/**
 * Reading a tenant's table a batch at a time, in key order, as JSON rows: what a move copies and a snapshot
 * writes out. Keyset pagination (each batch starts after the last key of the one before), so a batch costs
 * the same at the end of a large table as at its start.
 */

/** A read in the tenant's context (its own transaction, or a caller's), returning rows. */
export type Read = <R>(sql: string, params?: unknown[]) => Promise<R[]>;

const tuple = (n: number, from: number) => `(${Array.from({ length: n }, (_, i) => `$${i + from}`).join(', ')})`;

/** The key of the table's last row in key order, or null when the tenant has none. */
export async function lastKey(read: Read, table: string, key: string[]): Promise<unknown[] | null> {
  const [last] = await read<{ r: Record<string, unknown> }>(
    `SELECT to_jsonb(t) AS r FROM strata_data.${table} t ORDER BY ${key.map((k) => `${k} DESC`).join(', ')} LIMIT 1`,
  );
  return last ? key.map((k) => last.r[k]) : null;
}

/**
 * The table's rows in key order, `batch` at a time: `select` makes each row's JSON (the whole row by
 * default; it must keep the key columns), and `upTo` (a key) stops the scan after that row.
 */
export async function* scanTable(
  read: Read,
  table: string,
  key: string[],
  options: { batch: number; select?: string; upTo?: unknown[] | null },
): AsyncGenerator<Record<string, unknown>[]> {
  const keys = key.join(', ');
  let after: unknown[] | null = null;
  for (;;) {
    const conditions: string[] = [];
    const params: unknown[] = [];
    for (const [op, bound] of [
      ['>', after],
      ['<=', options.upTo],
    ] as const) {
      if (!bound) continue;
      conditions.push(`(${keys}) ${op} ${tuple(key.length, params.length + 1)}`);
      params.push(...bound);
    }
    const rows = await read<{ r: Record<string, unknown> }>(
      `SELECT ${options.select ?? 'to_jsonb(t)'} AS r FROM strata_data.${table} t
        WHERE ${conditions.length > 0 ? conditions.join(' AND ') : 'true'} ORDER BY ${keys} LIMIT ${options.batch}`,
      params,
    );
    if (rows.length === 0) return;
    yield rows.map((x) => x.r);
    if (rows.length < options.batch) return;
    const last = rows[rows.length - 1]?.r as Record<string, unknown>;
    after = key.map((k) => last[k]);
  }
}
