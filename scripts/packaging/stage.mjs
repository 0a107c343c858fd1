// Lays out one installable package in a staging folder: the app's compiled code, its bins and
// assets, and each @fedsynth library it needs under node_modules/@fedsynth/<lib> (bundled, since
// the libraries are not published). Only what runs is copied: no tests, benches, test helpers,
// type declarations or source maps (the sources they point to are not shipped).
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, sep } from 'node:path';
import { PackError, thirdPartyDependencies, workspaceClosure } from './workspace.mjs';

/** Whether a built file is part of what runs (paths relative to the package folder). */
export function shipped(rel) {
  const parts = rel.split(sep);
  const name = basename(rel);
  if (parts.includes('bench') || parts.includes('testing') || name === 'testing.js') return false;
  return !/(\.map|\.d\.ts|\.test\.js|\.tsbuildinfo)$/.test(name);
}

function copyShipped(fromDir, toDir, rel) {
  const src = join(fromDir, rel);
  if (!existsSync(src)) return;
  cpSync(src, join(toDir, rel), {
    recursive: true,
    filter: (path) => statSync(path).isDirectory() || shipped(relative(fromDir, path)),
  });
}

/** `exports` without type conditions, and without entries whose file was not shipped. */
function runtimeExports(exports, stagedDir) {
  const out = {};
  for (const [key, target] of Object.entries(exports ?? {})) {
    if (key === './package.json') {
      out[key] = './package.json';
      continue;
    }
    const file = typeof target === 'string' ? target : (target.default ?? target.require);
    if (file && existsSync(join(stagedDir, file))) out[key] = file;
  }
  return out;
}

/** A bundled library: its runtime code, and its bin/ when the package runs one of its bins. */
function stageLibrary(lib, stageDir, withBins) {
  const { manifest } = lib;
  const dir = join(stageDir, 'node_modules', ...manifest.name.split('/'));
  for (const rel of withBins ? ['dist', 'bin'] : ['dist']) copyShipped(lib.dir, dir, rel);
  if (!existsSync(join(dir, 'dist')))
    throw new PackError(`${manifest.name} has no dist/: build it first (npx tsc -b)`);
  // Its third-party dependencies are declared by the packed package, which npm installs beside it.
  const packed = {
    name: manifest.name,
    version: manifest.version,
    description: manifest.description,
    license: manifest.license,
    main: manifest.main,
    exports: runtimeExports(manifest.exports, dir),
  };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(packed, null, 2)}\n`);
}

/** A bin of the packed package that runs a bin of one of its bundled libraries. */
function libraryBinShim(stageDir, bin, libName, libBin) {
  const target = ['..', 'node_modules', ...libName.split('/'), libBin].join('/');
  if (!existsSync(join(stageDir, 'bin', target)))
    throw new PackError(`${libName} has no ${libBin} to run as ${bin}`);
  const file = join(stageDir, 'bin', `${bin}.js`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `#!/usr/bin/env node\n\nrequire(${JSON.stringify(target)});\n`);
  chmodSync(file, 0o755);
  return `bin/${bin}.js`;
}

/**
 * Stages the package `spec` (see packages.mjs) of the checkout's workspace `packages` in
 * `stageDir`; returns its manifest.
 */
export function stagePackage(spec, packages, root, stageDir) {
  const app = [...packages.values()].find((p) => p.dir === join(root, spec.dir));
  if (!app) throw new PackError(`${spec.dir} is not a workspace of this checkout`);
  const libs = workspaceClosure(app, packages);
  for (const rel of spec.files) copyShipped(app.dir, stageDir, rel);
  if (!existsSync(join(stageDir, 'dist')))
    throw new PackError(`${app.manifest.name} has no dist/: build it first (npx tsc -b)`);
  for (const [from, to] of spec.extraFiles ?? []) {
    mkdirSync(dirname(join(stageDir, to)), { recursive: true });
    cpSync(join(root, from), join(stageDir, to));
  }
  const libraryBins = Object.entries(spec.libraryBins ?? {});
  for (const lib of libs)
    stageLibrary(
      lib,
      stageDir,
      libraryBins.some(([, [libName]]) => libName === lib.manifest.name),
    );
  const bin = { ...app.manifest.bin };
  for (const [name, [libName, libBin]] of libraryBins)
    bin[name] = libraryBinShim(stageDir, name, libName, libBin);
  const deps = thirdPartyDependencies([app.manifest, ...libs.map((l) => l.manifest)], packages);
  const manifest = {
    name: spec.name,
    version: app.manifest.version,
    description: spec.description ?? app.manifest.description,
    license: app.manifest.license,
    engines: app.manifest.engines,
    main: app.manifest.main,
    exports: runtimeExports(app.manifest.exports, stageDir),
    bin,
    files: [...new Set([...spec.files, ...(spec.extraFiles ?? []).map(([, to]) => to.split('/')[0])])].filter(
      (f) => existsSync(join(stageDir, f)),
    ),
    dependencies: {
      ...deps.dependencies,
      ...Object.fromEntries(libs.map((l) => [l.manifest.name, l.manifest.version])),
    },
    optionalDependencies: deps.optionalDependencies,
    bundleDependencies: libs.map((l) => l.manifest.name),
  };
  writeFileSync(join(stageDir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Every .js file under `dir` (node_modules included), as absolute paths. */
export function javascriptFiles(dir) {
  return readdirSync(dir, { recursive: true })
    .map((rel) => join(dir, rel))
    .filter((path) => path.endsWith('.js') && statSync(path).isFile());
}
