import { availableParallelism } from 'node:os';
import { cudaInfo, describeCuda } from './gpu-info';
import { tf } from './tf';
import { activateWebGpu, describeAdapter, webGpuAdapter } from './webgpu';

/**
 * Backends in the order `auto` tries them: CUDA through libtensorflow, then any GPU through WebGPU
 * (a hardware adapter only), then the CPU (libtensorflow, WebAssembly, plain JavaScript).
 */
export const BACKENDS = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendChoice = BackendName | 'auto';

/** What was chosen, and on what. */
export interface BackendInfo {
  backend: BackendName;
  /** tfjs's own name for the backend ('tensorflow', 'wasm', 'cpu'). */
  tfjsBackend: string;
  device: string;
  /** Why faster backends were not used (missing packages, failed initialization). */
  skipped: { backend: BackendName; reason: string }[];
}

/** How to enable the native backends, for messages and `doctor`. */
export const GPU_HINT =
  'to train on a GPU: with its Vulkan driver installed (libvulkan1 and the vendor driver), the webgpu backend ' +
  '(optional dependencies webgpu and @tensorflow/tfjs-backend-webgpu, installed by npm) is taken by auto; ' +
  'on a CUDA GPU, install the native backend: `npm install @tensorflow/tfjs-node-gpu@4.22.0` ' +
  '(needs CUDA 11.2+ and cuDNN 8, and network access for its libtensorflow download), then use --backend tensorflow-gpu';

function tryRequire(name: string): string | null {
  try {
    // Native backends are optional dependencies that fail to install where libtensorflow cannot be
    // downloaded; load them only when present.
    require(name);
    return null;
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    return /Cannot find module/.test(msg) ? `${name} is not installed` : `${name} failed to load: ${msg}`;
  }
}

async function activate(name: BackendName, auto: boolean): Promise<string | null> {
  // `auto` passes over a software adapter (llvmpipe and the like), which is slower than wasm.
  if (name === 'webgpu') return activateWebGpu({ allowSoftware: !auto });
  if (name === 'tensorflow-gpu' || name === 'tensorflow') {
    const missing = tryRequire(
      name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node',
    );
    if (missing) return missing;
    if (!(await tf.setBackend('tensorflow'))) return 'the tensorflow backend did not initialize';
    if (name === 'tensorflow-gpu') {
      // tfjs-node-gpu falls back to the CPU silently when libtensorflow finds no usable GPU.
      const usingGpu = (tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice;
      if (usingGpu === false)
        return (
          `@tensorflow/tfjs-node-gpu is installed but TensorFlow found no GPU (${describeCuda(cudaInfo())}): ` +
          'check that nvidia-smi sees the GPU and that the CUDA 11.2+ and cuDNN 8 libraries are on LD_LIBRARY_PATH'
        );
    }
    return null;
  }
  try {
    if (!(await tf.setBackend(name))) return `the ${name} backend did not initialize`;
  } catch (err) {
    return `the ${name} backend failed: ${(err as Error).message}`;
  }
  return null;
}

function describeDevice(name: BackendName): string {
  switch (name) {
    case 'tensorflow-gpu':
      return `${describeCuda(cudaInfo())}, via libtensorflow (tfjs-node-gpu)`;
    case 'tensorflow':
      return 'CPU via libtensorflow (tfjs-node)';
    case 'webgpu': {
      const a = webGpuAdapter();
      return `${a ? describeAdapter(a) : 'unknown adapter'}, via WebGPU (Dawn)`;
    }
    case 'wasm': {
      const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
      const threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
      return `CPU via WebAssembly (${simd ? 'SIMD' : 'no SIMD'}, ${threads ? 'multi-threaded' : 'single-threaded'})`;
    }
    default:
      return 'CPU, plain JavaScript (slow: a numerical reference, not for training)';
  }
}

/**
 * Selects the training backend: `auto` takes tfjs-node-gpu, then tfjs-node when installed, else
 * wasm, else cpu; a named backend must work or this throws, naming why. `FEDSYNTH_BACKEND`
 * overrides the default choice.
 */
export async function selectBackend(
  choice: BackendChoice = (process.env.FEDSYNTH_BACKEND as BackendChoice) || 'auto',
): Promise<BackendInfo> {
  if (choice !== 'auto' && !BACKENDS.includes(choice)) {
    throw new Error(`unknown backend "${choice}"; choose one of auto, ${BACKENDS.join(', ')}`);
  }
  const order: BackendName[] = choice === 'auto' ? [...BACKENDS] : [choice];
  const skipped: BackendInfo['skipped'] = [];
  for (const name of order) {
    const problem = await activate(name, choice === 'auto');
    if (problem === null) {
      await tf.ready();
      return { backend: name, tfjsBackend: tf.getBackend(), device: describeDevice(name), skipped };
    }
    skipped.push({ backend: name, reason: problem });
  }
  throw new Error(
    `backend ${choice} is not available: ${skipped.map((s) => s.reason).join('; ')}${choice.startsWith('tensorflow') ? `; ${GPU_HINT}` : ''}`,
  );
}

/**
 * How many threads training and synthesis use by default on a backend: one per core on wasm and
 * cpu, which run on one thread each in Node; one on the native backends, where libtensorflow
 * already uses every core, or the GPU, which more sessions would only share.
 */
export function defaultThreads(backend: string = tf.getBackend()): number {
  return backend === 'wasm' || backend === 'cpu' ? availableParallelism() : 1;
}
