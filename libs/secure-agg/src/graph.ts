import { deriveKey } from './kdf';
import type { RoundConfig } from './params';
import { Prg } from './prg';

/**
 * Neighbourhoods of a round: for the complete graph everyone; for SecAgg+ a k-regular Harary graph
 * H(k, n) over a pseudo-random relabelling of the participants (seeded, so server and clients agree).
 * Returns, for each participant index, its neighbours' indices (sorted, self excluded).
 */
export function neighbourhoods(config: RoundConfig, session: Uint8Array): Map<number, number[]> {
  const indices = config.participants.map((p) => p.index).sort((a, b) => a - b);
  const n = indices.length;
  const out = new Map<number, number[]>();
  const g = config.graph;
  if (g.kind === 'complete' || g.neighbours >= n - 1) {
    for (const i of indices)
      out.set(
        i,
        indices.filter((j) => j !== i),
      );
    return out;
  }
  // Fisher-Yates with an unbiased bounded draw from a session-bound PRG.
  const prg = new Prg(deriveKey(g.seed, session, 'relabel'));
  const order = [...indices];
  for (let i = n - 1; i > 0; i--) {
    const bound = i + 1;
    const limit = Math.floor(2 ** 32 / bound) * bound;
    let r: number;
    do r = prg.next(1)[0];
    while (r >= limit);
    const j = r % bound;
    [order[i], order[j]] = [order[j], order[i]];
  }
  // H(k, n): ring neighbours at distance 1..floor(k/2); for odd k (n even) also the opposite node.
  const half = Math.floor(g.neighbours / 2);
  order.forEach((idx, pos) => {
    const ns: number[] = [];
    for (let d = 1; d <= half; d++) ns.push(order[(pos + d) % n], order[(pos - d + n) % n]);
    if (g.neighbours % 2 === 1) ns.push(order[(pos + n / 2) % n]);
    out.set(
      idx,
      ns.sort((a, b) => a - b),
    );
  });
  return out;
}
