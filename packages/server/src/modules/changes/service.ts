import type { Platform } from '../../platform/context.js';
import { AppError } from '../../platform/errors.js';
import { iso } from '../../platform/ids.js';
import type { TenantAccess } from '../auth/credentials.js';
import { claim, fingerprint, remember } from '../documents/idempotency.js';
import { type Checkpoint, changeKey, type DocumentService } from '../documents/service.js';
import { applyWrite, type Document } from '../documents/write.js';

export interface Change {
  seq: number;
  collection: string;
  id: string;
  version: number;
  deleted: boolean;
  data: Record<string, unknown> | null;
  at: string;
  client_id: string | null;
  mutation_id: string | null;
}

export interface ChangePage {
  changes: Change[];
  checkpoint: Checkpoint;
  has_more: boolean;
}

export interface Mutation {
  mutation_id: string;
  collection: string;
  id: string;
  base_version: number;
  data?: Record<string, unknown>;
  deleted?: boolean;
}

export type MutationResult =
  | { mutation_id: string; status: 'applied'; version: number; seq: number }
  | { mutation_id: string; status: 'conflict'; current: Document | null }
  | { mutation_id: string; status: 'rejected'; error: { code: string; detail: string } };

interface ChangeRow {
  epoch: number;
  last_seq: number;
  seq: number | null;
  collection: string;
  doc_id: string;
  version: number;
  deleted: boolean;
  body: Record<string, unknown> | null;
  at: Date;
  client_id: string | null;
  mutation_id: string | null;
}

/**
 * The change feed and the sync protocol (docs/sync.md). Sequence numbers come from the write path
 * (documents/write.ts), which commits a tenant's changes in sequence order; the feed reads the
 * committed checkpoint and the changes up to it in one statement, so it never skips a change that a
 * later read would reveal.
 */
export class ChangeService {
  constructor(
    private readonly platform: Platform,
    private readonly documents: DocumentService,
  ) {}

  async feed(
    tenantId: string,
    input: { since?: number; epoch?: number; limit?: number; collection?: string },
  ): Promise<ChangePage> {
    const since = input.since ?? 0;
    const limit = input.limit ?? 100;
    const rows = await this.platform.router.withTenant(tenantId, async (tx) => {
      const r = await tx.query<ChangeRow>(
        `WITH s AS (
           SELECT coalesce(max(epoch), 1) AS epoch, coalesce(max(last_seq), 0) AS last_seq FROM strata_data.tenant_sequences
         )
         SELECT s.epoch, s.last_seq, c.seq, c.collection, c.doc_id, c.version, c.deleted, c.body, c.at, c.client_id, c.mutation_id
           FROM s LEFT JOIN LATERAL (
             SELECT * FROM strata_data.changes
              WHERE seq > $1 AND seq <= s.last_seq AND ($3::text IS NULL OR collection = $3)
              ORDER BY seq LIMIT $2
           ) c ON true`,
        [since, limit + 1, input.collection ?? null],
      );
      return r.rows;
    });
    const head = rows[0] as ChangeRow;
    const checkpointSeq = Number(head.last_seq);
    if (input.epoch !== undefined && input.epoch !== head.epoch) {
      throw new AppError('resync_required', `The tenant is on epoch ${head.epoch}; sync again from seq 0`, {
        epoch: head.epoch,
      });
    }
    if (since > checkpointSeq) {
      throw new AppError('resync_required', `since=${since} is past the tenant's last change (${checkpointSeq})`, {
        epoch: head.epoch,
      });
    }
    const found = rows.filter((r) => r.seq !== null);
    const more = found.length > limit;
    const page = (more ? found.slice(0, limit) : found).map(toChange);
    const last = page[page.length - 1];
    return {
      changes: page,
      checkpoint: { epoch: head.epoch, seq: more && last ? last.seq : checkpointSeq },
      has_more: more,
    };
  }

  /** Applies a client's mutations compare-and-set, each on its own; a retried mutation returns its first result. */
  async push(
    access: TenantAccess,
    input: { client_id: string; mutations: Mutation[] },
  ): Promise<{ results: MutationResult[]; checkpoint: Checkpoint }> {
    const ctx = this.documents.writeContext(access);
    const scope = `sync:${input.client_id}`;
    const results = await this.documents.write(access.tenantId, async (tx) => {
      const results: MutationResult[] = [];
      for (const m of input.mutations) {
        const print = fingerprint(m);
        let before: Awaited<ReturnType<typeof claim>>;
        try {
          before = await claim(tx, access.tenantId, 'sync', scope, m.mutation_id, print);
        } catch (err) {
          if (!(err instanceof AppError) || err.code !== 'idempotency_key_reused') throw err;
          // Only this mutation is refused, and nothing is remembered for it: the id keeps its first result.
          results.push({
            mutation_id: m.mutation_id,
            status: 'rejected',
            error: { code: err.code, detail: err.message },
          });
          continue;
        }
        if (before) {
          results.push(before.response as MutationResult);
          continue;
        }
        let result: MutationResult;
        try {
          if ((m.data === undefined) === (m.deleted !== true)) {
            throw new AppError('validation_failed', 'A mutation carries either data or deleted: true');
          }
          const out = await applyWrite(
            tx,
            { ...ctx, origin: { clientId: input.client_id, mutationId: m.mutation_id } },
            m.deleted
              ? { op: 'delete', collection: m.collection, id: m.id }
              : { op: 'put', collection: m.collection, id: m.id, data: m.data },
            { baseVersion: m.base_version },
          );
          // The sequence number is assigned at commit; it is looked up (for replays too) below.
          result = { mutation_id: m.mutation_id, status: 'applied', version: out.document.version, seq: 0 };
        } catch (err) {
          if (!(err instanceof AppError)) throw err;
          result =
            err.code === 'version_conflict'
              ? { mutation_id: m.mutation_id, status: 'conflict', current: (err.extra.current as Document) ?? null }
              : { mutation_id: m.mutation_id, status: 'rejected', error: { code: err.code, detail: err.message } };
        }
        await remember(tx, scope, m.mutation_id, { status: 200, response: result });
        results.push(result);
      }
      return results;
    });
    const applied = input.mutations.flatMap((m, i) => {
      const r = results[i];
      return r?.status === 'applied' ? [{ collection: m.collection, id: m.id, version: r.version }] : [];
    });
    const { seqs, checkpoint } = await this.documents.committed(access.tenantId, applied);
    input.mutations.forEach((m, i) => {
      const r = results[i];
      if (r?.status === 'applied') r.seq = seqs.get(changeKey(m.collection, m.id, r.version)) ?? 0;
    });
    return { results, checkpoint };
  }
}

function toChange(r: ChangeRow): Change {
  return {
    seq: Number(r.seq),
    collection: r.collection,
    id: r.doc_id,
    version: Number(r.version),
    deleted: r.deleted,
    data: r.body,
    at: iso(r.at) as string,
    client_id: r.client_id,
    mutation_id: r.mutation_id,
  };
}
