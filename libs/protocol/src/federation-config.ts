import { z } from 'zod';

/**
 * A federation's whole configuration: the one schema that validates it (at creation, at every
 * change, and whenever the coordinator loads it), the one source of its defaults, and the source of
 * the OpenAPI schema. Every section refuses keys it does not know, naming their path.
 */

const finite = z.number().refine(Number.isFinite, 'expected a finite number');
const int = (min: number, max: number) => z.number().int().min(min).max(max);

/** Modalities a task may name. */
export const MODALITIES = ['mr', 't1', 't2', 'flair', 'pet', 'ct'] as const;

/** The largest 2.5D context: k neighbouring slices on each side of each source slice. */
export const MAX_TASK_CONTEXT = 3;

/** How a task may scale its MR volumes (libs/imaging's MR_SCALES); absent means percentile. */
export const MR_SCALES = ['percentile', 'landmarks'] as const;

/** The modalities whose intensities are MR's (normalized by the task's mrScale). */
const MR_KINDS: readonly string[] = ['mr', 't1', 't2', 'flair'];

const taskObject = z
  .strictObject({
    /** The modalities the model reads (the condition), in channel order. */
    sources: z.array(z.enum(MODALITIES)).min(1).max(MODALITIES.length).default(['mr']),
    /** The modality it synthesizes. */
    target: z.enum(MODALITIES).default('ct'),
    /** 2.5D: the k slices on each side of each source slice are extra condition channels (0: 2D). */
    context: int(0, MAX_TASK_CONTEXT).default(0),
    /**
     * How MR volumes (`mr`, `t1`, `t2`, `flair`) are brought to the model's scale: `percentile`
     * (per-volume 0.5 % / 99.5 % percentiles) or `landmarks` (piecewise linear from the body's
     * histogram landmarks to a fixed scale; see libs/imaging's mr-standardize.ts). Absent: percentile.
     */
    mrScale: z.enum(MR_SCALES).optional(),
  })
  .refine((t) => new Set(t.sources).size === t.sources.length, {
    message: 'a source modality is listed twice',
    path: ['sources'],
  })
  .refine((t) => !t.sources.includes(t.target), { message: 'the target is also a source', path: ['target'] })
  .refine((t) => t.mrScale === undefined || [...t.sources, t.target].some((m) => MR_KINDS.includes(m)), {
    message: 'mrScale applies to MR modalities (mr, t1, t2, flair); this task has none',
    path: ['mrScale'],
  });

/** A task; the one-source form `{source, target}` of earlier configurations is read as `{sources: [source]}`. */
const task = z.preprocess((v) => {
  if (v && typeof v === 'object' && 'source' in v && !('sources' in v)) {
    const { source, ...rest } = v as { source: unknown };
    return { ...rest, sources: [source] };
  }
  return v;
}, taskObject);

/** Condition channels of a task: each source's slice and its 2k neighbours. */
export function taskChannels(t: { sources: readonly string[]; context?: number }): number {
  return t.sources.length * (2 * (t.context ?? 0) + 1);
}

const model = z.strictObject({
  /** Input size in pixels (slices are resampled to size x size). */
  size: int(8, 1024).default(64),
  /** Channels per U-Net level. */
  channels: z.array(int(1, 4096)).min(1).max(8).default([32, 64, 80]),
  numResBlocks: int(1, 8).default(2),
});

const plan = z.strictObject({
  /** Rounds to run before the federation stops by itself; null: until an admin stops it. */
  rounds: int(1, 1_000_000).nullable().default(null),
  localSteps: int(1, 1_000_000).default(50),
  batchSize: int(1, 1024).default(8),
  lr: finite.refine((x) => x > 0 && x < 1, 'lr must be in (0, 1)').default(2e-4),
  prediction: z.enum(['epsilon', 'v', 'sample']).default('sample'),
  schedule: z.enum(['cosine', 'linear', 'scaled-linear']).default('cosine'),
  /** Share of the online sites drawn each round. */
  fraction: finite.refine((x) => x > 0 && x <= 1, 'fraction must be in (0, 1]').default(1),
  minSites: int(3, 10_000).default(3),
  maxSites: int(3, 10_000).default(100),
  /** How long a round waits for minSites sites to be online. */
  waitSeconds: int(1, 86_400).default(300),
  /** Deadline of each secure-aggregation stage; null: the coordinator's --stage-seconds. */
  stageSeconds: int(1, 86_400).nullable().default(null),
  /** Deadline of local training plus the masked upload; null: the coordinator's --train-seconds. */
  trainSeconds: int(1, 7 * 86_400)
    .nullable()
    .default(null),
  /** Validation slices one site's evaluation may weigh in the global figures. */
  maxEvalCount: int(1, 2 ** 31 - 1).default(10_000),
  /**
   * Decay of an exponential moving average of the weights a site keeps while it trains a round;
   * the site uploads the average's change instead of the last weights'. 0: off.
   */
  localEma: finite.refine((x) => x >= 0 && x < 1, 'localEma must be in [0, 1)').default(0),
  /**
   * A site keeps its optimizer's state (Adam's moments and step count) from one round to the next
   * instead of starting Adam afresh each round, whose first steps are lr-sized sign steps (the
   * fed-vs-central bench: 104-112 HU against 135 HU without, central 90 HU). The state stays at the
   * site (in memory: a restarted agent starts afresh). false: every round starts a new optimizer.
   */
  keepOptimizer: z.boolean().default(true),
  /**
   * How the sites' learning rate changes from round to round: constant, or a cosine decay from
   * plan.lr in round 1 to plan.lr * minFactor in round `rounds` (plan.rounds when null), held after.
   */
  lrSchedule: z
    .discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('constant') }),
      z.strictObject({
        kind: z.literal('cosine'),
        minFactor: finite.refine((x) => x >= 0 && x <= 1, 'minFactor must be in [0, 1]').default(0.1),
        rounds: int(1, 1_000_000).nullable().default(null),
      }),
    ])
    .prefault({ kind: 'constant' }),
});

/** FedProx's proximal term, a site-side setting every strategy carries. */
const proxMu = finite.refine((x) => x >= 0 && x <= 100, 'proxMu must be in [0, 100]').default(0);
/**
 * Decay of the server's moving average of the global weights, a setting every strategy carries:
 * with it, each round also publishes the average (what is scored, shown and downloaded), while
 * sites go on training from the strategy's weights. 0: off.
 */
const serverEma = finite.refine((x) => x >= 0 && x < 1, 'serverEma must be in [0, 1)').default(0);
const serverLr = (d: number) => finite.refine((x) => x > 0 && x <= 100, 'lr must be in (0, 100]').default(d);
const beta = (d: number) => finite.refine((x) => x >= 0 && x < 1, 'must be in [0, 1)').default(d);
const tau = finite.refine((x) => x > 0 && x < 1, 'tau must be in (0, 1)').default(1e-3);

const strategy = z
  .discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('fedavg'), lr: serverLr(1), proxMu, serverEma }),
    z.strictObject({ kind: z.literal('fedavgm'), lr: serverLr(1), momentum: beta(0.9), proxMu, serverEma }),
    /** SCAFFOLD: FedAvg's server step, with control variates that correct each site's local drift. */
    z.strictObject({ kind: z.literal('scaffold'), lr: serverLr(1), proxMu, serverEma }),
    z.strictObject({
      kind: z.literal('fedadam'),
      lr: serverLr(0.01),
      beta1: beta(0.9),
      beta2: beta(0.99),
      tau,
      proxMu,
      serverEma,
    }),
    z.strictObject({
      kind: z.literal('fedyogi'),
      lr: serverLr(0.01),
      beta1: beta(0.9),
      beta2: beta(0.99),
      tau,
      proxMu,
      serverEma,
    }),
  ])
  .prefault({ kind: 'fedavg' });

const secagg = z.strictObject({
  /** 'active' tolerates a deviating coordinator (threshold 2n/3 + 1); 'honest-but-curious' n/2 + 1. */
  threatModel: z.enum(['active', 'honest-but-curious']).default('active'),
  /** complete: every pair of sites masks; harary: SecAgg+ with `neighbours` per site. */
  graph: z
    .discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('complete') }),
      z.strictObject({ kind: z.literal('harary'), neighbours: int(2, 10_000) }),
    ])
    .prefault({ kind: 'complete' }),
  /** Largest magnitude of an update value before quantization. */
  clip: finite.refine((x) => x > 0, 'clip must be positive').default(0.05),
  levels: int(2, 2 ** 24).default(65_536),
  maxWeight: finite.refine((x) => x > 0 && x <= 2 ** 31, 'maxWeight must be in (0, 2^31]').default(100_000),
});

const dp = z.strictObject({
  /** L2 norm each site's update is clipped to. */
  clip: finite.refine((x) => x > 0, 'clip must be positive').default(10),
  noiseMultiplier: finite
    .refine((x) => x >= 0 && x <= 1000, 'noiseMultiplier must be in [0, 1000]')
    .default(0),
  delta: finite.refine((x) => x > 0 && x < 1, 'delta must be in (0, 1)').default(1e-5),
  /** The epsilon after which the federation stops; null: no budget. */
  epsilonBudget: finite
    .refine((x) => x > 0, 'epsilonBudget must be positive')
    .nullable()
    .default(null),
});

const privacy = z.strictObject({
  /** Whether admins see each site's evaluation figures (researchers never do). */
  perSiteMetrics: z.boolean().default(true),
  /**
   * Sites send no count in plain text: the login hello leaves out the subject count and
   * evaluation reports weigh each site alike (count 1); sample counts stay only inside the
   * masked vector, where the coordinator learns their sum.
   */
  hideCounts: z.boolean().default(false),
  /**
   * Sites send no figure in plain text: each appends its training loss and its scores of the
   * round's starting model (MAE, PSNR, SSIM, memorization distances) to its masked update, so the
   * coordinator learns only their weighted means; no separate evaluation stage runs.
   */
  secureMetrics: z.boolean().default(false),
});

/** The schema of a federation's configuration; every section and field has a default. */
export const federationConfig = z
  .strictObject({
    task: task.prefault({}),
    model: model.prefault({}),
    plan: plan.prefault({}),
    strategy,
    secagg: secagg.prefault({}),
    dp: dp.prefault({}),
    privacy: privacy.prefault({}),
  })
  .superRefine((c, ctx) => {
    if (c.plan.maxSites < c.plan.minSites)
      ctx.addIssue({
        code: 'custom',
        path: ['plan', 'maxSites'],
        message: `maxSites (${c.plan.maxSites}) is below minSites (${c.plan.minSites})`,
      });
    const sched = c.plan.lrSchedule;
    if (sched.kind === 'cosine' && sched.rounds === null && c.plan.rounds === null)
      ctx.addIssue({
        code: 'custom',
        path: ['plan', 'lrSchedule', 'rounds'],
        message: 'a cosine schedule needs its length: set plan.lrSchedule.rounds or plan.rounds',
      });
    if (c.strategy.kind === 'scaffold' && c.dp.noiseMultiplier > 0)
      ctx.addIssue({
        code: 'custom',
        path: ['strategy', 'kind'],
        message:
          "scaffold cannot run with differential privacy: a site's control variate is derived from its update before clipping and noise, so the noise would not cover it; use fedavg (or another strategy) with dp.noiseMultiplier, or set it to 0",
      });
    const g = c.secagg.graph;
    if (g.kind === 'harary' && g.neighbours >= c.plan.maxSites)
      ctx.addIssue({
        code: 'custom',
        path: ['secagg', 'graph', 'neighbours'],
        message: `a Harary graph of ${g.neighbours} neighbours needs more than ${g.neighbours} sites; maxSites is ${c.plan.maxSites}`,
      });
  });

export type FederationConfig = z.infer<typeof federationConfig>;
/** What a client may send for a configuration: any section or field may be left out. */
export type FederationConfigInput = z.input<typeof federationConfig>;
export type StrategyConfig = FederationConfig['strategy'];

/** Keys of earlier versions, and where their settings live now. */
const RENAMED: Record<string, string> = {
  modelConfig: 'model',
  serverOptimizer: 'strategy',
  'plan.fedProxMu': 'strategy.proxMu',
  'secagg.stageSeconds': 'plan.stageSeconds',
};

/** A configuration that does not parse; `problems` names each path and what is wrong there. */
export class FederationConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(
      `invalid federation configuration: ${problems.slice(0, 8).join('; ')}${problems.length > 8 ? `; and ${problems.length - 8} more` : ''}`,
    );
    this.name = 'FederationConfigError';
  }
}

function problemsOf(err: z.ZodError): string[] {
  return err.issues.flatMap((i) => {
    const at = i.path.join('.');
    if (i.code === 'unrecognized_keys')
      return i.keys.map((k) => {
        const path = at ? `${at}.${k}` : k;
        return RENAMED[path] ? `${path}: unknown key (it is now ${RENAMED[path]})` : `${path}: unknown key`;
      });
    return [`${at || '(config)'}: ${i.message}`];
  });
}

/** Parses a configuration (filling every default), or throws FederationConfigError naming every problem. */
export function parseFederationConfig(input: unknown): FederationConfig {
  const r = federationConfig.safeParse(input ?? {});
  if (!r.success) throw new FederationConfigError(problemsOf(r.error));
  return r.data;
}

/** The configuration of a federation created with no settings at all. */
export const DEFAULT_FEDERATION_CONFIG: FederationConfig = parseFederationConfig({});

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A change applied to a configuration: objects merge key by key, anything else (numbers, lists,
 * null) replaces; a strategy or graph of another kind replaces the whole section so that the
 * other kind's fields do not linger. The result is parsed like a new configuration.
 */
export function applyConfigPatch(current: FederationConfig, patch: unknown): FederationConfig {
  const merge = (a: unknown, b: unknown): unknown => {
    if (!isPlainObject(a) || !isPlainObject(b)) return b;
    if ('kind' in b && b.kind !== a.kind) return b;
    const out: Record<string, unknown> = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = v === undefined ? a[k] : merge(a[k], v);
    return out;
  };
  if (!isPlainObject(patch)) throw new FederationConfigError(['(patch): expected an object of sections']);
  return parseFederationConfig(merge(current, patch));
}

/** The JSON Schema of a configuration as clients send it (for the OpenAPI description and forms). */
export function federationConfigJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(federationConfig, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}
