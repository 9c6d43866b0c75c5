import { defineConfig } from 'vitest/config';

/**
 * Every suite runs on embedded PGlite. With STRATA_TEST_DATABASE_URL set, the same suites run again
 * against that PostgreSQL server; with STRATA_REQUIRE_SERVICES=1 a missing server fails the run.
 */
const databaseUrl = process.env.STRATA_TEST_DATABASE_URL;
if (process.env.STRATA_REQUIRE_SERVICES === '1' && !databaseUrl) {
  throw new Error('STRATA_REQUIRE_SERVICES=1 but STRATA_TEST_DATABASE_URL is not set');
}

const shared = {
  include: ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
  testTimeout: 60_000,
  hookTimeout: 120_000,
  pool: 'forks' as const,
};

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...shared,
          name: 'pglite',
          env: { STRATA_TEST_DRIVER: 'pglite' },
          globalSetup: ['packages/server/test/global-setup.ts'],
        },
      },
      ...(databaseUrl
        ? [
            {
              test: {
                ...shared,
                // Unit tests do not touch the database; only the integration suites run twice.
                include: ['packages/server/test/**/*.test.ts'],
                name: 'postgres',
                env: { STRATA_TEST_DRIVER: 'postgres' },
                globalSetup: ['packages/server/test/global-setup.ts'],
              },
            },
          ]
        : []),
    ],
  },
});
