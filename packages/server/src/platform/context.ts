import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { AuthCache } from '../modules/auth/cache.js';
import type { DatastoreRouter } from '../modules/placement/router.js';
import type { PlanCatalog } from '../modules/plans/entitlements.js';
import type { Database } from './db/driver.js';
import type { Keyring } from './keyring.js';
import type { Mailer } from './mail.js';
import type { ObjectStores } from './objects/open.js';

/** What the composition root hands every module. */
export interface Platform {
  config: Config;
  /** The control database (tenants, members, credentials). Tenant data is reached through `router`. */
  db: Database;
  log: Logger;
  plans: PlanCatalog;
  mailer: Mailer;
  keyring: Keyring;
  /** Where each tenant's data lives: every tenant-data access asks it for the tenant's datastore. */
  router: DatastoreRouter;
  /** Where each tenant's files live: files code asks objects.forTenant(tenantId) for the tenant's object store. */
  objects: ObjectStores;
  /** Resolved credentials and tenant access, remembered briefly (modules/auth/cache.ts). */
  authCache: AuthCache<unknown, unknown>;
}
