import { type TSchema, Type } from '@sinclair/typebox';
import { Problem } from '@strata/contract';

const { $id: _omit, ...ProblemInline } = Problem as typeof Problem & { $id?: string };

export const TenantParams = Type.Object({ tenantId: Type.String({ format: 'uuid' }) });

/** Standard responses: the success schema plus problem+json for every error. */
export function responses(ok: Record<number, TSchema>) {
  return { ...ok, '4XX': ProblemInline, '5XX': ProblemInline };
}

export const NoContent = Type.Null({ description: 'No content' });
