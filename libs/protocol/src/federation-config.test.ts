import { describe, expect, it } from 'vitest';
import {
  applyConfigPatch,
  DEFAULT_FEDERATION_CONFIG,
  FederationConfigError,
  federationConfigJsonSchema,
  parseFederationConfig,
  taskChannels,
} from './federation-config';

const problems = (input: unknown): string[] => {
  try {
    parseFederationConfig(input);
  } catch (err) {
    if (err instanceof FederationConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('FederationConfig', () => {
  it('fills every default from an empty configuration', () => {
    expect(DEFAULT_FEDERATION_CONFIG).toEqual({
      task: { sources: ['mr'], target: 'ct', context: 0 },
      model: { size: 64, channels: [32, 64, 80], numResBlocks: 2 },
      plan: {
        rounds: null,
        localSteps: 50,
        batchSize: 8,
        lr: 2e-4,
        prediction: 'sample',
        schedule: 'cosine',
        fraction: 1,
        minSites: 3,
        maxSites: 100,
        waitSeconds: 300,
        stageSeconds: null,
        trainSeconds: null,
        maxEvalCount: 10_000,
        localEma: 0,
        keepOptimizer: true,
        lrSchedule: { kind: 'constant' },
      },
      strategy: { kind: 'fedavg', lr: 1, proxMu: 0, serverEma: 0 },
      secagg: {
        threatModel: 'active',
        graph: { kind: 'complete' },
        clip: 0.05,
        levels: 65_536,
        maxWeight: 100_000,
      },
      dp: { clip: 10, noiseMultiplier: 0, delta: 1e-5, epsilonBudget: null },
      privacy: { perSiteMetrics: true, hideCounts: false, secureMetrics: false },
    });
    // A strategy's own defaults come with its kind.
    expect(parseFederationConfig({ strategy: { kind: 'fedadam' } }).strategy).toEqual({
      kind: 'fedadam',
      lr: 0.01,
      beta1: 0.9,
      beta2: 0.99,
      tau: 1e-3,
      proxMu: 0,
      serverEma: 0,
    });
  });

  it('refuses the settings that used to be accepted and fail late, naming each path', () => {
    expect(problems({ strategy: { kind: 'fedadamx' } })[0]).toMatch(/^strategy\.kind: /);
    expect(problems({ plan: { lr: 'NaN' } })[0]).toMatch(/^plan\.lr: /);
    expect(problems({ plan: { lr: Number.NaN } })[0]).toMatch(/^plan\.lr: /);
    expect(problems({ plan: { minSites: -5 } })[0]).toMatch(/^plan\.minSites: /);
    expect(problems({ plan: { locaSteps: 5 } })).toEqual(['plan.locaSteps: unknown key']);
    expect(problems({ model: { channels: 'abc' } })[0]).toMatch(/^model\.channels: /);
    expect(problems({ nonsense: 1 })).toEqual(['nonsense: unknown key']);
    // Keys of the earlier settings say where they went.
    expect(problems({ modelConfig: { size: 32 } })).toEqual(['modelConfig: unknown key (it is now model)']);
    expect(problems({ plan: { fedProxMu: 0.1 } })).toEqual([
      'plan.fedProxMu: unknown key (it is now strategy.proxMu)',
    ]);
    // Several problems are all named.
    expect(problems({ plan: { batchSize: 0, fraction: 2 }, dp: { delta: 1 } })).toHaveLength(3);
  });

  it('checks what depends on more than one field', () => {
    expect(problems({ plan: { minSites: 10, maxSites: 5 } })).toEqual([
      'plan.maxSites: maxSites (5) is below minSites (10)',
    ]);
    expect(
      problems({ plan: { maxSites: 4 }, secagg: { graph: { kind: 'harary', neighbours: 4 } } })[0],
    ).toMatch(/^secagg\.graph\.neighbours: a Harary graph of 4 neighbours needs more than 4 sites/);
    expect(problems({ task: { source: 'ct', target: 'ct' } })).toEqual([
      'task.target: the target is also a source',
    ]);
    expect(problems({ task: { sources: ['t1', 't1'], target: 'ct' } })).toEqual([
      'task.sources: a source modality is listed twice',
    ]);
    expect(problems({ task: { sources: [], target: 'ct' } })[0]).toMatch(/^task\.sources: /);
    expect(problems({ task: { sources: ['t1'], target: 'ct', context: 4 } })[0]).toMatch(/^task\.context: /);
    // The MR scale is a setting of tasks with an MR modality.
    expect(
      parseFederationConfig({ task: { sources: ['t1'], target: 'ct', mrScale: 'landmarks' } }).task,
    ).toEqual({
      sources: ['t1'],
      target: 'ct',
      context: 0,
      mrScale: 'landmarks',
    });
    expect(problems({ task: { sources: ['pet'], target: 'ct', mrScale: 'landmarks' } })).toEqual([
      'task.mrScale: mrScale applies to MR modalities (mr, t1, t2, flair); this task has none',
    ]);
    expect(problems({ task: { sources: ['mr'], target: 'ct', mrScale: 'nyul' } })[0]).toMatch(
      /^task\.mrScale: /,
    );
    // SCAFFOLD's control variates are not covered by the DP noise.
    expect(problems({ strategy: { kind: 'scaffold' }, dp: { noiseMultiplier: 1 } })[0]).toMatch(
      /^strategy\.kind: scaffold cannot run with differential privacy/,
    );
    expect(problems({ strategy: { kind: 'scaffold' }, dp: { noiseMultiplier: 0 } })).toEqual([]);
    expect(parseFederationConfig({ strategy: { kind: 'scaffold' } }).strategy).toEqual({
      kind: 'scaffold',
      lr: 1,
      proxMu: 0,
      serverEma: 0,
    });
  });

  it('reads the one-source task of earlier configurations, and several sources with 2.5D context', () => {
    expect(parseFederationConfig({ task: { source: 't1', target: 'flair' } }).task).toEqual({
      sources: ['t1'],
      target: 'flair',
      context: 0,
    });
    const t = parseFederationConfig({ task: { sources: ['t1', 't2'], target: 'ct', context: 1 } }).task;
    expect(t).toEqual({ sources: ['t1', 't2'], target: 'ct', context: 1 });
    expect(taskChannels(t)).toBe(6);
  });

  it('applies a change key by key; another strategy kind replaces the strategy; the result is checked', () => {
    const c = parseFederationConfig({ plan: { localSteps: 20 }, strategy: { kind: 'fedadam', lr: 0.05 } });
    const p = applyConfigPatch(c, { plan: { lr: 1e-3 }, strategy: { beta1: 0.8 } });
    expect(p.plan.localSteps).toBe(20);
    expect(p.plan.lr).toBe(1e-3);
    expect(p.strategy).toMatchObject({ kind: 'fedadam', lr: 0.05, beta1: 0.8 });
    const m = applyConfigPatch(c, { strategy: { kind: 'fedavgm' } });
    expect(m.strategy).toEqual({ kind: 'fedavgm', lr: 1, momentum: 0.9, proxMu: 0, serverEma: 0 });
    expect(() => applyConfigPatch(c, { plan: { minSites: 200 } })).toThrow(
      /maxSites \(100\) is below minSites \(200\)/,
    );
    expect(() => applyConfigPatch(c, [1])).toThrow(FederationConfigError);
  });

  it('describes itself as a JSON Schema that names every section and refuses unknown keys', () => {
    const s = federationConfigJsonSchema() as {
      properties: Record<string, { properties?: Record<string, unknown>; additionalProperties?: boolean }>;
      additionalProperties?: boolean;
    };
    expect(Object.keys(s.properties).sort()).toEqual([
      'dp',
      'model',
      'plan',
      'privacy',
      'secagg',
      'strategy',
      'task',
    ]);
    expect(s.additionalProperties).toBe(false);
    expect(s.properties.plan.additionalProperties).toBe(false);
    expect(Object.keys(s.properties.plan.properties ?? {})).toContain('localSteps');
    // Forms are built from this schema: the privacy switches appear with their defaults.
    expect(s.properties.privacy.properties).toMatchObject({
      hideCounts: { type: 'boolean', default: false },
      secureMetrics: { type: 'boolean', default: false },
    });
  });
});
