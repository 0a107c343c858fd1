import { AdaptiveStrategy } from './adaptive-strategy';

/**
 * FedYogi (Reddi et al. 2021): v <- v - (1-b2) d^2 sign(v - d^2), so v moves towards d^2 by an
 * additive step and grows more slowly than Adam's when updates get large.
 */
export class FedYogi extends AdaptiveStrategy {
  readonly kind = 'fedyogi';

  protected secondMoment(v: number, d2: number): number {
    return v - (1 - this.config.beta2) * d2 * Math.sign(v - d2);
  }
}
