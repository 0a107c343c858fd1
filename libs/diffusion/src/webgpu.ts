import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tf } from './tf';

/**
 * The WebGPU backend in Node: Dawn's bindings (the `webgpu` package, prebuilt, Vulkan on Linux) with
 * `@tensorflow/tfjs-backend-webgpu`, both optional dependencies. Any GPU with a Vulkan, Metal or
 * D3D12 driver trains from an `npm install` alone, without CUDA or libtensorflow.
 */

/** The adapter WebGPU chose, as it describes itself. */
export interface WebGpuAdapter {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (llvmpipe/lavapipe, SwiftShader, WARP): correct but slower than wasm. */
  software: boolean;
  maxBufferMiB: number;
}

/** A software rasterizer posing as a GPU, by the adapter's own words. */
export function isSoftwareAdapter(info: {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}): boolean {
  if (info.isFallbackAdapter) return true;
  const words = [info.vendor, info.architecture, info.device, info.description].join(' ');
  return /llvmpipe|lavapipe|swiftshader|microsoft basic render|\bwarp\b|softpipe/i.test(words);
}

/** "llvmpipe (mesa, LLVM 15.0.6 256 bits), software" style one-liner. */
export function describeAdapter(a: WebGpuAdapter): string {
  const name = a.description || a.device || a.architecture || 'unnamed adapter';
  const maker = [a.vendor, a.architecture].filter(Boolean).join(' ');
  return `${name}${maker && !name.includes(maker) ? ` (${maker})` : ''}${a.software ? ', a software adapter on the CPU' : ''}`;
}

/** On Linux Dawn needs the Vulkan loader; without it, loading Dawn only prints warnings. */
function vulkanLoaderMissing(): boolean {
  if (process.platform !== 'linux') return false;
  for (const cmd of ['ldconfig', '/sbin/ldconfig']) {
    try {
      const out = execFileSync(cmd, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      return !/libvulkan\.so\.1\b/.test(out);
    } catch {
      // try the next path
    }
  }
  return false; // cannot tell: let Dawn try
}

/**
 * Whether Linux shows a GPU device (a DRM render node or an NVIDIA device file). Without one Dawn
 * can only find a software adapter, which `auto` would pass over anyway: it is not loaded at all.
 */
function gpuDeviceNodePresent(): boolean {
  if (process.platform !== 'linux') return true;
  const has = (dir: string, re: RegExp) => {
    try {
      return readdirSync(dir).some((f) => re.test(f));
    } catch {
      return false;
    }
  };
  return has('/dev/dri', /^renderD\d+$/) || has('/dev', /^nvidia\d+$/);
}

const notInstalled = (err: unknown) =>
  /Cannot find (module|package)|ERR_MODULE_NOT_FOUND/.test(String((err as Error)?.message ?? err));

interface DawnModule {
  create(flags: string[]): {
    requestAdapter(opts?: object): Promise<DawnAdapter | null>;
  };
  globals: Record<string, unknown>;
}
interface DawnAdapter {
  info?: Record<string, string | boolean | undefined>;
  isFallbackAdapter?: boolean;
  features: Set<string>;
  limits: Record<string, number>;
  requestDevice(desc: object): Promise<unknown>;
}

/** Kept for the life of the process: the backend's device belongs to it. */
export let dawnInstance: ReturnType<DawnModule['create']> | null = null;
let active: WebGpuAdapter | null = null;

/** The adapter of the webgpu backend, once it has been activated. */
export function webGpuAdapter(): WebGpuAdapter | null {
  return active;
}

/**
 * Registers and activates tfjs's `webgpu` backend on the best adapter Dawn finds. Returns null when
 * it is active, or why not (not installed, no Vulkan loader, no adapter, only a software adapter
 * when `allowSoftware` is false).
 */
export async function activateWebGpu(opts: { allowSoftware: boolean }): Promise<string | null> {
  if (active) {
    if (active.software && !opts.allowSoftware)
      return `only a software WebGPU adapter: ${describeAdapter(active)}`;
    return (await tf.setBackend('webgpu')) ? null : 'the webgpu backend did not initialize';
  }
  let dawn: DawnModule;
  let backendModule: { WebGPUBackend: new (device: unknown, info: unknown) => tf.KernelBackend };
  try {
    backendModule = require('@tensorflow/tfjs-backend-webgpu');
  } catch (err) {
    return notInstalled(err)
      ? '@tensorflow/tfjs-backend-webgpu is not installed'
      : `@tensorflow/tfjs-backend-webgpu failed to load: ${(err as Error).message.split('\n')[0]}`;
  }
  if (!opts.allowSoftware && !gpuDeviceNodePresent())
    return 'no GPU device (no /dev/dri/renderD* or /dev/nvidia*)';
  if (vulkanLoaderMissing())
    return 'no Vulkan loader (libvulkan.so.1): install libvulkan1 and the GPU vendor Vulkan driver for WebGPU';
  try {
    // An ES module, optional: imported by name so that builds without it still compile.
    const name = 'webgpu';
    dawn = (await import(name)) as DawnModule;
  } catch (err) {
    return notInstalled(err)
      ? 'webgpu (Dawn for Node) is not installed'
      : `webgpu (Dawn for Node) failed to load: ${(err as Error).message.split('\n')[0]}`;
  }
  const gpu = dawn.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return 'WebGPU found no adapter (no GPU with a working Vulkan driver)';
  const info = adapter.info ?? {};
  const found: WebGpuAdapter = {
    vendor: String(info.vendor ?? ''),
    architecture: String(info.architecture ?? ''),
    device: String(info.device ?? ''),
    description: String(info.description ?? ''),
    software: isSoftwareAdapter({
      vendor: String(info.vendor ?? ''),
      architecture: String(info.architecture ?? ''),
      device: String(info.device ?? ''),
      description: String(info.description ?? ''),
      isFallbackAdapter: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
    }),
    maxBufferMiB: Math.floor((adapter.limits.maxBufferSize ?? 0) / 2 ** 20),
  };
  if (found.software && !opts.allowSoftware)
    return `only a software WebGPU adapter: ${describeAdapter(found)} (slower than wasm; --backend webgpu uses it anyway)`;
  const limits = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
    requiredLimits: {
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
    },
  });
  // tfjs-backend-webgpu looks for navigator.gpu and the GPU* constants as a browser has them.
  Object.assign(globalThis, dawn.globals);
  const g = globalThis as { navigator?: object };
  if (g.navigator === undefined) g.navigator = { gpu };
  else Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new backendModule.WebGPUBackend(device, info), 0);
  dawnInstance = gpu;
  active = found;
  return (await tf.setBackend('webgpu')) ? null : 'the webgpu backend did not initialize';
}
