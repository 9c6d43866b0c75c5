import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Credentials are `<kind>_<public id>_<secret>`. The public id finds the row (and is the visible
 * prefix); only a SHA-256 of the 256-bit secret is stored. A slow hash adds nothing for secrets
 * this long and would cost every request.
 */
export const TOKEN_KINDS = {
  operator: 'sto',
  apiKey: 'stk',
  session: 'sts',
  invitation: 'sti',
  login: 'stl',
} as const;
export type TokenKind = keyof typeof TOKEN_KINDS;

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
function publicId(): string {
  return [...randomBytes(12)].map((b) => ALPHABET[b & 31]).join('');
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface IssuedToken {
  token: string;
  publicId: string;
  prefix: string;
  secretHash: string;
}

export function issueToken(kind: TokenKind): IssuedToken {
  const id = publicId();
  const secret = randomBytes(32).toString('base64url');
  const prefix = `${TOKEN_KINDS[kind]}_${id}`;
  return { token: `${prefix}_${secret}`, publicId: id, prefix, secretHash: hashSecret(secret) };
}

export interface ParsedToken {
  kind: TokenKind;
  publicId: string;
  secret: string;
}

const TOKEN = /^(st[oksil])_([a-z2-7]{12})_([A-Za-z0-9_-]{43})$/;

export function parseToken(token: string): ParsedToken | undefined {
  const m = TOKEN.exec(token);
  if (!m) return undefined;
  const kind = (Object.keys(TOKEN_KINDS) as TokenKind[]).find((k) => TOKEN_KINDS[k] === m[1]);
  return kind ? { kind, publicId: m[2] as string, secret: m[3] as string } : undefined;
}
