import type { Invitation, Member, Role } from '@strata/contract';
import type { Queryable } from '../../platform/db/driver.js';
import { iso, newId } from '../../platform/ids.js';

interface MemberRow {
  user_id: string;
  email: string;
  role: Role;
  created_at: Date;
  updated_at: Date;
}
export const toMember = (r: MemberRow): Member => ({
  user_id: r.user_id,
  email: r.email,
  role: r.role,
  created_at: iso(r.created_at) as string,
  updated_at: iso(r.updated_at) as string,
});

export interface InvitationRow {
  tenant_id: string;
  id: string;
  email: string;
  role: Role;
  expires_at: Date;
  accepted_at: Date | null;
  revoked_at: Date | null;
  created_at: Date;
}
export function toInvitation(r: InvitationRow, now = new Date()): Invitation {
  const status = r.accepted_at
    ? 'accepted'
    : r.revoked_at
      ? 'revoked'
      : new Date(r.expires_at) <= now
        ? 'expired'
        : 'pending';
  return {
    id: r.id,
    email: r.email,
    role: r.role,
    status,
    expires_at: iso(r.expires_at) as string,
    created_at: iso(r.created_at) as string,
  };
}

const MEMBER_COLUMNS = 'm.user_id, u.email, m.role, m.created_at, m.updated_at';

export async function listMembers(tx: Queryable, after: string | null, limit: number) {
  const { rows } = await tx.query<MemberRow>(
    `SELECT ${MEMBER_COLUMNS} FROM strata.memberships m JOIN strata.users u ON u.id = m.user_id
     WHERE ($1::uuid IS NULL OR m.user_id > $1::uuid) ORDER BY m.user_id LIMIT $2`,
    [after, limit + 1],
  );
  return rows;
}

/** Reads one membership and locks the tenant's owner rows, so concurrent demotions cannot remove the last owner. */
export async function lockMembership(tx: Queryable, userId: string) {
  const owners = await tx.query<{ user_id: string }>(
    `SELECT user_id FROM strata.memberships WHERE role = 'owner' FOR UPDATE`,
  );
  const { rows } = await tx.query<MemberRow>(
    `SELECT ${MEMBER_COLUMNS} FROM strata.memberships m JOIN strata.users u ON u.id = m.user_id
     WHERE m.user_id = $1 FOR UPDATE OF m`,
    [userId],
  );
  return { member: rows[0], ownerCount: owners.rows.length };
}

export async function setRole(tx: Queryable, userId: string, role: Role) {
  const { rows } = await tx.query<{ user_id: string }>(
    'UPDATE strata.memberships SET role = $2, updated_at = now() WHERE user_id = $1 RETURNING user_id',
    [userId, role],
  );
  return rows.length === 1;
}

export async function deleteMembership(tx: Queryable, userId: string) {
  await tx.query('DELETE FROM strata.memberships WHERE user_id = $1', [userId]);
}

/** Members plus pending invitations: what the `members` quota counts. */
export async function seatUsage(tx: Queryable): Promise<number> {
  const { rows } = await tx.query<{ n: number }>(
    `SELECT ((SELECT count(*) FROM strata.memberships) +
             (SELECT count(*) FROM strata.invitations
              WHERE accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()))::int AS n`,
  );
  return rows[0]?.n ?? 0;
}

export async function findUserByEmail(tx: Queryable, email: string) {
  const { rows } = await tx.query<{ id: string; email: string }>(
    'SELECT id, email FROM strata.users WHERE email = $1',
    [email],
  );
  return rows[0];
}

export async function upsertUser(tx: Queryable, email: string): Promise<{ id: string; email: string }> {
  await tx.query('INSERT INTO strata.users (id, email) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING', [
    newId(),
    email,
  ]);
  return (await findUserByEmail(tx, email)) as { id: string; email: string };
}

export async function insertMembership(tx: Queryable, tenantId: string, userId: string, role: Role) {
  const { rows } = await tx.query(
    `INSERT INTO strata.memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)
     ON CONFLICT DO NOTHING RETURNING user_id`,
    [tenantId, userId, role],
  );
  return rows.length === 1;
}

export async function insertInvitation(
  tx: Queryable,
  inv: { tenantId: string; id: string; email: string; role: Role; tokenHash: string; ttlHours: number },
) {
  const { rows } = await tx.query<InvitationRow>(
    `INSERT INTO strata.invitations (tenant_id, id, email, role, token_hash, expires_at)
     VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::double precision * 3600)) RETURNING *`,
    [inv.tenantId, inv.id, inv.email, inv.role, inv.tokenHash, inv.ttlHours],
  );
  return rows[0] as InvitationRow;
}

export async function listInvitations(tx: Queryable, after: string | null, limit: number) {
  const { rows } = await tx.query<InvitationRow>(
    `SELECT * FROM strata.invitations WHERE ($1::uuid IS NULL OR id > $1::uuid) ORDER BY id LIMIT $2`,
    [after, limit + 1],
  );
  return rows;
}

export async function revokeInvitation(tx: Queryable, id: string) {
  const { rows } = await tx.query<InvitationRow>(
    `UPDATE strata.invitations SET revoked_at = coalesce(revoked_at, now())
     WHERE id = $1 AND accepted_at IS NULL RETURNING *`,
    [id],
  );
  return rows[0];
}

/** Claims a usable invitation by its token hash (single use: the row is marked accepted in the same statement). */
export async function claimInvitation(tx: Queryable, tokenHash: string) {
  const { rows } = await tx.query<InvitationRow>(
    `UPDATE strata.invitations SET accepted_at = now()
     WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()
     RETURNING *`,
    [tokenHash],
  );
  return rows[0];
}
