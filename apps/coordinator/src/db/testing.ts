import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { type Database, openDatabase } from './database';

/** The test PostgreSQL server (trust auth on these machines); FEDSYNTH_TEST_PG overrides. */
export const ADMIN_URL = process.env.FEDSYNTH_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A fresh, empty database on the real server: its URL, and drop() to remove it. */
export async function freshPostgresUrl(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `fedsynth_t_${randomBytes(5).toString('hex')}`;
  const admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return {
    url: ADMIN_URL.replace(/\/[^/]*$/, `/${name}`),
    drop: async () => {
      const c = new Client({ connectionString: ADMIN_URL });
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
