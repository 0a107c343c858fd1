import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startPostgres, stopPostgresIn } from './postgres-server';
import { startRedis, stopRedisIn } from './redis-server';
import { makeServicesDir, reapLeftoverServicesDirs, removeServicesDir } from './services-dir';
import type { TestServer } from './test-server';

/**
 * vitest globalSetup: starts the suite's own PostgreSQL and Redis, on free ports on 127.0.0.1 with
 * their data in a fresh temporary folder, and hands them to the test workers (and the processes
 * tests spawn) as FEDSYNTH_TEST_PG and FEDSYNTH_TEST_REDIS. Tests never use a server someone else
 * started, unless FEDSYNTH_TEST_PG / FEDSYNTH_TEST_REDIS is set explicitly: then that server is
 * used as given, and that one is not started. FEDSYNTH_TEST_STARTED lists the ones started here.
 *
 * The teardown stops both and removes the folder; on Ctrl-C, SIGTERM or SIGHUP (vitest exits on
 * the first two) they are stopped at process exit; folders left by a run killed outright are
 * cleaned up by the next run.
 *
 * The workers' temporary folder (TMPDIR, so os.tmpdir() of the tests and of every process they
 * start) is a folder inside it too, so whatever a test leaves there goes with the run.
 */
export default async function setup(): Promise<() => Promise<void>> {
  reapLeftoverServicesDirs(stopAllIn);
  const dir = makeServicesDir();
  const servers: TestServer[] = [];
  const stopNow = () => {
    for (const server of servers) server.stopNow();
    removeServicesDir(dir);
  };
  const onHangup = () => process.exit(129);
  process.once('exit', stopNow);
  process.once('SIGHUP', onHangup);
  const forget = () => {
    process.off('exit', stopNow);
    process.off('SIGHUP', onHangup);
  };

  const wanted: [string, 'FEDSYNTH_TEST_PG' | 'FEDSYNTH_TEST_REDIS', (dir: string) => Promise<TestServer>][] =
    [
      ['postgres', 'FEDSYNTH_TEST_PG', startPostgres],
      ['redis', 'FEDSYNTH_TEST_REDIS', startRedis],
    ];
  const toStart = wanted.filter(([, env]) => !process.env[env]);
  const results = await Promise.allSettled(toStart.map(([, , start]) => start(dir)));
  for (const r of results) if (r.status === 'fulfilled') servers.push(r.value);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) {
    stopNow();
    forget();
    throw failed.reason;
  }
  toStart.forEach(([, env], i) => {
    process.env[env] = servers[i].url;
  });
  process.env.FEDSYNTH_TEST_STARTED = toStart.map(([name]) => name).join(',');
  process.env.FEDSYNTH_TEST_SERVICES_DIR = dir;
  const scratch = join(dir, 'tmp');
  mkdirSync(scratch, { mode: 0o700 });
  process.env.TMPDIR = scratch;

  return async () => {
    await Promise.allSettled(servers.map((s) => s.stop()));
    removeServicesDir(dir);
    forget();
  };
}

function stopAllIn(dir: string): void {
  stopPostgresIn(dir);
  stopRedisIn(dir);
}
