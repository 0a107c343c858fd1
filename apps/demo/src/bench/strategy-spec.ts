import { UsageError } from '@fedsynth/cli-kit';
import { type FederationConfigInput, parseFederationConfig } from '@fedsynth/protocol';

/**
 * One federated variant the fed-vs-central bench runs: a server strategy with its settings, and
 * the plan settings that go with it (local EMA, learning-rate schedule, how the same gradient steps
 * are split into rounds and local steps).
 */
export interface StrategyVariant {
  /** As the user wrote it, e.g. "fedavgm:momentum=0.9". */
  label: string;
  strategy: NonNullable<FederationConfigInput['strategy']>;
  plan: {
    localEma?: number;
    lrSchedule?: { kind: 'cosine'; minFactor: number };
    keepOptimizer?: boolean;
    /** The sites' learning rate instead of the bench's --lr (central keeps --lr). */
    lr?: number;
  };
  /** Rounds to run instead of the bench's --rounds (local steps change so the total stays the same). */
  rounds?: number;
}

/** The names a variant may start with; fedprox is FedAvg with a proximal term, scaffold FedAvg with control variates. */
const KINDS = ['fedavg', 'fedavgm', 'fedadam', 'fedyogi', 'fedprox', 'scaffold'] as const;
/** Keys each kind's strategy takes, as the bench spells them (mu is the proximal term). */
const STRATEGY_KEYS: Record<(typeof KINDS)[number], string[]> = {
  fedavg: ['lr', 'mu'],
  fedavgm: ['lr', 'momentum', 'mu'],
  fedadam: ['lr', 'beta1', 'beta2', 'tau', 'mu'],
  fedyogi: ['lr', 'beta1', 'beta2', 'tau', 'mu'],
  fedprox: ['lr', 'mu'],
  scaffold: ['lr', 'mu'],
};
/** Keys every variant takes: plan settings. */
const PLAN_KEYS = ['ema', 'cosine', 'keepopt', 'locallr', 'rounds'];

/** The comparison `--compare` runs: each server strategy, FedProx, local EMA, a cosine schedule, more rounds. */
export const COMPARE_SET = [
  'fedavg',
  'fedavg:lr=2',
  'fedavgm',
  'fedadam',
  'fedyogi',
  'fedprox',
  'fedavg:ema=0.9',
  'fedavg:cosine=0.1',
  'fedavg:rounds=2x',
];

/**
 * Parses "kind[:key=value,...]". Keys: a strategy's own (lr, momentum, beta1, beta2, tau; mu for
 * FedProx's proximal term), ema=<decay> (local EMA), cosine=<minFactor> (learning rate decayed by a
 * cosine over the rounds), keepopt=1|0 (sites carry Adam's state across rounds, the default, or not), locallr=<x> (the
 * sites' learning rate, central keeps the bench's), rounds=<n> or rounds=<k>x (n rounds, or k times the bench's rounds, with
 * local steps divided to keep the total). Checked against the federation configuration's schema.
 */
export function parseVariant(spec: string, benchRounds: number, benchSteps: number): StrategyVariant {
  const bad = (why: string) => new UsageError(`--strategy ${spec}: ${why}`);
  const [kindRaw, rest = ''] = spec.trim().split(':', 2);
  const kind = kindRaw as (typeof KINDS)[number];
  if (!KINDS.includes(kind)) throw bad(`unknown strategy "${kindRaw}"; known: ${KINDS.join(', ')}`);
  const strategy: Record<string, unknown> = { kind: kind === 'fedprox' ? 'fedavg' : kind };
  if (kind === 'fedprox') strategy.proxMu = 0.01;
  const plan: StrategyVariant['plan'] = {};
  let rounds: number | undefined;
  for (const pair of rest ? rest.split(',') : []) {
    const [key, value] = pair.split('=', 2);
    if (value === undefined || value === '') throw bad(`"${pair}" is not key=value`);
    if (key === 'rounds') {
      const times = value.endsWith('x');
      const n = Number(times ? value.slice(0, -1) : value);
      if (!Number.isInteger(n) || n < 1) throw bad(`rounds must be a whole number or <k>x, got ${value}`);
      rounds = times ? n * benchRounds : n;
      if ((benchRounds * benchSteps) % rounds !== 0)
        throw bad(`${benchRounds} rounds x ${benchSteps} steps cannot be split evenly into ${rounds} rounds`);
      continue;
    }
    const x = Number(value);
    if (!Number.isFinite(x)) throw bad(`${key} must be a number, got ${value}`);
    if (key === 'ema') plan.localEma = x;
    else if (key === 'keepopt') {
      if (x !== 0 && x !== 1) throw bad(`keepopt must be 1 or 0, got ${value}`);
      plan.keepOptimizer = x === 1;
    } else if (key === 'locallr') plan.lr = x;
    else if (key === 'cosine') plan.lrSchedule = { kind: 'cosine', minFactor: x };
    else if (STRATEGY_KEYS[kind].includes(key)) strategy[key === 'mu' ? 'proxMu' : key] = x;
    else
      throw bad(`unknown key "${key}"; ${kind} takes ${[...STRATEGY_KEYS[kind], ...PLAN_KEYS].join(', ')}`);
  }
  try {
    parseFederationConfig({ strategy, plan: { ...plan, rounds: rounds ?? benchRounds } });
  } catch (err) {
    throw bad((err as Error).message);
  }
  return {
    label: spec.trim(),
    strategy: strategy as StrategyVariant['strategy'],
    plan,
    ...(rounds === undefined ? {} : { rounds }),
  };
}
