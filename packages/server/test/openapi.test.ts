import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiPathOf } from '../src/platform/http/schema.js';
import { type Harness, startHarness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe('OpenAPI document', () => {
  it('is OpenAPI 3.1 and lists every route the server registers, with responses and problem errors', async () => {
    const res = await h.call(undefined, 'GET', '/openapi.json');
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toBe('3.1.0');
    const documented = new Set(
      Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
      ),
    );
    const registered = h.strata.routes.filter((r) => !r.hidden).map((r) => `${r.method} ${openApiPathOf(r.url)}`);
    expect(registered.length).toBeGreaterThan(20);
    expect([...documented].sort()).toEqual([...new Set(registered)].sort());
    for (const [path, ops] of Object.entries(
      doc.paths as Record<string, Record<string, { responses: Record<string, unknown>; summary?: string }>>,
    )) {
      for (const [method, op] of Object.entries(ops)) {
        expect(op.summary, `${method} ${path} summary`).toBeTruthy();
        expect(Object.keys(op.responses), `${method} ${path}`).toEqual(expect.arrayContaining(['4XX']));
      }
    }
  });
});
