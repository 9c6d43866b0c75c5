import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, type Harness, startHarness, type TestTenant } from './harness.js';

let h: Harness;
let t: TestTenant;
let other: TestTenant;
beforeAll(async () => {
  h = await startHarness();
  t = await createTenant(h);
  other = await createTenant(h);
});
afterAll(async () => {
  await h?.close();
});

/** A small deterministic generator, so every run searches the same points. */
function random(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

type Metric = 'cosine' | 'l2' | 'inner_product';
const distance: Record<Metric, (a: number[], b: number[]) => number> = {
  l2: (a, b) => Math.sqrt(a.reduce((s, x, i) => s + (x - (b[i] as number)) ** 2, 0)),
  cosine: (a, b) => {
    const dot = a.reduce((s, x, i) => s + x * (b[i] as number), 0);
    const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    return 1 - dot / (norm(a) * norm(b));
  },
  inner_product: (a, b) => -a.reduce((s, x, i) => s + x * (b[i] as number), 0),
};

interface Point {
  id: string;
  embedding: number[];
  category: string;
}

const DIMS = 4;
const next = random(42);
const points: Point[] = Array.from({ length: 80 }, (_, i) => ({
  id: `p${String(i).padStart(3, '0')}`,
  embedding: Array.from({ length: DIMS }, () => Math.round((next() * 2 - 1) * 1000) / 1000),
  category: i % 3 === 0 ? 'a' : 'b',
}));

/** The expected answer, computed here by brute force in double precision. */
function nearest(query: number[], metric: Metric, k: number, keep: (p: Point) => boolean = () => true) {
  return points
    .filter(keep)
    .map((p) => ({ id: p.id, d: distance[metric](p.embedding, query) }))
    .sort((x, y) => x.d - y.d || (x.id < y.id ? -1 : 1))
    .slice(0, k);
}

const url = (tenant: TestTenant, path = '') => `/v1/tenants/${tenant.id}/collections/items${path}`;

describe('vector search', () => {
  beforeAll(async () => {
    for (const tenant of [t, other]) {
      const made = await h.call(tenant.adminKey, 'POST', `/v1/tenants/${tenant.id}/collections`, {
        name: 'items',
        vector: { field: 'embedding', dimensions: DIMS, metric: 'cosine' },
      });
      expect(made.statusCode, made.body).toBe(201);
    }
    const operations = points.map((p) => ({
      op: 'create',
      collection: 'items',
      id: p.id,
      data: { embedding: p.embedding, category: p.category },
    }));
    expect((await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/batch`, { operations })).statusCode).toBe(200);
    // The other tenant has points right on top of every query: none may ever show up in t's results.
    const decoys = points.slice(0, 20).map((p) => ({
      op: 'create',
      collection: 'items',
      id: `decoy-${p.id}`,
      data: { embedding: p.embedding, category: p.category },
    }));
    expect(
      (await h.call(other.adminKey, 'POST', `/v1/tenants/${other.id}/batch`, { operations: decoys })).statusCode,
    ).toBe(200);
  });

  it('builds an HNSW index where pgvector exists and reports which path a search took', async () => {
    const hnsw = await h.db.query<{ indexdef: string }>(
      "SELECT indexdef FROM pg_indexes WHERE schemaname = 'strata_data' AND indexname LIKE 'strata_vx_%'",
    );
    const hasPgvector = (await h.db.query("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).rows.length > 0;
    if (hasPgvector) {
      expect(hnsw.rows.length).toBeGreaterThanOrEqual(2);
      expect(hnsw.rows[0]?.indexdef).toMatch(/USING hnsw .*vector_cosine_ops.*WHERE/);
    } else {
      expect(hnsw.rows).toEqual([]);
    }
    const r = await h.call(t.adminKey, 'POST', url(t, '/search'), { vector: [1, 0, 0, 0], k: 3 });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().exact).toBe(!hasPgvector);
  });

  for (const metric of ['cosine', 'l2', 'inner_product'] as const) {
    it(`${metric}: the index path and the exact path return the brute-force answer`, async () => {
      const q = random(metric.length);
      for (let round = 0; round < 5; round++) {
        const vector = Array.from({ length: DIMS }, () => Math.round((q() * 2 - 1) * 1000) / 1000);
        const expected = nearest(vector, metric, 7);
        for (const exact of [false, true]) {
          const r = await h.call(t.adminKey, 'POST', url(t, '/search'), { vector, k: 7, metric, exact });
          expect(r.statusCode, r.body).toBe(200);
          const got = r.json().data as { distance: number; document: { id: string } }[];
          expect(
            got.map((g) => g.document.id),
            `${metric} exact=${exact} round ${round}`,
          ).toEqual(expected.map((e) => e.id));
          got.forEach((g, i) => {
            // pgvector keeps single-precision floats; the exact SQL path computes in double precision.
            expect(g.distance).toBeCloseTo(expected[i]?.d as number, 4);
          });
        }
      }
    });
  }

  it('applies a filter before taking the top k, and leaves out deleted documents and documents without an embedding', async () => {
    const vector = [0.5, -0.2, 0.1, 0.9];
    const inA = (p: Point) => p.category === 'a';
    const expected = nearest(vector, 'cosine', 5, inA).map((e) => e.id);
    for (const exact of [false, true]) {
      const r = await h.call(t.adminKey, 'POST', url(t, '/search'), {
        vector,
        k: 5,
        exact,
        filter: { path: 'category', op: 'eq', value: 'a' },
        fields: ['category'],
      });
      expect(r.json().data.map((g: { document: { id: string } }) => g.document.id)).toEqual(expected);
      expect(r.json().data[0].document.data).toEqual({ category: 'a' });
    }
    const top = expected[0] as string;
    expect((await h.call(t.adminKey, 'DELETE', url(t, `/documents/${top}`))).statusCode).toBe(204);
    expect(
      (await h.call(t.adminKey, 'POST', url(t, '/documents'), { id: 'flat', data: { category: 'a' } })).statusCode,
    ).toBe(201);
    for (const exact of [false, true]) {
      const r = await h.call(t.adminKey, 'POST', url(t, '/search'), {
        vector,
        k: 5,
        exact,
        filter: { path: 'category', op: 'eq', value: 'a' },
      });
      const ids = r.json().data.map((g: { document: { id: string } }) => g.document.id);
      expect(ids).not.toContain(top);
      expect(ids).not.toContain('flat');
      expect(ids).toEqual(nearest(vector, 'cosine', 5, (p) => inA(p) && p.id !== top).map((e) => e.id));
    }
  });

  it("never returns another tenant's vectors", async () => {
    for (const exact of [false, true]) {
      const r = await h.call(t.adminKey, 'POST', url(t, '/search'), { vector: points[0]?.embedding, k: 50, exact });
      const ids: string[] = r.json().data.map((g: { document: { id: string } }) => g.document.id);
      expect(ids).toHaveLength(50);
      expect(ids.some((id) => id.startsWith('decoy-'))).toBe(false);
      const theirs = await h.call(other.adminKey, 'POST', url(other, '/search'), {
        vector: points[0]?.embedding,
        k: 50,
        exact,
      });
      expect(theirs.json().data.every((g: { document: { id: string } }) => g.document.id.startsWith('decoy-'))).toBe(
        true,
      );
    }
    const stranger = await h.call(other.adminKey, 'POST', url(t, '/search'), { vector: [1, 0, 0, 0] });
    expect(stranger.statusCode).toBe(404);
  });

  it('refuses wrong dimensions, bad embeddings and collections without a vector field', async () => {
    const wrong = await h.call(t.adminKey, 'POST', url(t, '/search'), { vector: [1, 2] });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().errors[0].path).toBe('body/vector');
    for (const embedding of [[1, 2, 3], ['a', 1, 2, 3], [1, 2, 3, 4, 5], 'text']) {
      const bad = await h.call(t.adminKey, 'POST', url(t, '/documents'), { data: { embedding } });
      expect(bad.statusCode, JSON.stringify(embedding)).toBe(400);
      expect(bad.json().errors[0].path).toBe('data/embedding');
    }
    await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/collections`, { name: 'plain' });
    const plain = await h.call(t.adminKey, 'POST', `/v1/tenants/${t.id}/collections/plain/search`, { vector: [1] });
    expect(plain.statusCode).toBe(400);
    expect(plain.json().code).toBe('bad_request');
    // The vector field can be declared later while the collection is empty, not once it holds documents.
    const declared = await h.call(t.adminKey, 'PATCH', `/v1/tenants/${t.id}/collections/plain`, {
      vector: { field: 'e', dimensions: 2, metric: 'l2' },
    });
    expect(declared.statusCode, declared.body).toBe(200);
    expect(declared.json().vector).toEqual({ field: 'e', dimensions: 2, metric: 'l2' });
    const changed = await h.call(t.adminKey, 'PATCH', `/v1/tenants/${t.id}/collections/items`, { vector: null });
    expect(changed.statusCode).toBe(409);
  });
});
