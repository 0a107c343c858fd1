// Checks a staged package before it is packed: every module its code loads by name must be a Node
// built-in, a declared dependency, or a file that was staged. A dependency that is only hoisted in
// the checkout, or a helper file left out of the package, would otherwise fail only at a site.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { javascriptFiles } from './stage.mjs';

const BUILTINS = new Set(builtinModules);
// tsc's CommonJS output: require("x"), and import("x") where it keeps a dynamic import.
const SPECIFIER = /\b(?:require|import)\(\s*(["'])([^"'\n]+)\1\s*\)/g;

function isFile(path) {
  return existsSync(path) && statSync(path).isFile();
}

function resolvesRelative(fromFile, spec) {
  const base = resolve(dirname(fromFile), spec);
  return [base, `${base}.js`, `${base}.json`, join(base, 'index.js')].some(isFile);
}

/** A bundled library's subpath (`@fedsynth/lib/sub`): exported, and its file staged. */
function resolvesBundled(stageDir, name, subpath) {
  const dir = join(stageDir, 'node_modules', ...name.split('/'));
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const target = subpath ? manifest.exports?.[`./${subpath}`] : (manifest.exports?.['.'] ?? manifest.main);
  return typeof target === 'string' && isFile(join(dir, target));
}

/** The problems found in the package staged at `stageDir` with `manifest`; empty when none. */
export function unresolvedRequires(stageDir, manifest) {
  const bundled = new Set(manifest.bundleDependencies);
  const declared = new Set([
    ...Object.keys(manifest.dependencies ?? {}),
    ...Object.keys(manifest.optionalDependencies ?? {}),
  ]);
  const problems = [];
  for (const file of javascriptFiles(stageDir)) {
    const source = readFileSync(file, 'utf8');
    for (const [, , spec] of source.matchAll(SPECIFIER)) {
      const where = relative(stageDir, file);
      if (spec.startsWith('.')) {
        if (!resolvesRelative(file, spec)) problems.push(`${where}: "${spec}" is not in the package`);
        continue;
      }
      const bare = spec.replace(/^node:/, '');
      if (BUILTINS.has(bare) || BUILTINS.has(bare.split('/')[0])) continue;
      const parts = spec.split('/');
      const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
      const subpath = parts.slice(spec.startsWith('@') ? 2 : 1).join('/');
      if (bundled.has(name)) {
        if (!resolvesBundled(stageDir, name, subpath))
          problems.push(
            `${where}: "${spec}" is not exported by the bundled ${name}, or its file was left out`,
          );
      } else if (!declared.has(name)) {
        problems.push(
          `${where}: "${spec}" is not a dependency of ${manifest.name}: declare it in the package.json of the app or library that uses it`,
        );
      }
    }
  }
  return [...new Set(problems)];
}
