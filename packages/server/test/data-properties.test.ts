import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, type Harness, startHarness, type TestTenant } from './harness.js';

/**
 * Random interleaved writes from two tenants and several clients (HTTP writes, batches and sync pushes,
 * sharing document ids across tenants on purpose), then three properties:
 *   1. each tenant sees exactly its own documents (every document carries its tenant's mark);
 *   2. replaying a tenant's change feed from zero rebuilds exactly what its document list shows;
 *   3. every acknowledged write is in the feed with the version and data it was acknowledged with,
 *      and the feed's sequence numbers are 1..N with no gap or duplicate.
 */

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const ids = ['d0', 'd1', 'd2', 'd3', 'd4'];
const value = fc.record(
  { n: fc.integer({ min: 0, max: 5 }), s: fc.constantFrom('x', 'y', 'zz') },
  { requiredKeys: [] },
);

type Op =
  | { kind: 'create' | 'put' | 'patch'; tenant: number; id: string; data: Record<string, unknown> }
  | { kind: 'delete'; tenant: number; id: string }
  | { kind: 'push'; tenant: number; client: number; id: string; base: number; data: Record<string, unknown> | null }
  | { kind: 'batch'; tenant: number; a: string; b: string; data: Record<string, unknown> };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constantFrom('create', 'put', 'patch'),
    tenant: fc.nat(1),
    id: fc.constantFrom(...ids),
    data: value,
  }),
  fc.record({ kind: fc.constant('delete'), tenant: fc.nat(1), id: fc.constantFrom(...ids) }),
  fc.record({
    kind: fc.constant('push'),
    tenant: fc.nat(1),
    client: fc.nat(2),
    id: fc.constantFrom(...ids),
    base: fc.nat(4),
    data: fc.option(value, { nil: null }),
  }),
  fc.record({
    kind: fc.constant('batch'),
    tenant: fc.nat(1),
    a: fc.constantFrom(...ids),
    b: fc.constantFrom(...ids),
    data: value,
  }),
) as fc.Arbitrary<Op>;

interface Ack {
  id: string;
  version: number;
  data: Record<string, unknown> | null;
}

let mutation = 0;

async function run(tenants: TestTenant[], o: Op, acks: Ack[][]): Promise<void> {
  const t = tenants[o.tenant] as TestTenant;
  const mark = { owner: t.id };
  const docs = `/v1/tenants/${t.id}/collections/c/documents`;
  const record = (doc: { id: string; version: number; data: Record<string, unknown> | null }) =>
    acks[o.tenant]?.push({ id: doc.id, version: doc.version, data: doc.data });
  switch (o.kind) {
    case 'create': {
      const r = await h.call(t.adminKey, 'POST', docs, { id: o.id, data: { ...o.data, ...mark } });
      if (r.statusCode === 201) record(r.json());
      else expect(r.statusCode).toBe(409);
      return;
    }
    case 'put': {
      const r = await h.call(t.adminKey, 'PUT', `${docs}/${o.id}`, { data: { ...o.data, ...mark } });
      expect([200, 201]).toContain(r.statusCode);
      record(r.json());
      return;
    }
    case 'patch': {
      const r = await h.call(t.adminKey, 'PATCH', `${docs}/${o.id}`, o.data);
      if (r.statusCode === 200) record(r.json());
      else expect(r.statusCode).toBe(404);
      return;
    }
    case 'delete': {
      const r = await h.call(t.adminKey, 'DELETE', `${docs}/${o.id}`);
      expect([204, 404]).toContain(r.statusCode);
      return;
    }
    case 'push': {
      const mutationId = `m${++mutation}`;
      const body = {
        client_id: `client-${o.client}`,
        mutations: [
          {
            mutation_id: mutationId,
            collection: 'c',
            id: o.id,
            base_version: o.base,
            ...(o.data ? { data: { ...o.data, ...mark } } : { deleted: true }),
          },
        ],
      };
      const r = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/sync/push`, body);
      expect(r.statusCode, r.body).toBe(200);
      const result = r.json().results[0];
      expect(['applied', 'conflict']).toContain(result.status);
      if (result.status === 'applied') {
        acks[o.tenant]?.push({ id: o.id, version: result.version, data: o.data ? { ...o.data, ...mark } : null });
        // A retry of the same mutation answers the same and writes nothing new.
        const again = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/sync/push`, body);
        expect(again.json().results[0]).toEqual(result);
      }
      return;
    }
    case 'batch': {
      const r = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/batch`, {
        operations: [
          { op: 'put', collection: 'c', id: o.a, data: { ...o.data, ...mark } },
          { op: 'create', collection: 'c', id: o.b, data: { ...o.data, ...mark } },
        ],
      });
      if (r.statusCode === 200) for (const x of r.json().results) record(x.document);
      else expect(r.json().code).toBe('batch_failed');
      return;
    }
  }
}

async function feedOf(t: TestTenant) {
  const changes: {
    seq: number;
    id: string;
    version: number;
    deleted: boolean;
    data: Record<string, unknown> | null;
  }[] = [];
  let since = 0;
  for (;;) {
    const page = (await h.call(t.adminKey, 'GET', `/v1/tenants/${t.id}/changes?since=${since}&limit=7`)).json();
    changes.push(...page.changes);
    since = page.checkpoint.seq;
    if (!page.has_more) return changes;
  }
}

describe('data API properties', () => {
  it('two tenants, several clients, interleaved writes: isolation, replay and acknowledged writes hold', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(op, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 8 }),
        async (rounds) => {
          const tenants = [await createTenant(h), await createTenant(h)];
          for (const t of tenants) await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/collections`, { name: 'c' });
          const acks: Ack[][] = [[], []];
          // The operations of a round run concurrently, so their order is up to the server.
          for (const round of rounds) await Promise.all(round.map((o) => run(tenants, o, acks)));

          for (const [i, t] of tenants.entries()) {
            const listed = (
              await h.call(t.adminKey, 'GET', `/v1/tenants/${t.id}/collections/c/documents?limit=500`)
            ).json().data as { id: string; version: number; data: Record<string, unknown> }[];
            // 1. Only this tenant's documents.
            for (const d of listed) expect(d.data.owner).toBe(t.id);

            // 2. The feed replays to the same state.
            const feed = await feedOf(t);
            expect(feed.map((c) => c.seq)).toEqual(feed.map((_, k) => k + 1));
            const replayed = new Map<string, { version: number; data: Record<string, unknown> | null }>();
            for (const c of feed) {
              const before = replayed.get(c.id);
              expect(c.version).toBe((before?.version ?? 0) + 1);
              replayed.set(c.id, { version: c.version, data: c.deleted ? null : c.data });
            }
            const live = [...replayed.entries()]
              .filter(([, v]) => v.data !== null)
              .map(([id, v]) => ({ id, version: v.version, data: v.data }))
              .sort((a, b) => (a.id < b.id ? -1 : 1));
            expect(listed.map((d) => ({ id: d.id, version: d.version, data: d.data }))).toEqual(live);

            // 3. Every acknowledged write is in the feed as acknowledged.
            for (const ack of acks[i] as Ack[]) {
              const change = feed.find((c) => c.id === ack.id && c.version === ack.version);
              expect(change, `${ack.id} v${ack.version}`).toBeDefined();
              expect(change?.deleted ? null : change?.data).toEqual(ack.data);
            }
          }
        },
      ),
      { numRuns: 30, endOnFailure: true },
    );
  });
});
