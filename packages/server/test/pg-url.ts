/** The same server and credentials, another database. */
export function databaseUrlFor(base: string, database: string): string {
  const url = new URL(base);
  url.pathname = `/${database}`;
  return url.toString();
}

/** A maintenance database to run CREATE/DROP DATABASE from. */
export function adminUrl(base: string): string {
  return databaseUrlFor(base, 'postgres');
}
