import { readFileSync } from 'node:fs';
import { ERROR_CATALOG } from '@strata/contract';
import { describe, expect, it } from 'vitest';

const root = new URL('../../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

describe('docs stay in step with the code', () => {
  it('docs/errors.md has a row for every code in the catalog, with its status', () => {
    const doc = read('docs/errors.md');
    for (const [code, { status }] of Object.entries(ERROR_CATALOG)) {
      expect(doc, code).toMatch(new RegExp(`\\|\\s*\`${code}\`\\s*\\|\\s*${status}\\s*\\|`));
    }
  });

  it('docs/configuration.md documents every environment variable config.ts reads', () => {
    const source = read('packages/server/src/config.ts');
    const vars = [...source.matchAll(/^ {2}([A-Z][A-Z0-9_]+): Type\./gm)].map((m) => m[1]);
    expect(vars.length).toBeGreaterThan(10);
    const doc = read('docs/configuration.md');
    for (const v of vars) expect(doc, v).toContain(`\`${v}\``);
  });

  it('the README starts with the two commands', () => {
    const readme = read('README.md');
    const block = /```sh\n([\s\S]*?)```/.exec(readme)?.[1]?.trim().split('\n');
    expect(block).toEqual(['npm install && npm start', 'npm install && npm test']);
  });
});
