import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { freePort } from './free-port';
import { postgresUser } from './postgres-user';
import { runCommand } from './run-command';
import { ServiceStartError } from './service-error';
import type { TestServer } from './test-server';

const INSTALL =
  'sudo apt-get install -y postgresql (Debian/Ubuntu: server binaries in /usr/lib/postgresql/<version>/bin)';
const DEBIAN_ROOT = '/usr/lib/postgresql';

/**
 * A throwaway PostgreSQL server: a new cluster in `dir`/pg (trust auth, superuser `postgres`),
 * listening on 127.0.0.1 on a free port only, its unix socket in `dir`. Durability is switched off
 * (the data dies with the run) and max_connections is raised: test files run in parallel and each
 * coordinator they start holds a pool of connections.
 */
export async function startPostgres(dir: string): Promise<TestServer> {
  const bin = postgresBinDir();
  if (!bin) {
    throw new ServiceStartError(
      'PostgreSQL server',
      ['initdb'],
      `initdb and pg_ctl are neither in ${DEBIAN_ROOT}/<version>/bin nor on PATH`,
      INSTALL,
    );
  }
  const user = postgresUser();
  user.own(dir);
  const data = join(dir, 'pg');
  const log = join(dir, 'postgres.log');
  const pgCtl = (...args: string[]) => [...user.prefix, join(bin, 'pg_ctl'), '-D', data, ...args];

  const initdb = [
    ...user.prefix,
    join(bin, 'initdb'),
    ...['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '--no-locale', '-E', 'UTF8'],
  ];
  const init = await runCommand(initdb, 120_000);
  if (init.status !== 0) throw new ServiceStartError('PostgreSQL server', initdb, init.output, INSTALL);

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const options = [
      `-c listen_addresses=127.0.0.1 -p ${port} -k '${dir}'`,
      '-c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200',
    ].join(' ');
    const start = pgCtl('-l', log, '-o', options, '-w', '-t', '60', 'start');
    const started = await runCommand(start, 90_000);
    if (started.status === 0) {
      return {
        url: `postgres://postgres@127.0.0.1:${port}/postgres`,
        stop: async () => {
          const r = await runCommand(pgCtl('-m', 'fast', '-w', '-t', '30', 'stop'), 60_000);
          if (r.status !== 0) stopPostgresIn(dir);
        },
        stopNow: () => stopPostgresIn(dir),
      };
    }
    const output = `${started.output}\n--- ${log} ---\n${tail(log)}`;
    // Another process may have taken the port between choosing and binding it: choose again.
    if (attempt < 3 && /could not bind|address already in use/i.test(output)) continue;
    stopPostgresIn(dir);
    throw new ServiceStartError('PostgreSQL server', start, output, INSTALL);
  }
}

/** Stops a server left running in `dir`/pg at once (immediate shutdown); nothing if none runs. */
export function stopPostgresIn(dir: string): void {
  const data = join(dir, 'pg');
  const bin = postgresBinDir();
  if (!bin || !existsSync(join(data, 'postmaster.pid'))) return;
  let prefix: string[] = [];
  try {
    prefix = postgresUser().prefix;
  } catch {
    return;
  }
  const stop = [...prefix, join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop'];
  spawnSync(stop[0], stop.slice(1), { stdio: 'ignore', timeout: 30_000 });
}

/** Debian's newest /usr/lib/postgresql/<version>/bin with initdb and pg_ctl, else the one on PATH. */
export function postgresBinDir(): string | undefined {
  const hasBoth = (d: string) => existsSync(join(d, 'initdb')) && existsSync(join(d, 'pg_ctl'));
  const versions = existsSync(DEBIAN_ROOT)
    ? readdirSync(DEBIAN_ROOT)
        .filter((v) => /^\d+(\.\d+)?$/.test(v))
        .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a))
    : [];
  for (const v of versions) {
    const d = join(DEBIAN_ROOT, v, 'bin');
    if (hasBoth(d)) return d;
  }
  return (process.env.PATH ?? '').split(delimiter).find((d) => d && hasBoth(d));
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no log)';
  }
}
