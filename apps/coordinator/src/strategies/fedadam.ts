import { AdaptiveStrategy } from './adaptive-strategy';

/** FedAdam (Reddi et al. 2021): v <- b2 v + (1-b2) d^2. */
export class FedAdam extends AdaptiveStrategy {
  readonly kind = 'fedadam';

  protected secondMoment(v: number, d2: number): number {
    const { beta2 } = this.config;
    return beta2 * v + (1 - beta2) * d2;
  }
}
