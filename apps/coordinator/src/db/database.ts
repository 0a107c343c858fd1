import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataSource } from 'typeorm';
import { ENTITIES } from './entities';
import { MIGRATIONS } from './migrations';

/** An open database: PostgreSQL through `pg`, or the embedded PGlite served on a private socket. */
export interface Database {
  kind: 'postgres' | 'embedded';
  dataSource: DataSource;
  /** Where it lives, for messages: the URL without its password, or the data directory. */
  location: string;
  close(): Promise<void>;
}

/** Refused to open: another process holds the embedded data directory, or the server is unreachable. */
export class DatabaseError extends Error {
  constructor(
    readonly code: 'LOCKED' | 'UNREACHABLE' | 'MIGRATION_FAILED',
    message: string,
  ) {
    super(message);
    this.name = 'DatabaseError';
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the data directory's lock file: PGlite does not stop a second process from opening the same
 * directory (and that process's writes are silently lost), so the coordinator refuses it. A lock
 * left by a process that no longer runs is taken over.
 */
function lockDataDir(dir: string): () => void {
  const path = join(dir, 'embedded-db.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && (pid === process.pid || alive(pid))) {
        throw new DatabaseError(
          'LOCKED',
          `the embedded database in ${dir} is in use by process ${pid}; stop it, or point DATABASE_URL at a PostgreSQL server to run several coordinators`,
        );
      }
      rmSync(path, { force: true });
    }
  }
  throw new DatabaseError('LOCKED', `cannot take the lock ${path}`);
}

async function migrate(ds: DataSource, where: string): Promise<void> {
  try {
    await ds.runMigrations({ transaction: 'all' });
  } catch (err) {
    throw new DatabaseError('MIGRATION_FAILED', `migrating ${where} failed: ${(err as Error).message}`);
  }
}

/**
 * Opens the coordinator's database and brings its schema up to date with the migrations:
 * PostgreSQL when `databaseUrl` is given, otherwise an embedded PostgreSQL (PGlite) persisted in
 * `<dataDir>/pgdata`, served to TypeORM's ordinary postgres driver over a unix socket in the data
 * directory with exactly one connection (PGlite interleaves queries of concurrent connections).
 */
export async function openDatabase(opts: { databaseUrl?: string; dataDir: string }): Promise<Database> {
  if (opts.databaseUrl) {
    const dataSource = new DataSource({
      type: 'postgres',
      url: opts.databaseUrl,
      entities: ENTITIES,
      migrations: MIGRATIONS,
      synchronize: false,
      logging: false,
    });
    try {
      await dataSource.initialize();
    } catch (err) {
      throw new DatabaseError(
        'UNREACHABLE',
        `cannot connect to ${redact(opts.databaseUrl)}: ${(err as Error).message}`,
      );
    }
    await migrate(dataSource, redact(opts.databaseUrl));
    return {
      kind: 'postgres',
      dataSource,
      location: redact(opts.databaseUrl),
      close: () => dataSource.destroy(),
    };
  }
  const dir = resolve(opts.dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const unlock = lockDataDir(dir);
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
    const db = await PGlite.create(join(dir, 'pgdata'));
    const socketPath = join(dir, '.s.PGSQL.5432');
    rmSync(socketPath, { force: true });
    const server = new PGLiteSocketServer({ db, path: socketPath, maxConnections: 1 });
    await server.start();
    const dataSource = new DataSource({
      type: 'postgres',
      host: dir, // a directory: pg connects to <dir>/.s.PGSQL.<port>
      port: 5432,
      username: 'postgres',
      database: 'postgres',
      poolSize: 1,
      extra: { max: 1 },
      entities: ENTITIES,
      migrations: MIGRATIONS,
      synchronize: false,
      logging: false,
    });
    await dataSource.initialize();
    await migrate(dataSource, `the embedded database in ${dir}`);
    return {
      kind: 'embedded',
      dataSource,
      location: dir,
      close: async () => {
        await dataSource.destroy();
        await server.stop();
        await db.close();
        rmSync(socketPath, { force: true });
        unlock();
      },
    };
  } catch (err) {
    unlock();
    throw err;
  }
}
