import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unetConfigFor, unetLayout } from '@fedsynth/diffusion/unet-config';
import { afterAll, beforeAll } from 'vitest';
import { type ApiAnswer, apiCall } from '../../apps/coordinator/src/testing/api-call';
import type { LocalFederation } from '../../apps/demo/src/local-federation';
import { startTestCoordinator, tinyFederation } from '../tiny-federation';

/**
 * The coordinator under attack: the built CLI in its own process on a fresh database of the real
 * PostgreSQL server, reached only over HTTP and websockets like any outside client.
 */
export interface Target {
  fed: LocalFederation;
  url: string;
  port: number;
  pid: number;
  admin: string;
  /** Stops the coordinator and drops its database. */
  close(): Promise<void>;
}

export async function startTarget(
  dir: string,
  opts: { args?: string[]; stageSeconds?: number; trainSeconds?: number } = {},
): Promise<Target> {
  const { fed, drop } = await startTestCoordinator(dir, {
    stageSeconds: opts.stageSeconds ?? 20,
    trainSeconds: opts.trainSeconds ?? 60,
    coordinatorArgs: opts.args,
  });
  return {
    fed,
    url: fed.url,
    port: Number(new URL(fed.url).port),
    pid: fed.coordinator!.pid!,
    admin: fed.adminToken,
    close: async () => {
      fed.killAll();
      await drop();
    },
  };
}

/**
 * The target of a test file: started in a fresh folder before its tests (with `args` for
 * `fedsynth-coordinator serve`), stopped and its database dropped after them. Read it in tests
 * through `get()`.
 */
export function targetForFile(
  name: string,
  opts: Parameters<typeof startTarget>[1] = {},
): { get: () => Target; dir: () => string } {
  let dir = '';
  let target: Target | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `fedsynth-adv-${name}-`));
    target = await startTarget(dir, opts);
  }, 120_000);
  afterAll(async () => {
    await target?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    get: () => {
      if (!target) throw new Error('the target has not started');
      return target;
    },
    dir: () => dir,
  };
}

/** Resident memory of a process in MiB (Linux /proc). */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) / 1024;
}

/** What the coordinator did while an attack ran: its memory and how fast /health answered. */
export interface UnderAttack {
  baselineMiB: number;
  peakMiB: number;
  growthMiB: number;
  healthChecks: number;
  slowestHealthMs: number;
}

/**
 * Runs `attack` while sampling the coordinator's RSS every 20 ms and timing GET /health every
 * 100 ms (a health check that fails or takes over 5 s counts as 5000 ms).
 */
export async function duringAttack(target: Target, attack: () => Promise<void>): Promise<UnderAttack> {
  const baselineMiB = rssMiB(target.pid);
  let peakMiB = baselineMiB;
  let running = true;
  const sampler = setInterval(() => {
    peakMiB = Math.max(peakMiB, rssMiB(target.pid));
  }, 20);
  const times: number[] = [];
  const health = (async () => {
    while (running) {
      const t0 = performance.now();
      try {
        const r = await fetch(`${target.url}/health`, { signal: AbortSignal.timeout(5000) });
        await r.arrayBuffer();
        times.push(r.ok ? performance.now() - t0 : 5000);
      } catch {
        times.push(5000);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    await attack();
  } finally {
    running = false;
    await health;
    clearInterval(sampler);
    peakMiB = Math.max(peakMiB, rssMiB(target.pid));
  }
  return {
    baselineMiB,
    peakMiB,
    growthMiB: peakMiB - baselineMiB,
    healthChecks: times.length,
    slowestHealthMs: Math.max(0, ...times),
  };
}

/** The small U-Net the system tests train, and the length of its flat weight vector. */
export const TINY = tinyFederation().model;
export const TINY_PARAMS = unetLayout(unetConfigFor(TINY.channels, TINY.numResBlocks)).reduce(
  (n, t) => n + t.shape.reduce((a, b) => a * b, 1),
  0,
);

/** Calls the target's REST API, as the admin unless `token` says otherwise (null: no token). */
export function http(
  target: Target,
  method: string,
  path: string,
  opts: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {},
): Promise<ApiAnswer> {
  return apiCall(target.url, method, path, {
    ...opts,
    token: opts.token === undefined ? target.admin : opts.token,
  });
}

/** How a streamed request ended: the status if a response came, and how much was sent. */
export interface Streamed {
  status?: number;
  body?: string;
  sentBytes: number;
  error?: string;
}

/**
 * Sends a body of `total` bytes in 1 MiB pieces as fast as the connection takes them (with
 * Content-Length, or chunked when `chunked`), and stops when the server answers or closes.
 */
export function streamBody(
  target: Target,
  opts: { method?: string; path: string; headers?: Record<string, string>; total: number; chunked?: boolean },
): Promise<Streamed> {
  const piece = Buffer.alloc(1024 * 1024, 'a');
  return new Promise((resolve) => {
    const out: Streamed = { sentBytes: 0 };
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve(out);
    };
    const req = httpRequest({
      host: '127.0.0.1',
      port: target.port,
      method: opts.method ?? 'POST',
      path: opts.path,
      headers: { ...opts.headers, ...(opts.chunked ? {} : { 'content-length': String(opts.total) }) },
    });
    req.on('response', (res) => {
      out.status = res.statusCode;
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => {
        out.body = body;
        req.destroy();
        finish();
      });
      res.on('error', finish);
    });
    req.on('error', (err) => {
      out.error = (err as NodeJS.ErrnoException).code ?? err.message;
      // A response may still be on its way after the write side broke.
      setTimeout(finish, 200);
    });
    req.on('close', () => setTimeout(finish, 200));
    const pump = () => {
      while (!done && out.status === undefined && out.sentBytes < opts.total) {
        const n = Math.min(piece.length, opts.total - out.sentBytes);
        out.sentBytes += n;
        if (!req.write(n === piece.length ? piece : piece.subarray(0, n)))
          return void req.once('drain', pump);
      }
      if (!done && out.sentBytes >= opts.total) req.end();
    };
    pump();
  });
}
