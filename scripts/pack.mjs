#!/usr/bin/env node
// `npm run pack`: builds the checkout and writes installable packages of the site agent and the
// coordinator to dist-packages/ (fedsynth-site-agent-<version>.tgz, fedsynth-coordinator-<version>.tgz).
// Each holds its app and the @fedsynth libraries it needs (bundled); npm installs the third-party
// dependencies, so `npm install -g ./fedsynth-site-agent-<version>.tgz` needs only Node and npm.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { unresolvedRequires } from './packaging/check-requires.mjs';
import { PACKAGES } from './packaging/packages.mjs';
import { stagePackage } from './packaging/stage.mjs';
import { PackError, readManifest, workspacePackages } from './packaging/workspace.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = `Usage: node scripts/pack.mjs [--only ${Object.keys(PACKAGES).join('|')}]... [--out DIR] [--no-build] [--json]

Builds the checkout (tsc -b) and packs the site agent and the coordinator as installable npm
packages, their @fedsynth libraries bundled.

  --only <name>   pack only this package (repeatable)
  --out <dir>     where the .tgz files go (default: dist-packages)
  --no-build      skip tsc -b (the dist/ folders are already built)
  --json          print one JSON object describing the packages on stdout
`;

function build() {
  const tsc = createRequire(join(ROOT, 'package.json')).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-b'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new PackError('the build (tsc -b) failed; fix the errors above and pack again');
}

function npmPack(stageDir, outDir) {
  const r = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', outDir], {
    cwd: stageDir,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new PackError(`npm pack failed in ${stageDir}:\n${r.stderr || r.error?.message}`);
  return JSON.parse(r.stdout)[0];
}

function pack(key, packages, outDir) {
  const stageDir = mkdtempSync(join(tmpdir(), `fedsynth-pack-${key}-`));
  try {
    const manifest = stagePackage(PACKAGES[key], packages, ROOT, stageDir);
    const problems = unresolvedRequires(stageDir, manifest);
    if (problems.length)
      throw new PackError(
        `${manifest.name} would not run where it is installed:\n  ${problems.join('\n  ')}`,
      );
    const packed = npmPack(stageDir, outDir);
    return {
      name: manifest.name,
      version: manifest.version,
      file: join(outDir, packed.filename),
      bytes: packed.size,
      unpackedBytes: packed.unpackedSize,
      files: packed.entryCount,
      bundled: manifest.bundleDependencies,
    };
  } finally {
    rmSync(stageDir, { recursive: true, force: true });
  }
}

/** `path` relative to the working directory when it lies inside it. */
function shortPath(path) {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}

function main() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        only: { type: 'string', multiple: true },
        out: { type: 'string', default: 'dist-packages' },
        'no-build': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`pack: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const keys = values.only ?? Object.keys(PACKAGES);
  const unknown = keys.filter((k) => !PACKAGES[k]);
  if (unknown.length) {
    process.stderr.write(
      `pack: --only ${unknown.join(', ')}: not one of ${Object.keys(PACKAGES).join(', ')}\n`,
    );
    return 2;
  }
  const outDir = resolve(values.out);
  try {
    if (!values['no-build']) build();
    mkdirSync(outDir, { recursive: true });
    const packages = workspacePackages(ROOT);
    const results = keys.map((key) => pack(key, packages, outDir));
    // npm applies `overrides` of the project it installs into only: not to a package installed from a tarball.
    const overrides = Object.keys(readManifest(ROOT).overrides ?? {});
    if (overrides.length)
      process.stderr.write(
        `pack: note: the checkout's overrides (${overrides.join(', ')}) do not apply where these packages are installed\n`,
      );
    if (values.json) process.stdout.write(`${JSON.stringify({ packages: results }, null, 2)}\n`);
    else
      for (const r of results)
        process.stdout.write(
          `wrote ${shortPath(r.file)}: ${(r.bytes / 1024).toFixed(0)} kB (${(r.unpackedBytes / 1024).toFixed(0)} kB unpacked, ${r.files} files; bundles ${r.bundled.join(', ')})\n`,
        );
    return 0;
  } catch (err) {
    if (!(err instanceof PackError)) throw err;
    process.stderr.write(`pack: ${err.message}\n`);
    return 1;
  }
}

process.exitCode = main();
