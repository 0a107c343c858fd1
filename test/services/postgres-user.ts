import { spawnSync } from 'node:child_process';
import { chownSync } from 'node:fs';

/**
 * Who runs the PostgreSQL server binaries. initdb and postgres refuse to run as root, so as root
 * they run as the user `postgres` (created by Debian's postgresql package) through `runuser`;
 * otherwise as the current user.
 */
export interface PostgresUser {
  /** Put before a command to run it as that user. */
  prefix: string[];
  /** Gives that user a folder the server will write to. */
  own(path: string): void;
}

const USER = 'postgres';

export function postgresUser(): PostgresUser {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { prefix: [], own: () => {} };
  }
  const uid = idOf(USER, '-u');
  const gid = idOf(USER, '-g');
  if (uid === undefined || gid === undefined) {
    throw new Error(
      `The tests run as root, where PostgreSQL's initdb refuses to run, and there is no user '${USER}' ` +
        `to run it as. Install Debian's server package, which creates that user ` +
        `(sudo apt-get install -y postgresql), or run the tests as a non-root user.`,
    );
  }
  const runuser = spawnSync('runuser', ['--help'], { stdio: 'ignore' });
  if (runuser.error) {
    throw new Error(
      `The tests run as root and need 'runuser' (util-linux) to start PostgreSQL as user '${USER}': ` +
        `${runuser.error.message}. Install util-linux or run the tests as a non-root user.`,
    );
  }
  return { prefix: ['runuser', '-u', USER, '--'], own: (path) => chownSync(path, uid, gid) };
}

function idOf(user: string, flag: '-u' | '-g'): number | undefined {
  const r = spawnSync('id', [flag, user], { encoding: 'utf8' });
  if (r.error) throw new Error(`Could not run 'id' to look up user '${user}': ${r.error.message}`);
  const n = Number.parseInt(r.stdout ?? '', 10);
  return r.status === 0 && Number.isInteger(n) ? n : undefined;
}
