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
    }
  });

  it('keeps the README test command identical to the one .ci/run executes', () => {
    const readme = readFileSync(resolve(root, 'README.md'), 'utf8');
    const ci = readFileSync(resolve(root, '.ci/run'), 'utf8');
    const ciCommand = ci.trim().split('\n').at(-1)!.trim();
    const firstBlock = readme.split('```')[1];
    expect(firstBlock).toContain(ciCommand);
  });
});
