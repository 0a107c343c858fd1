/**
 * The federation the system tests train: a U-Net small enough for CPU in seconds (16x16 inputs,
 * channels 8/16/16), three sites, x0 prediction; `plan` and `secagg` override the defaults.
 */
export function tinyFederation(plan: Record<string, unknown> = {}, secagg: Record<string, unknown> = {}) {
  return {
    modelConfig: { size: 16, channels: [8, 16, 16], numResBlocks: 1 },
    plan: {
      localSteps: 10,
      batchSize: 8,
      lr: 1e-3,
      prediction: 'sample',
      minSites: 3,
      waitSeconds: 120,
      ...plan,
    },
    secagg: { clip: 0.2, levels: 65536, maxWeight: 10_000, ...secagg },
  };
}
