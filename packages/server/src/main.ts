import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { apiKeyRoutes } from './modules/api-keys/routes.js';
import { ApiKeyService } from './modules/api-keys/service.js';
import { AuthCache } from './modules/auth/cache.js';
import { type AccessRule, authPlugin } from './modules/auth/plugin.js';
import { authRoutes } from './modules/auth/routes.js';
import { AuthService, countOperatorKeys, createOperatorKey } from './modules/auth/service.js';
import { ChangeNotifier } from './modules/changes/notifier.js';
import { changeRoutes } from './modules/changes/routes.js';
import { ChangeService } from './modules/changes/service.js';
import { IndexManager } from './modules/collections/indexes.js';
import { collectionRoutes } from './modules/collections/routes.js';
import { CollectionService } from './modules/collections/service.js';
import { documentRoutes } from './modules/documents/routes.js';
import { DocumentService } from './modules/documents/service.js';
import { fileRoutes } from './modules/files/routes.js';
import { FileService } from './modules/files/service.js';
import { memberRoutes } from './modules/members/routes.js';
import { MemberService } from './modules/members/service.js';
import { MoveService } from './modules/placement/move.js';
import { DatastoreRouter } from './modules/placement/router.js';
import { moveRoutes, placementRoutes } from './modules/placement/routes.js';
import { loadPlans, syncPlans } from './modules/plans/catalog.js';
import { PlanCatalog } from './modules/plans/entitlements.js';
import { planRoutes } from './modules/plans/routes.js';
import { snapshotRoutes } from './modules/snapshots/routes.js';
import { SnapshotService } from './modules/snapshots/service.js';
import { tenantRoutes } from './modules/tenants/routes.js';
import { TenantService } from './modules/tenants/service.js';
import type { Platform } from './platform/context.js';
import type { Database } from './platform/db/driver.js';
import { migrate } from './platform/db/migrate.js';
import { openPostgres } from './platform/db/pg-driver.js';
import { openPglite } from './platform/db/pglite-driver.js';
import { healthRoutes } from './platform/http/health.js';
import { frameworkErrors, installProblemHandlers } from './platform/http/problem.js';
import { documentWildcard } from './platform/http/schema.js';
import { installValidators } from './platform/http/validation.js';
import { fileKeyring } from './platform/keyring.js';
import { createLogger } from './platform/logger.js';
import { outboxMailer } from './platform/mail.js';
import { ObjectStores } from './platform/objects/open.js';

export interface Strata {
  app: FastifyInstance;
  platform: Platform;
  services: {
    tenants: TenantService;
    members: MemberService;
    auth: AuthService;
    apiKeys: ApiKeyService;
    collections: CollectionService;
    documents: DocumentService;
    files: FileService;
    snapshots: SnapshotService;
    changes: ChangeService;
    moves: MoveService;
  };
  /** Set when this boot created the first operator key: the only time its secret is shown. */
  firstOperatorKey: string | undefined;
  /** Every registered route with its access rule (tests check each is documented and guarded as declared). */
  routes: { method: string; url: string; hidden: boolean; access: AccessRule }[];
  close(): Promise<void>;
}

export interface StrataOptions {
  /** Use this database instead of opening one from config (tests pass a cloned template). */
  db?: Database;
  logger?: Logger;
}

/** Opens the configured database: PostgreSQL when DATABASE_URL is set, embedded PGlite in the data dir otherwise. */
export async function openDatabase(config: Config): Promise<Database> {
  if (config.databaseUrl) return openPostgres(config.databaseUrl);
  return openPglite({ dataDir: `${config.dataDir}/pg` });
}

/** The composition root: config -> platform -> modules -> http. Read top to bottom, it is the whole system. */
export async function createStrata(config: Config, options: StrataOptions = {}): Promise<Strata> {
  // platform
  const log = options.logger ?? createLogger(config.logLevel);
  const db = options.db ?? (await openDatabase(config));
  await migrate(db);
  const plans = new PlanCatalog(loadPlans(config.plansFile));
  await syncPlans(db, plans.plans);
  const firstOperatorKey =
    (await countOperatorKeys(db)) === 0 ? (await createOperatorKey(db, 'first operator key')).token : undefined;
  const keyring = fileKeyring(config.masterKeyFile);
  const authCache = new AuthCache<unknown, unknown>(config.authCacheSeconds * 1000);
  const router = new DatastoreRouter(db, config, keyring, log);
  await router.listen();
  const objects = new ObjectStores(config.objectStores, router, log);
  const platform: Platform = {
    config,
    db,
    router,
    objects,
    log,
    plans,
    mailer: outboxMailer(config.mailDir, log),
    keyring,
    authCache,
  };

  // modules
  const members = new MemberService(platform);
  const indexes = new IndexManager(log);
  const tenants = new TenantService(platform, members, indexes);
  const auth = new AuthService(platform);
  const apiKeys = new ApiKeyService(platform);
  const notifier = new ChangeNotifier();
  const collections = new CollectionService(platform, notifier, indexes);
  const documents = new DocumentService(platform, notifier, indexes);
  const files = new FileService(platform);
  const changes = new ChangeService(platform, documents);
  const moves = new MoveService(platform, indexes);
  const snapshots = new SnapshotService(platform, indexes, moves);
  tenants.beforePurge.push((tenantId) => moves.finishAll(tenantId));
  tenants.beforePurge.push((tenantId) => snapshots.removeAll(tenantId));
  files.sweepHolds.push((tenantId) => snapshots.isTaking(tenantId));
  tenants.beforePurge.push((tenantId) => files.purgeTenant(tenantId));

  // http
  const app: FastifyInstance = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
    requestIdHeader: false,
    return503OnClosing: true,
    frameworkErrors,
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  // The API speaks JSON only; anything else is a 415, not a string handed to the schema.
  app.removeContentTypeParser('text/plain');
  installValidators(app);
  installProblemHandlers(app);
  const routes: Strata['routes'] = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) {
      if (method !== 'HEAD') {
        routes.push({ method, url: r.url, hidden: Boolean(r.schema?.hide), access: (r.config ?? {}) as AccessRule });
      }
    }
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Strata API', version: '0.1.0', description: 'Multi-tenant data plane' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: documentWildcard,
  });
  await app.register(authPlugin, platform);
  healthRoutes(app, platform);
  planRoutes(app, platform);
  placementRoutes(app, platform, moves);
  moveRoutes(app, platform, moves);
  snapshotRoutes(app, platform, snapshots);
  tenantRoutes(app, tenants);
  memberRoutes(app, members);
  apiKeyRoutes(app, apiKeys);
  authRoutes(app, auth, members);
  collectionRoutes(app, collections);
  documentRoutes(app, documents);
  fileRoutes(app, files);
  changeRoutes(app, platform, changes, notifier);
  await app.ready();
  // A move interrupted by a restart is finished or undone before this node serves the tenant.
  await moves.recover().catch((err) => log.error({ err, type: 'move.recover' }, 'could not recover moves'));

  const purgeTimer = setInterval(() => {
    tenants.purgeDue().catch((err) => log.error({ err, type: 'tenants.purge' }, 'tenant purge failed'));
    moves.finishDue().catch((err) => log.error({ err, type: 'moves.finish' }, 'dropping moved sources failed'));
    files.sweepDue().catch((err) => log.error({ err, type: 'files.sweep' }, 'orphan blob sweep failed'));
  }, 60_000);
  purgeTimer.unref();

  return {
    app,
    platform,
    services: { tenants, members, auth, apiKeys, collections, documents, files, changes, moves, snapshots },
    firstOperatorKey,
    routes,
    async close() {
      clearInterval(purgeTimer);
      await app.close();
      await router.close();
      await objects.close();
      // A database handed in by the caller stays the caller's to close.
      if (!options.db) await db.close();
    },
  };
}
