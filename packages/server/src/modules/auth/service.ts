import type { Me } from '@strata/contract';
import type { Platform } from '../../platform/context.js';
import type { Queryable } from '../../platform/db/driver.js';
import { withSystem } from '../../platform/db/tenant-context.js';
import { AppError } from '../../platform/errors.js';
import { iso, newId } from '../../platform/ids.js';
import { hashSecret, issueToken, parseToken } from '../../platform/tokens.js';
import type { Principal } from './credentials.js';

export interface IssuedSession {
  token: string;
  user: { id: string; email: string };
  expires_at: string;
}

export class AuthService {
  constructor(private readonly platform: Platform) {}

  async #createSession(tx: Queryable, user: { id: string; email: string }): Promise<IssuedSession> {
    const t = issueToken('session');
    const { rows } = await tx.query<{ expires_at: Date }>(
      `INSERT INTO strata.sessions (id, public_id, user_id, secret_hash, expires_at)
       VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::double precision * 3600)) RETURNING expires_at`,
      [newId(), t.publicId, user.id, t.secretHash, this.platform.config.sessionTtlHours],
    );
    return { token: t.token, user, expires_at: iso(rows[0]?.expires_at ?? null) as string };
  }

  createSession(user: { id: string; email: string }): Promise<IssuedSession> {
    return withSystem(this.platform.db, (tx) => this.#createSession(tx, user));
  }

  /** Mails a one-time login token to a known user. Answers the same whether or not the email is known. */
  async requestLogin(email: string): Promise<void> {
    const normalized = email.trim().toLowerCase();
    const t = issueToken('login');
    const user = await withSystem(this.platform.db, async (tx) => {
      const { rows } = await tx.query<{ id: string }>('SELECT id FROM strata.users WHERE email = $1', [normalized]);
      const found = rows[0];
      if (!found) return undefined;
      await tx.query(
        `INSERT INTO strata.login_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, now() + interval '15 minutes')`,
        [hashSecret(t.token), found.id],
      );
      return found;
    });
    if (!user) return;
    await this.platform.mailer.send({
      to: normalized,
      subject: 'Your Strata sign-in token',
      text: `Exchange this single-use token for a session within 15 minutes:\n\n  POST ${this.platform.config.publicUrl}/v1/auth/sessions {"token":"${t.token}"}\n`,
    });
  }

  async exchangeLoginToken(token: string): Promise<IssuedSession> {
    if (parseToken(token)?.kind !== 'login') throw new AppError('token_invalid');
    return withSystem(this.platform.db, async (tx) => {
      const { rows } = await tx.query<{ id: string; email: string }>(
        `UPDATE strata.login_tokens l SET used_at = now() FROM strata.users u
         WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > now() AND u.id = l.user_id
         RETURNING u.id, u.email`,
        [hashSecret(token)],
      );
      const user = rows[0];
      if (!user) throw new AppError('token_invalid');
      return this.#createSession(tx, user);
    });
  }

  async revokeSession(sessionId: string): Promise<void> {
    await withSystem(this.platform.db, (tx) =>
      tx.query('UPDATE strata.sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [sessionId]),
    );
  }

  async describe(principal: Principal): Promise<Me> {
    switch (principal.kind) {
      case 'operator':
        return { kind: 'operator', id: principal.id, name: principal.name };
      case 'api_key':
        return {
          kind: 'api_key',
          id: principal.id,
          name: principal.name,
          tenant_id: principal.tenantId,
          scopes: principal.scopes,
        };
      case 'user': {
        const memberships = await withSystem(this.platform.db, async (tx) => {
          const { rows } = await tx.query<{ tenant_id: string; role: string }>(
            `SELECT m.tenant_id, m.role FROM strata.memberships m JOIN strata.tenants t ON t.id = m.tenant_id
             WHERE m.user_id = $1 AND t.status <> 'deleted' ORDER BY m.tenant_id`,
            [principal.id],
          );
          return rows;
        });
        return { kind: 'user', id: principal.id, email: principal.email, memberships } as Me;
      }
    }
  }
}

/** Creates an operator key (first start, or `strata keys create --operator`). Returns the token, shown once. */
export async function createOperatorKey(
  db: Platform['db'],
  name: string,
): Promise<{ id: string; token: string; prefix: string }> {
  const t = issueToken('operator');
  const id = newId();
  await withSystem(db, (tx) =>
    tx.query('INSERT INTO strata.operator_keys (id, public_id, name, secret_hash) VALUES ($1, $2, $3, $4)', [
      id,
      t.publicId,
      name,
      t.secretHash,
    ]),
  );
  return { id, token: t.token, prefix: t.prefix };
}

export async function countOperatorKeys(db: Platform['db']): Promise<number> {
  return withSystem(db, async (tx) => {
    const { rows } = await tx.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM strata.operator_keys WHERE revoked_at IS NULL',
    );
    return rows[0]?.n ?? 0;
  });
}
