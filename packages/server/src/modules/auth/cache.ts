import { createHash } from 'node:crypto';

/**
 * A short-lived, in-process memory of resolved credentials and tenant access, so a busy API key does
 * not cost two control-plane transactions per request. Entries live for `ttlMs` (STRATA_AUTH_CACHE_SECONDS);
 * every successful change to credentials, memberships or tenants on this node clears the whole cache
 * before its response is sent, so this node never serves a revoked key. Other nodes may for at most
 * the TTL. Tokens are kept only as SHA-256 digests.
 */
export class AuthCache<P, A> {
  readonly #principals = new Map<string, { value: P; until: number }>();
  readonly #access = new Map<string, { value: A; until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  get enabled(): boolean {
    return this.ttlMs > 0;
  }

  static keyOf(token: string): string {
    return createHash('sha256').update(token).digest('base64url');
  }

  principal(tokenKey: string): P | undefined {
    return this.#read(this.#principals, tokenKey);
  }

  /** `expiresAt` (ms since the epoch) caps the entry's life at the credential's own expiry. */
  rememberPrincipal(tokenKey: string, value: P, expiresAt?: number): void {
    this.#write(this.#principals, tokenKey, value, expiresAt);
  }

  access(key: string): A | undefined {
    return this.#read(this.#access, key);
  }

  rememberAccess(key: string, value: A): void {
    this.#write(this.#access, key, value);
  }

  clear(): void {
    this.#principals.clear();
    this.#access.clear();
  }

  #read<V>(map: Map<string, { value: V; until: number }>, key: string): V | undefined {
    const entry = map.get(key);
    if (!entry) return undefined;
    if (entry.until <= Date.now()) {
      map.delete(key);
      return undefined;
    }
    return entry.value;
  }

  #write<V>(map: Map<string, { value: V; until: number }>, key: string, value: V, cap = Infinity): void {
    if (!this.enabled) return;
    if (map.size >= this.maxEntries) map.clear();
    map.set(key, { value, until: Math.min(Date.now() + this.ttlMs, cap) });
  }
}
