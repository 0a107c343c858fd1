import {
  conditionChannels,
  conditionOf,
  ctGrey,
  DEFAULT_TASK,
  encodePng,
  generatePhantomSubject,
  kindOf,
  normalizeTaskSubject,
  parseTask,
  resize2d,
  sideBySide,
  suvFactor,
  taskModalities,
  unitToHu,
  withColourBar,
} from '@fedsynth/imaging';
import { ensureModelBackend } from '../model-backend';

/** Panels at least this wide: small models' pixels repeated (nearest neighbour), 8 px gaps. */
const MIN_PANEL = 256;

/**
 * Source | synthetic | target for a phantom the coordinator generates itself (never site data):
 * the middle slice of a fixed head phantom imaged with the model's task's modalities, translated by
 * the given global model with a fixed-seed DDIM, as one grayscale PNG (CT window -1000..1500 HU;
 * MR and PET on their normalized scale). Results are cached by model hash.
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
      // The model's own task (MRI -> CT for models made before tasks were recorded).
      const task = metadata.task ? parseTask(metadata.task) : DEFAULT_TASK;
      const phantom = generatePhantomSubject({
        seed: 4242,
        profile: 'site-a',
        size: size * 2,
        slices: Math.max(8, 2 * task.context + 1),
        anatomy: 'head',
        modalities: taskModalities(task),
      });
      const norm = normalizeTaskSubject(
        {
          id: 'sample',
          volumes: phantom.volumes,
          origins: {},
          mask: phantom.mask,
          ...(phantom.pet ? { suvFactor: suvFactor({ ...phantom.pet, decayCorrection: 'ADMIN' }) } : {}),
        },
        task,
      );
      const [nx, ny, nz] = norm.dims;
      const z = Math.floor(nz / 2);
      const px = nx * ny;
      const source = conditionOf(norm, z, task.context, size);
      const { mean } = await d.ddimSample(d.modelDenoiser(model), source, 1, size, {
        schedule: d.makeSchedule((metadata.schedule ?? 'cosine') as 'cosine', 1000),
        prediction: (metadata.prediction ?? 'sample') as 'sample',
        steps: 10,
        seed: 0,
        batchSize: 1,
        channels: conditionChannels(task),
      });
      const target = resize2d(norm.target.subarray(z * px, (z + 1) * px), nx, ny, size, size);
      const first = resize2d(norm.sources[0].subarray(z * px, (z + 1) * px), nx, ny, size, size);
      // CT in its window (-1000..1500 HU); MR and PET on their normalized scale.
      const grey = (u: Float32Array) =>
        kindOf(task.target) === 'ct'
          ? Float32Array.from(unitToHu(u), ctGrey)
          : Float32Array.from(u, (v) => ((Math.max(-1, Math.min(1, v)) + 1) / 2) * 255);
      const strip = sideBySide(
        [Float32Array.from(first, (v) => ((v + 1) / 2) * 255), grey(mean), grey(target)],
        size,
        size,
        { scale: Math.max(1, Math.ceil(MIN_PANEL / size)), gap: 8 },
      );
      // The bar reads the synthetic and target panels: HU for CT, the normalized scale otherwise.
      const barred =
        kindOf(task.target) === 'ct'
          ? withColourBar(strip, -1000, 1500)
          : withColourBar(strip, 0, 1, { digits: 1 });
      return encodePng(barred.data, barred.width, barred.height, 8);
    } finally {
      model.dispose();
    }
  }
}
