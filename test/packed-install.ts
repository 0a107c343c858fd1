import { execFile } from 'node:child_process';
import { resolve } from 'node:path';

/** The checkout these tests run in. */
export const CHECKOUT = resolve(__dirname, '..');

export interface Run {
  /** Exit status; null when killed (e.g. at the timeout). */
  code: number | null;
  out: string;
  err: string;
}

/** Runs a program to completion, collecting its output; never rejects. */
export function run(
  file: string,
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<Run> {
  return new Promise((done) => {
    execFile(
      file,
      args,
      { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs, maxBuffer: 64 * 1024 ** 2 },
      (error, out, err) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        done({ code, out, err: error && code === null ? `${err}\n${error.message}` : err });
      },
    );
  });
}

/** A package `npm run pack` wrote (scripts/pack.mjs --json). */
export interface PackedPackage {
  name: string;
  version: string;
  file: string;
  bytes: number;
  unpackedBytes: number;
  files: number;
  bundled: string[];
}

/** Builds the checkout and packs the site agent and the coordinator into `outDir`. */
export async function packCheckout(outDir: string): Promise<Map<string, PackedPackage>> {
  const r = await run(process.execPath, ['scripts/pack.mjs', '--out', outDir, '--json'], {
    cwd: CHECKOUT,
    timeoutMs: 300_000,
  });
  if (r.code !== 0) throw new Error(`npm run pack failed (${r.code}):\n${r.err}`);
  const { packages } = JSON.parse(r.out) as { packages: PackedPackage[] };
  return new Map(packages.map((p) => [p.name, p]));
}

/**
 * `npm install -g --prefix <prefix> <tarball>` run from `cwd` (outside the checkout), as a site
 * does, from npm's cache where it can; optional packages that cannot install here (tfjs-node
 * downloads libtensorflow) are left out by npm as at any site without that access.
 */
export async function installGlobally(tarball: string, prefix: string, cwd: string): Promise<void> {
  const r = await run(
    'npm',
    ['install', '-g', '--prefix', prefix, tarball, '--prefer-offline', '--no-audit', '--no-fund'],
    { cwd, timeoutMs: 600_000 },
  );
  if (r.code !== 0) throw new Error(`npm install -g ${tarball} failed (${r.code}):\n${r.err}`);
}

/**
 * deploy/agent/install.sh --no-service with `args`, run from `cwd` as site IT runs it (npm from its
 * cache where it can, no FEDSYNTH_* settings of this environment).
 */
export function runInstallScript(args: string[], cwd: string): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FEDSYNTH_')));
  return run('sh', [resolve(CHECKOUT, 'deploy/agent/install.sh'), '--no-service', ...args], {
    cwd,
    env: { ...env, npm_config_prefer_offline: 'true' },
    timeoutMs: 600_000,
  });
}

/**
 * The environment an installed command runs with: only PATH from this one, a home of its own, no
 * FEDSYNTH_* settings and nothing that points into the checkout.
 */
export function cleanEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...extra };
}
