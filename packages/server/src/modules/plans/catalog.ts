import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { Plan } from '@strata/contract';
import type { Queryable } from '../../platform/db/driver.js';

export const DEFAULT_PLANS_FILE = join(dirname(fileURLToPath(import.meta.url)), '../../../config/plans.json');

const PlansFile = Type.Object({ plans: Type.Array(Plan, { minItems: 1 }) }, { additionalProperties: false });

/** Reads and validates a plans file; a broken file stops the boot with every problem listed. */
export function loadPlans(file = DEFAULT_PLANS_FILE): Plan[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`Cannot read plans file ${file}: ${(err as Error).message}`);
  }
  const problems = [...Value.Errors(PlansFile, parsed)].map((e) => `${e.path}: ${e.message}`);
  if (problems.length > 0) throw new Error(`Invalid plans file ${file}:\n  - ${problems.join('\n  - ')}`);
  const plans = (parsed as { plans: Plan[] }).plans;
  const ids = new Set(plans.map((p) => p.id));
  if (ids.size !== plans.length) throw new Error(`Invalid plans file ${file}: plan ids must be unique`);
  return [...plans].sort((a, b) => a.rank - b.rank);
}

/** Writes the plan catalog into the reference table (tenants reference plan ids). Runs as the owner at boot. */
export async function syncPlans(db: Queryable, plans: Plan[]): Promise<void> {
  for (const plan of plans) {
    await db.query(
      `INSERT INTO strata.plans (id, definition) VALUES ($1, $2)
       ON CONFLICT (id) DO UPDATE SET definition = EXCLUDED.definition, updated_at = now()
       WHERE strata.plans.definition IS DISTINCT FROM EXCLUDED.definition`,
      [plan.id, JSON.stringify(plan)],
    );
  }
}
