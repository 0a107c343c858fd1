import {
  ctGrey,
  encodePng,
  generatePhantomPair,
  normalizeMr,
  resize2d,
  sideBySide,
  unitToHu,
} from '@fedsynth/imaging';
import { ensureModelBackend } from '../model-backend';

/** How the three panels are drawn: each pixel repeated this many times, 8 px gaps. */
const SCALE = 4;

/**
 * Source | synthetic | target for a phantom the coordinator generates itself (never site data):
 * the middle slice of a fixed head phantom, translated by the given global model with a fixed-seed
 * DDIM, as one grayscale PNG (CT window -1000..1500 HU). Results are cached by model hash.
 */
export class SampleRenderer {
  private readonly cache = new Map<string, Promise<Buffer>>();

  render(sha: string, model: () => Promise<Uint8Array>): Promise<Buffer> {
    let p = this.cache.get(sha);
    if (!p) {
      p = this.draw(model);
      p.catch(() => this.cache.delete(sha));
      this.cache.set(sha, p);
      if (this.cache.size > 32) this.cache.delete(this.cache.keys().next().value as string);
    }
    return p;
  }

  private async draw(load: () => Promise<Uint8Array>): Promise<Buffer> {
    await ensureModelBackend();
    const d = await import('@fedsynth/diffusion');
    const { model, metadata } = d.decodeModel(await load(), 'global model');
    try {
      const size = Number(metadata.size ?? 64);
      const phantom = generatePhantomPair({ seed: 4242, profile: 'site-a', size: size * 2, slices: 8 });
      const [nx, ny, nz] = phantom.mr.dims;
      const z = Math.floor(nz / 2);
      const px = nx * ny;
      const mask = Uint8Array.from(phantom.mask.data, (x) => (x > 0 ? 1 : 0));
      const mr = normalizeMr(phantom.mr.data, mask).data.subarray(z * px, (z + 1) * px);
      const source = resize2d(mr, nx, ny, size, size);
      const { mean } = await d.ddimSample(d.modelDenoiser(model), source, 1, size, {
        schedule: d.makeSchedule((metadata.schedule ?? 'cosine') as 'cosine', 1000),
        prediction: (metadata.prediction ?? 'sample') as 'sample',
        steps: 10,
        seed: 0,
        batchSize: 1,
      });
      const sct = unitToHu(mean);
      const ct = resize2d(phantom.ct.data.subarray(z * px, (z + 1) * px), nx, ny, size, size);
      const strip = sideBySide(
        [
          Float32Array.from(source, (v) => ((v + 1) / 2) * 255),
          Float32Array.from(sct, ctGrey),
          Float32Array.from(ct, ctGrey),
        ],
        size,
        size,
        { scale: SCALE, gap: 8 },
      );
      return encodePng(strip.data, strip.width, strip.height, 8);
    } finally {
      model.dispose();
    }
  }
}
