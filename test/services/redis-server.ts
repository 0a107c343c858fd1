import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './free-port';
import { redisPing } from './redis-ping';
import { ServiceStartError } from './service-error';
import type { TestServer } from './test-server';

const INSTALL = 'sudo apt-get install -y redis-server';
const READY_MS = 30_000;

/**
 * A throwaway Redis server on 127.0.0.1 on a free port, without persistence, its working folder
 * and pid file in `dir`. It runs as a child of this process.
 */
export async function startRedis(dir: string): Promise<TestServer> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const command = [
      'redis-server',
      ...['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      ...['--dir', dir, '--pidfile', join(dir, 'redis.pid')],
    ];
    const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
    const failure = await untilReady(child, port);
    if (!failure) {
      return {
        url: `redis://127.0.0.1:${port}`,
        stop: () => stopChild(child),
        stopNow: () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        },
      };
    }
    child.kill('SIGKILL');
    output += `\n${failure}`;
    // Another process may have taken the port between choosing and binding it: choose again.
    if (attempt < 3 && /address already in use/i.test(output)) continue;
    throw new ServiceStartError('Redis server', command, output, INSTALL);
  }
}

/** Stops a Redis server left running from `dir` (found by its pid file); nothing if none runs. */
export function stopRedisIn(dir: string): void {
  const pidFile = join(dir, 'redis.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8'), 10);
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    // Only if that pid still is a redis-server: pids are reused.
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('redis-server')) return;
    process.kill(pid, 'SIGKILL');
  } catch {
    // Gone already, or not ours to stop.
  }
}

/** Resolves undefined once it answers PING, or why it never did. */
async function untilReady(child: ChildProcess, port: number): Promise<string | undefined> {
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  const deadline = Date.now() + READY_MS;
  while (Date.now() < deadline) {
    if (spawnError) return `could not run redis-server: ${spawnError.message}`;
    if (child.exitCode !== null || child.signalCode !== null) {
      return `redis-server exited (${child.exitCode ?? child.signalCode}) before accepting connections`;
    }
    if (await redisPing(port, 500)) return undefined;
    await new Promise((r) => setTimeout(r, 50));
  }
  return `redis-server did not answer PING on 127.0.0.1:${port} within ${READY_MS / 1000} s`;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
