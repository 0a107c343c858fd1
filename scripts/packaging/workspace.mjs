// The monorepo as the packer sees it: each workspace's manifest, the @fedsynth libraries an app
// needs (its workspace dependencies, transitively), and the third-party packages all of them need.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Thrown when the workspace cannot be packed as it is; the message says what to fix. */
export class PackError extends Error {}

export function readManifest(dir) {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
}

/** Every workspace package of the checkout at `root`: name -> { dir, manifest }. */
export function workspacePackages(root) {
  const out = new Map();
  for (const rel of readManifest(root).workspaces ?? []) {
    const dir = join(root, rel);
    const manifest = readManifest(dir);
    out.set(manifest.name, { dir, manifest });
  }
  return out;
}

/**
 * The workspace libraries `app` needs at run time, in dependency order (a library before those that
 * need it): runtime and optional dependencies only, never devDependencies.
 */
export function workspaceClosure(app, packages) {
  const order = [];
  const seen = new Set();
  const visit = (manifest) => {
    for (const name of Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies })) {
      const lib = packages.get(name);
      if (!lib || seen.has(name)) continue;
      seen.add(name);
      visit(lib.manifest);
      order.push(lib);
    }
  };
  visit(app.manifest);
  return order;
}

/**
 * The third-party runtime dependencies of `manifests` (an app and its libraries), as the packed
 * package declares them: one version each, optional only where no package needs it outright.
 */
export function thirdPartyDependencies(manifests, packages) {
  const required = new Map();
  const optional = new Map();
  const specOf = new Map();
  for (const m of manifests) {
    for (const [kind, deps] of [
      ['required', m.dependencies ?? {}],
      ['optional', m.optionalDependencies ?? {}],
    ]) {
      for (const [name, spec] of Object.entries(deps)) {
        if (packages.has(name)) continue;
        const earlier = specOf.get(name);
        if (earlier && earlier.spec !== spec)
          throw new PackError(
            `${name} is wanted as ${earlier.spec} by ${earlier.by} and as ${spec} by ${m.name}: pin one version in both package.json files`,
          );
        specOf.set(name, { spec, by: m.name });
        (kind === 'required' ? required : optional).set(name, spec);
      }
    }
  }
  for (const name of required.keys()) optional.delete(name);
  const sorted = (map) => Object.fromEntries([...map].sort(([a], [b]) => a.localeCompare(b)));
  return { dependencies: sorted(required), optionalDependencies: sorted(optional) };
}
