import { createHash } from 'node:crypto';
import type { FederationConfig } from '@fedsynth/protocol';
import { StrategyError } from './strategy';

/** The part of a plan that decides how many sites a round draws. */
export type SelectionPlan = Pick<FederationConfig['plan'], 'fraction' | 'minSites' | 'maxSites'>;

/**
 * Draws ceil(fraction x online) sites, at least minSites and at most maxSites, ordered by
 * sha256(`${roundId}/${siteId}`): every round draws afresh, and anyone with the round id can
 * reproduce the draw. Returns the drawn ids sorted.
 * @throws StrategyError TOO_FEW_SITES when fewer than minSites are online; INVALID_INPUT for an
 * empty round id or a site listed twice.
 * @example selectSites('fed:3', ['a', 'b', 'c', 'd'], { fraction: 0.5, minSites: 3, maxSites: 10 })
 */
export function selectSites(roundId: string, online: readonly string[], plan: SelectionPlan): string[] {
  if (typeof roundId !== 'string' || roundId.length === 0)
    throw new StrategyError('INVALID_INPUT', 'roundId must be a non-empty string');
  const seen = new Set<string>();
  for (const id of online) {
    if (typeof id !== 'string' || id.length === 0)
      throw new StrategyError('INVALID_INPUT', 'online site ids must be non-empty strings');
    if (seen.has(id)) throw new StrategyError('INVALID_INPUT', `site ${id} is listed online twice`);
    seen.add(id);
  }
  const { fraction, minSites, maxSites } = plan;
  if (online.length < minSites)
    throw new StrategyError(
      'TOO_FEW_SITES',
      `too few sites online: ${online.length} of the ${minSites} needed`,
    );
  const count = Math.min(maxSites, online.length, Math.max(minSites, Math.ceil(fraction * online.length)));
  const draw = new Map(
    online.map((id) => [id, createHash('sha256').update(`${roundId}/${id}`).digest('hex')]),
  );
  return [...online]
    .sort((a, b) => (draw.get(a)! < draw.get(b)! ? -1 : 1))
    .slice(0, count)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
