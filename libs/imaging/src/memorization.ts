/**
 * A check that a generative model is not reproducing its training images: how far each
 * synthesized image lies from the nearest training image, next to how far real unseen images (the
 * validation targets) lie from it. A model that memorizes puts its outputs much nearer the
 * training set than new patients are (ratio well below 1). Computed at the site; only the means
 * leave it.
 */

/** Root-mean-square distance between two images of the same size. */
function rms(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    s += d * d;
  }
  return Math.sqrt(s / a.length);
}

/** For each image, the RMS distance to its nearest reference (brute force). */
export function nearestDistances(
  images: readonly Float32Array[],
  references: readonly Float32Array[],
): number[] {
  if (references.length === 0) throw new RangeError('no reference images to compare with');
  return images.map((img) => {
    let best = Number.POSITIVE_INFINITY;
    for (const r of references) {
      if (r.length !== img.length)
        throw new RangeError(`images of ${img.length} and ${r.length} pixels cannot be compared`);
      const d = rms(img, r);
      if (d < best) best = d;
    }
    return best;
  });
}

/** The mean nearest-training distance of synthetic and of real unseen images, and their ratio. */
export interface MemorizationFigures {
  synthToTrain: number;
  realToTrain: number;
  /** synthToTrain / realToTrain: about 1 when outputs are as new as new patients; near 0 when copied. */
  ratio: number;
}

export function memorizationFigures(
  synthetic: readonly Float32Array[],
  real: readonly Float32Array[],
  train: readonly Float32Array[],
): MemorizationFigures {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const synthToTrain = mean(nearestDistances(synthetic, train));
  const realToTrain = mean(nearestDistances(real, train));
  return { synthToTrain, realToTrain, ratio: realToTrain > 0 ? synthToTrain / realToTrain : 0 };
}
