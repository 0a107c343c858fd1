import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { unresolvedRequires } from '../scripts/packaging/check-requires.mjs';
import { PACKAGES } from '../scripts/packaging/packages.mjs';
import { shipped, stagePackage } from '../scripts/packaging/stage.mjs';
import { PackError, thirdPartyDependencies, workspacePackages } from '../scripts/packaging/workspace.mjs';
import { CHECKOUT } from './packed-install';

/**
 * The packer's rules, without npm: what a package ships, how the dependencies of an app and its
 * libraries become one list, and that every module the staged code loads is declared or shipped
 * (on the built checkout, as `npm run pack` stages it).
 */
const staged: string[] = [];
afterAll(() => {
  for (const dir of staged) rmSync(dir, { recursive: true, force: true });
});

describe('npm run pack', () => {
  it('ships compiled code only: no tests, benches, test helpers, declarations, maps or build info', () => {
    for (const f of ['dist/index.js', 'dist/cli/main.js', 'bin/fedsynth-agent.js', 'web/app.js'])
      expect(shipped(f), f).toBe(true);
    for (const f of [
      'dist/index.d.ts',
      'dist/index.js.map',
      'dist/x.test.js',
      'dist/bench/round-bench.js',
      'dist/testing.js',
      'dist/testing/protocol-agent.js',
      'dist/.tsbuildinfo',
    ])
      expect(shipped(f), f).toBe(false);
  });

  it('merges the dependencies of an app and its libraries: one version each, optional only where nothing needs it', () => {
    const packages = new Map([['@fedsynth/lib', {}]]);
    const deps = thirdPartyDependencies(
      [
        {
          name: 'app',
          dependencies: { '@fedsynth/lib': '1.0.0', zod: '4.6.7' },
          optionalDependencies: { gpu: '2.0.0' },
        },
        { name: '@fedsynth/lib', dependencies: { gpu: '2.0.0' }, optionalDependencies: { webgpu: '0.6.2' } },
      ],
      packages,
    );
    expect(deps).toEqual({
      dependencies: { gpu: '2.0.0', zod: '4.6.7' },
      optionalDependencies: { webgpu: '0.6.2' },
    });
    expect(() =>
      thirdPartyDependencies(
        [
          { name: 'app', dependencies: { zod: '4.6.7' } },
          { name: '@fedsynth/lib', dependencies: { zod: '4.0.0' } },
        ],
        packages,
      ),
    ).toThrow(
      new PackError(
        'zod is wanted as 4.6.7 by app and as 4.0.0 by @fedsynth/lib: pin one version in both package.json files',
      ),
    );
  });

  for (const [key, spec] of Object.entries(PACKAGES))
    it(`stages ${spec.name}: public, its libraries bundled, every module it loads declared or shipped`, () => {
      const dir = mkdtempSync(join(tmpdir(), `fedsynth-stage-${key}-`));
      staged.push(dir);
      const manifest = stagePackage(spec, workspacePackages(CHECKOUT), CHECKOUT, dir);
      expect(manifest.private).toBeUndefined();
      expect(manifest.bundleDependencies).toContain('@fedsynth/protocol');
      for (const lib of manifest.bundleDependencies) expect(manifest.dependencies[lib]).toBeDefined();
      expect(
        JSON.parse(readFileSync(join(dir, 'node_modules/@fedsynth/protocol/package.json'), 'utf8')),
      ).not.toHaveProperty('dependencies');
      expect(unresolvedRequires(dir, manifest)).toEqual([]);
    });
});
