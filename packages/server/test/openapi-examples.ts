import { randomUUID } from 'node:crypto';

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  const?: unknown;
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minimum?: number;
  minItems?: number;
  minProperties?: number;
  default?: unknown;
  examples?: unknown[];
};

let n = 0;

/** Builds a small value that satisfies a JSON Schema, so generated requests pass validation and reach the handler. */
export function exampleFor(schema: Schema | undefined): unknown {
  if (!schema) return undefined;
  if (schema.const !== undefined) return schema.const;
  if (schema.examples?.length) return schema.examples[0];
  if (schema.enum) return schema.enum[0];
  if (schema.anyOf) return exampleFor(schema.anyOf.find((s) => s.type !== 'null') ?? schema.anyOf[0]);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'object': {
      const props = schema.properties ?? {};
      const keys = new Set(schema.required ?? []);
      if (keys.size < (schema.minProperties ?? 0))
        for (const k of Object.keys(props).slice(0, schema.minProperties)) keys.add(k);
      return Object.fromEntries([...keys].map((k) => [k, exampleFor(props[k])]));
    }
    case 'array':
      return Array.from({ length: schema.minItems ?? 0 }, () => exampleFor(schema.items));
    case 'integer':
    case 'number':
      return schema.minimum ?? 1;
    case 'boolean':
      return true;
    case 'string':
      if (schema.format === 'uuid') return randomUUID();
      if (schema.format === 'email') return `probe${++n}@example.test`;
      if (schema.format === 'date-time') return new Date(Date.now() + 86_400_000).toISOString();
      if (schema.pattern) return `probe${++n}`;
      return `probe-${++n}`;
    default:
      return null;
  }
}

export interface Operation {
  method: string;
  path: string;
  body: unknown;
}

/** Every operation of the OpenAPI document, with a generated body where it takes one. */
export function operationsOf(doc: {
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Schema }> } }>>;
}): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const schema = op.requestBody?.content['application/json']?.schema;
      ops.push({ method: method.toUpperCase(), path, body: schema ? exampleFor(schema) : undefined });
    }
  }
  return ops;
}
