import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { ERROR_CATALOG } from './errors.js';
import { API_KEY_SCOPES, ROLES } from './permissions.js';

const literalUnion = <T extends readonly string[]>(values: T) => Type.Union(values.map((v) => Type.Literal(v)));

export const Uuid = Type.String({ format: 'uuid' });
export const Timestamp = Type.String({ format: 'date-time' });
export const Slug = Type.String({ pattern: '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$', minLength: 1, maxLength: 63 });
export const Region = Type.String({ pattern: '^[a-z0-9-]{1,32}$' });
export const RoleSchema = literalUnion(ROLES);
export const ScopeSchema = literalUnion(API_KEY_SCOPES);

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    code: literalUnion(Object.keys(ERROR_CATALOG)),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String()),
    request_id: Type.Optional(Type.String()),
    errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
  },
  { $id: 'Problem', additionalProperties: true },
);

export const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
export type ListQuery = Static<typeof ListQuery>;

export const page = <T extends TSchema>(item: T) =>
  Type.Object({ data: Type.Array(item), next_cursor: Type.Union([Type.String(), Type.Null()]) });

// ---- plans ----
export const QUOTA_NAMES = [
  'storage_bytes',
  'max_file_bytes',
  'api_calls_per_month',
  'requests_per_second',
  'documents',
  'collections',
  'members',
  'api_keys',
  'webhook_endpoints',
] as const;
export type QuotaName = (typeof QUOTA_NAMES)[number];

export const FEATURE_NAMES = [
  'webhooks',
  'dedicated_datastore',
  'byod_datastore',
  'private_data_sharing',
  'field_encryption',
  'budgets',
  'audit_export',
  'sso',
  'data_residency',
] as const;
export type FeatureName = (typeof FEATURE_NAMES)[number];

/** A quota is a number, or null for unlimited. */
const QuotaValue = Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]);
export const Quotas = Type.Object(
  Object.fromEntries(QUOTA_NAMES.map((q) => [q, QuotaValue])) as Record<QuotaName, typeof QuotaValue>,
  { additionalProperties: false },
);
export const Features = Type.Object(
  Object.fromEntries(FEATURE_NAMES.map((f) => [f, Type.Boolean()])) as Record<
    FeatureName,
    ReturnType<typeof Type.Boolean>
  >,
  { additionalProperties: false },
);
export const Plan = Type.Object(
  {
    id: Type.String({ pattern: '^[a-z0-9_-]{1,40}$' }),
    name: Type.String({ minLength: 1 }),
    rank: Type.Integer({
      minimum: 0,
      description: 'Ordering from cheapest to richest; used to name the plan that would allow something',
    }),
    price_cents_per_month: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
    datastores: Type.Array(literalUnion(['shared', 'dedicated', 'byod'] as const), { minItems: 1 }),
    data_sharing: Type.Array(literalUnion(['communal', 'private'] as const), { minItems: 1 }),
    quotas: Quotas,
    features: Features,
    self_serve: Type.Boolean({ description: 'false for plans only the operator assigns (custom)' }),
  },
  { additionalProperties: false },
);
export type Plan = Static<typeof Plan>;
export const PlanList = Type.Object({ data: Type.Array(Plan) });

/** Per-tenant overrides (plan `custom`, or operator grants on any plan). */
export const PlanOverrides = Type.Object(
  {
    quotas: Type.Optional(Type.Partial(Quotas, { additionalProperties: false })),
    features: Type.Optional(Type.Partial(Features, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type PlanOverrides = Static<typeof PlanOverrides>;

// ---- tenants ----
export const TenantStatus = literalUnion(['active', 'suspended', 'deleted'] as const);
export const Tenant = Type.Object({
  id: Uuid,
  slug: Slug,
  name: Type.String(),
  plan: Type.String(),
  plan_overrides: PlanOverrides,
  status: TenantStatus,
  data_region: Region,
  allowed_regions: Type.Array(Region),
  created_at: Timestamp,
  updated_at: Timestamp,
  suspended_at: Type.Union([Timestamp, Type.Null()]),
  deleted_at: Type.Union([Timestamp, Type.Null()]),
  purge_after: Type.Union([Timestamp, Type.Null()]),
});
export type Tenant = Static<typeof Tenant>;

export const CreateTenant = Type.Object(
  {
    slug: Slug,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    plan: Type.Optional(Type.String({ maxLength: 40 })),
    plan_overrides: Type.Optional(PlanOverrides),
    data_region: Type.Optional(Region),
    allowed_regions: Type.Optional(Type.Array(Region, { minItems: 1, maxItems: 32, uniqueItems: true })),
    owner_email: Type.Optional(Type.String({ format: 'email', maxLength: 320 })),
  },
  { additionalProperties: false },
);
export type CreateTenant = Static<typeof CreateTenant>;

export const UpdateTenant = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    plan: Type.Optional(Type.String({ maxLength: 40 })),
    plan_overrides: Type.Optional(PlanOverrides),
    allowed_regions: Type.Optional(Type.Array(Region, { minItems: 1, maxItems: 32, uniqueItems: true })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateTenant = Static<typeof UpdateTenant>;

export const TenantListQuery = Type.Composite([ListQuery, Type.Object({ status: Type.Optional(TenantStatus) })], {
  additionalProperties: false,
});

export const CreatedTenant = Type.Composite([
  Tenant,
  Type.Object({
    owner_invitation: Type.Optional(Type.Object({ id: Uuid, email: Type.String(), expires_at: Timestamp })),
  }),
]);

// ---- members, invitations, sessions ----
export const Member = Type.Object({
  user_id: Uuid,
  email: Type.String(),
  role: RoleSchema,
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type Member = Static<typeof Member>;
export const UpdateMember = Type.Object({ role: RoleSchema }, { additionalProperties: false });

export const Invitation = Type.Object({
  id: Uuid,
  email: Type.String(),
  role: RoleSchema,
  status: literalUnion(['pending', 'accepted', 'revoked', 'expired'] as const),
  expires_at: Timestamp,
  created_at: Timestamp,
});
export type Invitation = Static<typeof Invitation>;
export const CreateInvitation = Type.Object(
  { email: Type.String({ format: 'email', maxLength: 320 }), role: RoleSchema },
  { additionalProperties: false },
);
export const TokenBody = Type.Object(
  { token: Type.String({ minLength: 10, maxLength: 200 }) },
  { additionalProperties: false },
);
export const LoginBody = Type.Object(
  { email: Type.String({ format: 'email', maxLength: 320 }) },
  { additionalProperties: false },
);
export const Session = Type.Object({
  token: Type.String({ description: 'Bearer token for the session; shown once' }),
  user: Type.Object({ id: Uuid, email: Type.String() }),
  expires_at: Timestamp,
});
export const AcceptedInvitation = Type.Composite([Session, Type.Object({ tenant_id: Uuid, role: RoleSchema })]);

// ---- API keys ----
export const ApiKey = Type.Object({
  id: Uuid,
  name: Type.String(),
  prefix: Type.String({ description: 'The visible, non-secret start of the key' }),
  scopes: Type.Array(ScopeSchema),
  created_at: Timestamp,
  expires_at: Type.Union([Timestamp, Type.Null()]),
  revoked_at: Type.Union([Timestamp, Type.Null()]),
  last_used_at: Type.Union([Timestamp, Type.Null()]),
});
export type ApiKey = Static<typeof ApiKey>;
export const CreateApiKey = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    scopes: Type.Array(ScopeSchema, { minItems: 1, uniqueItems: true }),
    expires_at: Type.Optional(Timestamp),
  },
  { additionalProperties: false },
);
export const CreatedApiKey = Type.Composite([
  ApiKey,
  Type.Object({ secret: Type.String({ description: 'The full key; shown once' }) }),
]);

// ---- identity ----
export const Me = Type.Object({
  kind: literalUnion(['operator', 'api_key', 'user'] as const),
  id: Uuid,
  name: Type.Optional(Type.String()),
  email: Type.Optional(Type.String()),
  tenant_id: Type.Optional(Uuid),
  scopes: Type.Optional(Type.Array(ScopeSchema)),
  memberships: Type.Optional(Type.Array(Type.Object({ tenant_id: Uuid, role: RoleSchema }))),
});
export type Me = Static<typeof Me>;
