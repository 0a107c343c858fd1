import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { neighbourhoods } from './graph';
import { sessionId } from './params';
import { makeConfig, makeSites, seededRandom } from './testing/simulate-round';

const Q = { clip: 1, levels: 1024, maxWeight: 1 };

const SITES = makeSites(60, 'g');

describe('neighbourhoods', () => {
  it('builds a symmetric k-regular Harary graph, even and odd k, that the seed relabels', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 4, max: 60 }),
        fc.integer({ min: 2, max: 20 }),
        fc.integer(),
        (n, k, seed) => {
          fc.pre(k < n - 1 && (k % 2 === 0 || n % 2 === 0));
          const sites = SITES.slice(0, n);
          const graph = { kind: 'harary' as const, neighbours: k, seed: seededRandom(`s${seed}`)(32) };
          const config = makeConfig(sites, {
            threshold: Math.floor((k + 1) / 2) + 1,
            graph,
            vectorLength: 1,
            quantization: Q,
          });
          const nb = neighbourhoods(config, sessionId(config));
          for (const [i, ns] of nb) {
            expect(new Set(ns).size).toBe(k);
            expect(ns).not.toContain(i);
            for (const j of ns) expect(nb.get(j)).toContain(i);
          }
        },
      ),
      { seed: 5, numRuns: 80 },
    );
  });

  it('is complete by default and when k reaches n - 1', () => {
    const sites = makeSites(6, 'c');
    const config = makeConfig(sites, { threshold: 5, vectorLength: 1, quantization: Q });
    const nb = neighbourhoods(config, sessionId(config));
    expect(nb.get(3)).toEqual([1, 2, 4, 5, 6]);
  });

  it('depends on the graph seed', () => {
    const sites = makeSites(30, 'd');
    const mk = (s: string) => {
      const config = makeConfig(sites, {
        threshold: 4,
        graph: { kind: 'harary', neighbours: 4, seed: seededRandom(s)(32) },
        vectorLength: 1,
        quantization: Q,
      });
      return JSON.stringify([...neighbourhoods(config, sessionId(config))]);
    };
    expect(mk('a')).toBe(mk('a'));
    expect(mk('a')).not.toBe(mk('b'));
  });
});
