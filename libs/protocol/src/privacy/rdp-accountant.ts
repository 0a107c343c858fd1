/**
 * Rényi-DP accountant for the (Poisson-subsampled) Gaussian mechanism, used to report the
 * cumulative (epsilon, delta) of a site's contributions across rounds.
 *
 * Model: in each round a site's clipped update (L2 norm <= C) enters the securely aggregated sum,
 * which carries Gaussian noise of standard deviation z * C in total (each of m sites adds
 * N(0, (z C)^2 / m), so no party ever sees an un-noised sum). The site takes part in a round with
 * probability q (q = 1 when every round includes it). Sensitivity is per site (site-level DP).
 *
 * RDP of the sampled Gaussian mechanism at integer order a (Mironov, Talwar, Zhang 2019, eq. for
 * integer alpha):  A_a = sum_k C(a,k) (1-q)^(a-k) q^k exp((k^2 - k) / (2 z^2)),  RDP(a) = ln(A_a)/(a-1).
 * RDP composes additively over rounds; the conversion to (epsilon, delta) uses
 * eps = RDP + ln((a-1)/a) - (ln(delta) + ln(a)) / (a-1)  (Canonne, Kamath, Steinke 2020), minimized
 * over the orders. Only integer orders are used: a slightly looser bound than with fractional orders,
 * never a wrong one.
 */

/** Orders at which RDP is tracked. */
export const DEFAULT_ORDERS: readonly number[] = [
  2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96, 128, 192, 256,
];

function logAdd(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log(Math.exp(a - m) + Math.exp(b - m));
}

function logBinomial(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log(n - k + i) - Math.log(i);
  return s;
}

/**
 * RDP of one step of the sampled Gaussian mechanism at integer order `order`.
 * @param q sampling probability in [0, 1]
 * @param noiseMultiplier z > 0 (noise std divided by the clipping norm)
 * @throws RangeError on parameters outside their domain
 */
export function sampledGaussianRdp(q: number, noiseMultiplier: number, order: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`sampling probability q must be in [0, 1], got ${q}`);
  if (!(noiseMultiplier > 0)) throw new RangeError(`noise multiplier must be > 0, got ${noiseMultiplier}`);
  if (!Number.isInteger(order) || order < 2)
    throw new RangeError(`order must be an integer >= 2, got ${order}`);
  if (q === 0) return 0;
  const s2 = noiseMultiplier * noiseMultiplier;
  if (q === 1) return order / (2 * s2);
  let logA = -Infinity;
  const l1q = Math.log1p(-q);
  const lq = Math.log(q);
  for (let k = 0; k <= order; k++) {
    const term = logBinomial(order, k) + (order - k) * l1q + k * lq + (k * k - k) / (2 * s2);
    logA = logAdd(logA, term);
  }
  return logA / (order - 1);
}

/** (epsilon, delta) from accumulated RDP values at the given orders; returns the best order too. */
export function rdpToEpsilon(
  rdp: readonly number[],
  orders: readonly number[],
  delta: number,
): { epsilon: number; order: number } {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  if (rdp.length !== orders.length) throw new RangeError('rdp and orders must have the same length');
  let best = { epsilon: Infinity, order: orders[0] ?? 2 };
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i];
    const eps = rdp[i] + Math.log((a - 1) / a) - (Math.log(delta) + Math.log(a)) / (a - 1);
    if (eps < best.epsilon) best = { epsilon: Math.max(0, eps), order: a };
  }
  return best;
}

/** Serializable accountant state, kept in the agent's state directory between rounds. */
export interface AccountantState {
  orders: number[];
  rdp: number[];
  rounds: number;
}

/** Accumulates the RDP of each noised round a site takes part in. */
export class RdpAccountant {
  private readonly orders: number[];
  private readonly rdp: number[];
  private roundsCount: number;

  constructor(state?: AccountantState) {
    this.orders = state ? [...state.orders] : [...DEFAULT_ORDERS];
    this.rdp = state ? [...state.rdp] : this.orders.map(() => 0);
    this.roundsCount = state?.rounds ?? 0;
    if (this.rdp.length !== this.orders.length) throw new RangeError('accountant state is inconsistent');
  }

  /** Records `steps` compositions of the sampled Gaussian mechanism. */
  record(noiseMultiplier: number, samplingRate = 1, steps = 1): void {
    for (let i = 0; i < this.orders.length; i++) {
      this.rdp[i] += steps * sampledGaussianRdp(samplingRate, noiseMultiplier, this.orders[i]);
    }
    this.roundsCount += steps;
  }

  /** Cumulative epsilon at the given delta (Infinity when nothing noised was recorded yet and no rounds ran is 0). */
  epsilon(delta: number): number {
    if (this.roundsCount === 0) return 0;
    return rdpToEpsilon(this.rdp, this.orders, delta).epsilon;
  }

  get rounds(): number {
    return this.roundsCount;
  }

  toJSON(): AccountantState {
    return { orders: [...this.orders], rdp: [...this.rdp], rounds: this.roundsCount };
  }
}
