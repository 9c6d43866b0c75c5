import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../packages/server/src/config.js';
import { createStrata } from '../packages/server/src/main.js';
import type { ServerMessage } from './lib/protocol.js';
import { installQueryCounter, serveRunnerMessages } from './lib/query-counter.js';

/**
 * The full Strata stack in its own process: createStrata against the bench database (migrations,
 * plans, first operator key), listening on a free port, logging at warn. Started by bench/run.ts.
 */

installQueryCounter();

const databaseUrl = process.env.BENCH_TARGET_DATABASE_URL;
if (!databaseUrl) throw new Error('BENCH_TARGET_DATABASE_URL is not set');

const dataDir = mkdtempSync(join(tmpdir(), 'strata-bench-'));
// Other STRATA_* settings come from the environment, so `STRATA_X=... npm run bench` measures that configuration.
const config = loadConfig({
  ...process.env,
  DATABASE_URL: databaseUrl,
  STRATA_DATA_DIR: dataDir,
  STRATA_LOG_LEVEL: 'warn',
  HOST: '127.0.0.1',
  PORT: '0',
});
const strata = await createStrata(config);
await strata.app.listen({ host: config.host, port: 0 });
const { port } = strata.app.server.address() as AddressInfo;

serveRunnerMessages(async () => {
  await strata.close();
  rmSync(dataDir, { recursive: true, force: true });
});
const ready: ServerMessage = {
  type: 'ready',
  port,
  ...(strata.firstOperatorKey ? { operatorKey: strata.firstOperatorKey } : {}),
};
process.send?.(ready);
