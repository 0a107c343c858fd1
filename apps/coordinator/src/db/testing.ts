import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { type Database, openDatabase } from './database';

/**
 * The test suite's own PostgreSQL server (trust auth, superuser `postgres`), which vitest's
 * globalSetup (test/services/global-setup.ts) starts and names in FEDSYNTH_TEST_PG.
 */
export function adminUrl(): string {
  const url = process.env.FEDSYNTH_TEST_PG;
  if (!url) {
    throw new Error(
      "FEDSYNTH_TEST_PG is not set: run the tests through vitest with the repository's vitest.config.mts " +
        '(`npm test`), whose globalSetup starts a PostgreSQL server for them.',
    );
  }
  return url;
}

/** A fresh, empty database on the real server: its URL, and drop() to remove it. */
export async function freshPostgresUrl(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `fedsynth_t_${randomBytes(5).toString('hex')}`;
  const adminUrlNow = adminUrl();
  const admin = new Client({ connectionString: adminUrlNow });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return {
    url: adminUrlNow.replace(/\/[^/]*$/, `/${name}`),
    drop: async () => {
      const c = new Client({ connectionString: adminUrlNow });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** A fresh database on the real server, dropped by the returned close(). */
export async function freshPostgres(): Promise<Database> {
  const { url, drop } = await freshPostgresUrl();
  const db = await openDatabase({ databaseUrl: url, dataDir: tmpdir() });
  return {
    ...db,
    close: async () => {
      await db.close();
      await drop();
    },
  };
}

/** A fresh embedded database in a temporary directory. */
export function freshEmbedded(): Promise<Database> {
  return openDatabase({ dataDir: mkdtempSync(join(tmpdir(), 'fedsynth-embedded-')) });
}

/** Both kinds, for tests that must hold on each. */
export const DATABASES: [string, () => Promise<Database>][] = [
  ['PostgreSQL', freshPostgres],
  ['embedded PGlite', freshEmbedded],
];
