import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { selectSites } from './select-sites';

const sites = (n: number) => Array.from({ length: n }, (_, i) => `site-${String(i).padStart(2, '0')}`);
const plan = (fraction: number, minSites = 3, maxSites = 100) => ({ fraction, minSites, maxSites });

// Independent oracle: the draw written with Python's hashlib.
const ORACLE = `
import hashlib, json, sys
j = json.load(sys.stdin)
key = lambda s: hashlib.sha256(f"{j['roundId']}/{s}".encode()).hexdigest()
print(json.dumps(sorted(sorted(j['online'], key=key)[: j['count']])))
`;

describe('selectSites', () => {
  it.each([
    // online, fraction, min, max, expected count
    [10, 0.5, 3, 100, 5], // ceil(0.5 x 10)
    [4, 0.5, 3, 100, 3], // ceil(0.5 x 4) = 2 is raised to minSites
    [7, 0.3, 3, 100, 3], // ceil(2.1)
    [7, 0.45, 3, 100, 4], // ceil(3.15)
    [10, 1, 3, 4, 4], // capped at maxSites
    [20, 0.9, 5, 12, 12], // ceil(18) capped at 12
    [3, 1, 3, 100, 3], // exactly minSites online: all of them
    [3, 0.01, 3, 3, 3],
  ])('%i online, fraction %d, min %i, max %i -> %i sites', (n, fraction, min, max, count) => {
    const online = sites(n);

    const sut = selectSites('fed:1', online, plan(fraction, min, max));

    expect(sut).toHaveLength(count);
    expect(new Set(sut).size).toBe(count);
    expect(sut.every((s) => online.includes(s))).toBe(true);
    expect(sut).toEqual([...sut].sort());
  });

  it('draws by sha256(roundId/siteId), as Python computes it', () => {
    const online = sites(25);
    for (const roundId of ['fed-a:0', 'fed-a:1', 'fed-b:7']) {
      const expected = JSON.parse(
        execFileSync('/usr/bin/python3', ['-c', ORACLE], {
          input: JSON.stringify({ roundId, online, count: 8 }),
          encoding: 'utf8',
        }),
      );
      expect(selectSites(roundId, online, plan(8 / 25))).toEqual(expected);
    }
  });

  it('is reproducible per round id, whatever the order of the online list', () => {
    const online = sites(20);
    const a = selectSites('fed:42', online, plan(0.25));
    const b = selectSites('fed:42', [...online].reverse(), plan(0.25));
    expect(b).toEqual(a);
  });

  it('draws afresh for different round ids', () => {
    const online = sites(20);
    const draws = new Set(
      Array.from({ length: 6 }, (_, i) => selectSites(`fed:${i}`, online, plan(0.25)).join(',')),
    );
    // Six draws of 5 of 20 (15504 possible sets) all coincide with probability ~1e-21.
    expect(draws.size).toBeGreaterThan(1);
  });

  it('refuses too few sites online, naming the counts', () => {
    expect(() => selectSites('fed:1', sites(2), plan(1))).toThrow('too few sites online: 2 of the 3 needed');
    expect(() => selectSites('fed:1', sites(4), plan(1, 5, 10))).toThrow(
      expect.objectContaining({ code: 'TOO_FEW_SITES', message: 'too few sites online: 4 of the 5 needed' }),
    );
  });

  it('refuses a site listed twice and an empty round id', () => {
    expect(() => selectSites('fed:1', ['a', 'b', 'a', 'c'], plan(1))).toThrow(
      'site a is listed online twice',
    );
    expect(() => selectSites('', sites(3), plan(1))).toThrow(/roundId/);
  });
});
