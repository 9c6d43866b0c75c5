import type { Invitation, Role } from '@strata/contract';
import type { Platform } from '../../platform/context.js';
import { withSystem, withTenant } from '../../platform/db/tenant-context.js';
import { AppError, errors } from '../../platform/errors.js';
import { decodeCursor, toPage } from '../../platform/http/pagination.js';
import { newId } from '../../platform/ids.js';
import { hashSecret, issueToken, parseToken } from '../../platform/tokens.js';
import * as store from './store.js';

/** Who is acting: a member's role, or null for the operator and API keys with tenant:admin (admin-level, never owner-level). */
export type ActorRole = Role | null;
const isOwnerLevel = (actor: ActorRole, operator: boolean) => operator || actor === 'owner';

export class MemberService {
  constructor(private readonly platform: Platform) {}

  async list(tenantId: string, query: { limit?: number; cursor?: string }) {
    const limit = query.limit ?? 50;
    const rows = await withTenant(this.platform.db, tenantId, (tx) =>
      store.listMembers(tx, decodeCursor(query.cursor), limit),
    );
    return toPage(rows, limit, (r) => r.user_id, store.toMember);
  }

  /** Creates an invitation and mails its single-use token; `operator` is true when the operator acts. */
  async invite(
    tenantId: string,
    input: { email: string; role: Role },
    actor: ActorRole,
    operator: boolean,
  ): Promise<Invitation> {
    if (input.role === 'owner' && !isOwnerLevel(actor, operator)) {
      throw new AppError('forbidden', 'Only an owner can invite another owner');
    }
    const email = input.email.trim().toLowerCase();
    const token = issueToken('invitation');
    const parsed = parseToken(token.token);
    if (!parsed) throw new Error('issued an unparsable token');
    const row = await withTenant(this.platform.db, tenantId, async (tx) => {
      const ent = await this.platform.plans.forTenant(tx, tenantId);
      this.platform.plans.requireQuota(ent, 'members', await store.seatUsage(tx));
      const existing = await tx.query(
        `SELECT 1 FROM strata.memberships m JOIN strata.users u ON u.id = m.user_id WHERE u.email = $1`,
        [email],
      );
      if (existing.rows.length > 0) throw new AppError('already_member', `${email} is already a member`);
      return store.insertInvitation(tx, {
        tenantId,
        id: newId(),
        email,
        role: input.role,
        tokenHash: token.secretHash,
        ttlHours: this.platform.config.invitationTtlHours,
      });
    });
    await this.platform.mailer.send({
      to: email,
      subject: 'You are invited to a Strata organization',
      text: [
        `You have been invited to join a Strata organization as ${input.role}.`,
        '',
        'Accept the invitation with:',
        `  curl -X POST ${this.platform.config.publicUrl}/v1/invitations/accept \\`,
        `       -H 'content-type: application/json' -d '{"token":"${token.token}"}'`,
        '',
        `The invitation expires at ${new Date(row.expires_at).toISOString()} and can be used once.`,
      ].join('\n'),
    });
    return store.toInvitation(row);
  }

  async listInvitations(tenantId: string, query: { limit?: number; cursor?: string }) {
    const limit = query.limit ?? 50;
    const rows = await withTenant(this.platform.db, tenantId, (tx) =>
      store.listInvitations(tx, decodeCursor(query.cursor), limit),
    );
    return toPage(
      rows,
      limit,
      (r) => r.id,
      (r) => store.toInvitation(r),
    );
  }

  async revokeInvitation(tenantId: string, id: string): Promise<Invitation> {
    const row = await withTenant(this.platform.db, tenantId, (tx) => store.revokeInvitation(tx, id));
    if (!row) throw errors.notFound('invitation');
    return store.toInvitation(row);
  }

  /** Accepts an invitation: creates the user if new and the membership; the token cannot be used again. */
  async accept(token: string): Promise<{ userId: string; email: string; tenantId: string; role: Role }> {
    const parsed = parseToken(token);
    if (parsed?.kind !== 'invitation') throw new AppError('invitation_invalid');
    return withSystem(this.platform.db, async (tx) => {
      const inv = await store.claimInvitation(tx, hashSecret(parsed.secret));
      if (!inv) throw new AppError('invitation_invalid');
      const status = await tx.query<{ status: string }>('SELECT status FROM strata.tenants WHERE id = $1', [
        inv.tenant_id,
      ]);
      if (status.rows[0]?.status !== 'active')
        throw new AppError('invitation_invalid', 'The organization is not active');
      const user = await store.upsertUser(tx, inv.email);
      if (!(await store.insertMembership(tx, inv.tenant_id, user.id, inv.role))) {
        throw new AppError('already_member', `${inv.email} is already a member`);
      }
      return { userId: user.id, email: user.email, tenantId: inv.tenant_id, role: inv.role };
    });
  }

  async changeRole(tenantId: string, userId: string, role: Role, actor: ActorRole, operator: boolean) {
    return withTenant(this.platform.db, tenantId, async (tx) => {
      const { member, ownerCount } = await store.lockMembership(tx, userId);
      if (!member) throw errors.notFound('member');
      if ((member.role === 'owner' || role === 'owner') && !isOwnerLevel(actor, operator)) {
        throw new AppError('forbidden', 'Only an owner can grant or change the owner role');
      }
      if (member.role === 'owner' && role !== 'owner' && ownerCount <= 1) {
        throw new AppError('last_owner', 'Make another member owner before demoting the last owner');
      }
      await store.setRole(tx, userId, role);
      return store.toMember({ ...member, role, updated_at: new Date() });
    });
  }

  async remove(tenantId: string, userId: string, actor: ActorRole, operator: boolean): Promise<void> {
    await withTenant(this.platform.db, tenantId, async (tx) => {
      const { member, ownerCount } = await store.lockMembership(tx, userId);
      if (!member) throw errors.notFound('member');
      if (member.role === 'owner' && !isOwnerLevel(actor, operator)) {
        throw new AppError('forbidden', 'Only an owner can remove an owner');
      }
      if (member.role === 'owner' && ownerCount <= 1) {
        throw new AppError('last_owner', 'A tenant must keep at least one owner');
      }
      await store.deleteMembership(tx, userId);
    });
  }
}
