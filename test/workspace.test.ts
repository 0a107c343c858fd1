import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..');
const rootPkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8'));

describe('workspace layout', () => {
  it('names every workspace package @fedsynth/<folder> and declares the Node engine', () => {
    expect(rootPkg.engines.node).toMatch(/^>=20/);
    for (const ws of rootPkg.workspaces as string[]) {
      const pkg = JSON.parse(readFileSync(resolve(root, ws, 'package.json'), 'utf8'));
      expect(pkg.name).toBe(`@fedsynth/${basename(ws)}`);
      expect(pkg.engines?.node, `${ws}/package.json engines.node`).toBe(rootPkg.engines.node);
    }
  });

  it('keeps the README test command identical to the one .ci/run executes', () => {
    const readme = readFileSync(resolve(root, 'README.md'), 'utf8');
    const ci = readFileSync(resolve(root, '.ci/run'), 'utf8');
    const lines = ci.split('\n').map((line) => line.trim());
    const marker = "# The README's test command.";
    expect(lines).toContain(marker);
    const ciCommand = lines[lines.indexOf(marker) + 1];
    expect(ciCommand).toMatch(/npm test/);
    const firstBlock = readme.split('```')[1];
    expect(firstBlock).toContain(ciCommand);
  });

  it('runs the same tests under Node 22 and 24 in .ci/run, after the README command', () => {
    const lines = readFileSync(resolve(root, '.ci/run'), 'utf8')
      .split('\n')
      .map((line) => line.trim());
    const readmeCommand = lines.indexOf('npm ci && npm test');
    expect(readmeCommand, 'the README command in .ci/run').toBeGreaterThan(0);
    for (const major of [22, 24]) {
      const at = lines.indexOf(`node scripts/with-node.mjs ${major} npm test`);
      expect(at, `Node ${major} run`).toBeGreaterThan(readmeCommand);
    }
  });
});
