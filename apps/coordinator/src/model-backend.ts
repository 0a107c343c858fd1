let ready: Promise<unknown> | null = null;

/**
 * The coordinator runs the model only to initialize a federation's first checkpoint and to render
 * dashboard samples: libs/diffusion's automatic choice (native, then wasm, then plain JS;
 * $FEDSYNTH_BACKEND overrides), selected once per process.
 */
export async function ensureModelBackend(): Promise<void> {
  ready ??= import('@fedsynth/diffusion').then((d) => d.selectBackend());
  await ready;
}
