import { isUuid } from '../db/tenant-context.js';
import { AppError } from '../errors.js';

/** Cursors are opaque to clients: the last id of the page, base64url-encoded. Ids are time-ordered UUIDs. */
export function encodeCursor(id: string): string {
  return Buffer.from(id).toString('base64url');
}

export function decodeCursor(cursor: string | undefined): string | null {
  if (cursor === undefined) return null;
  const id = Buffer.from(cursor, 'base64url').toString();
  if (!isUuid(id)) throw new AppError('bad_request', 'The cursor is not one this API returned');
  return id;
}

/** Given limit+1 rows, returns the page and the next cursor. */
export function toPage<T, R>(rows: R[], limit: number, idOf: (r: R) => string, map: (r: R) => T) {
  const more = rows.length > limit;
  const pageRows = more ? rows.slice(0, limit) : rows;
  const last = pageRows[pageRows.length - 1];
  return { data: pageRows.map(map), next_cursor: more && last ? encodeCursor(idOf(last)) : null };
}
