/**
 * The one place that chooses and initialises the TensorFlow.js backend.
 *
 * Order: tfjs-node-gpu (CUDA) → tfjs-node (native CPU) → webgpu → wasm → cpu. The native
 * packages are optional dependencies: their install downloads libtensorflow, which fails offline,
 * so they are imported at run time and skipped with the reason recorded. `webgpu` is tfjs's
 * WebGPU backend on Dawn's Node binding (the optional `webgpu` package, which ships its binary in
 * the npm tarball: any GPU with a Vulkan, Metal or D3D12 driver). `auto` takes it only for a
 * hardware adapter: a software one (Mesa's llvmpipe) is slower than wasm. `CLIP_STUDIO_BACKEND`
 * (`node-gpu` | `node` | `webgpu` | `wasm` | `cpu`) forces one (a forced webgpu takes a software
 * adapter too); if it cannot start, that is an error, not a silent fallback. Everything else
 * imports `tf` from here so there is one tfjs-core instance.
 */
import * as tf from '@tensorflow/tfjs'; // the full package: it registers every op's gradient
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { availableParallelism } from 'node:os';
import { ClipStudioError } from '../errors';

export { tf };

export type BackendName = 'node-gpu' | 'node' | 'webgpu' | 'wasm' | 'cpu';
export const BACKEND_ORDER: readonly BackendName[] = ['node-gpu', 'node', 'webgpu', 'wasm', 'cpu'];

export interface BackendReport {
  /** The backend that runs, by our name. */
  name: BackendName;
  /** tfjs's own name for it (`tensorflow`, `wasm`, `cpu`). */
  tfBackend: string;
  /** Why this one: forced by the environment, or the first that started. */
  reason: string;
  /** Every backend tried before it, with why it did not start. */
  skipped: { name: BackendName; why: string }[];
  /** Threads the backend computes with (tfjs-wasm in Node: 1). */
  threads?: number;
  /** The device it computes on, where that is not the CPU (webgpu: the adapter's vendor and description). */
  device?: string;
}

export class BackendError extends ClipStudioError {
  override readonly code = 'BACKEND';
}

const require = createRequire(import.meta.url);
let current: Promise<BackendReport> | undefined;

/** The parts of Dawn's Node binding (the `webgpu` package) used here. */
interface DawnModule {
  create(flags: string[]): { requestAdapter(o?: { powerPreference?: string }): Promise<{ info: { vendor: string; architecture: string; description: string; isFallbackAdapter?: boolean } } | null> };
  globals: Record<string, unknown>;
}

function resolvable(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether this machine shows a GPU at all: on Linux a DRM render node, an NVIDIA device or WSL's
 * GPU; elsewhere assumed. Checked before Dawn is loaded, so GPU-less servers never load it.
 */
function gpuDevicePresent(): boolean {
  if (process.platform !== 'linux') return true;
  const dev = (dir: string, re: RegExp) => existsSync(dir) && readdirSync(dir).some((f) => re.test(f));
  return dev('/dev/dri', /^renderD\d+$/) || dev('/dev', /^(nvidia\d+|dxg)$/);
}

/**
 * tfjs's WebGPU backend in Node: Dawn's binding provides `navigator.gpu` and the GPU* globals the
 * backend expects from a browser. Refuses a software adapter unless `allowSoftware`.
 */
async function startWebGpu(allowSoftware: boolean): Promise<{ tfBackend: string; device: string }> {
  for (const pkg of ['webgpu', '@tensorflow/tfjs-backend-webgpu']) {
    if (!resolvable(pkg)) throw new Error(`${pkg} is not installed (optional; \`npm install ${pkg}\`)`);
  }
  if (!allowSoftware && !gpuDevicePresent()) throw new Error('no GPU device (/dev/dri/renderD*, /dev/nvidia*, /dev/dxg)');
  const dawn = (await import('webgpu')) as unknown as DawnModule;
  const gpu = dawn.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no WebGPU adapter: no GPU with a Vulkan, Metal or D3D12 driver was found');
  const { vendor, architecture, description, isFallbackAdapter } = adapter.info;
  const device = [vendor, architecture, description].filter(Boolean).join(' ');
  if (isFallbackAdapter && !allowSoftware) throw new Error(`only a software adapter (${device}), slower than wasm; CLIP_STUDIO_BACKEND=webgpu forces it`);
  // The backend registers itself on import when navigator.gpu exists, and reads GPUBufferUsage & co.
  const g = globalThis as Record<string, unknown>;
  for (const [k, v] of Object.entries(dawn.globals)) if (!(k in g)) g[k] = v;
  const nav = (g.navigator ?? {}) as Record<string, unknown>;
  if (!g.navigator) Object.defineProperty(g, 'navigator', { value: nav, configurable: true, writable: true });
  if (!nav.gpu) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  await import('@tensorflow/tfjs-backend-webgpu');
  // Forwarding small ops to the CPU reads GPU data synchronously, which in Node (no
  // OffscreenCanvas) the backend cannot do; the engine only ever reads asynchronously.
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  if (!(await tf.setBackend('webgpu'))) throw new Error(`the webgpu backend did not initialise on ${device}`);
  return { tfBackend: 'webgpu', device };
}

/** Start one backend by our name; throws with the reason if it cannot. */
async function start(name: BackendName, forced = false): Promise<{ tfBackend: string; threads?: number; device?: string }> {
  switch (name) {
    case 'node-gpu':
    case 'node': {
      const pkg = name === 'node-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      try {
        require.resolve(pkg);
      } catch {
        throw new Error(`${pkg} is not installed (optional; \`npm install ${pkg}\` where libtensorflow can be downloaded)`);
      }
      await import(pkg); // registers the `tensorflow` backend, or throws if its native binding is missing
      if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but the tensorflow backend did not initialise`);
      return { tfBackend: 'tensorflow' };
    }
    case 'webgpu':
      return startWebGpu(forced);
    case 'wasm': {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      // In Node the .wasm binaries are read from the package's own dist folder.
      const dist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
      wasm.setWasmPaths(join(dist, '/'));
      wasm.setThreadsCount(Math.max(1, availableParallelism()));
      if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise');
      // What actually runs: tfjs loads its threaded build only in browsers, so in Node this is
      // 1 whatever was asked (measured: a 4160×128·128×512 matmul runs at the same speed).
      return { tfBackend: 'wasm', threads: wasm.getThreadsCount() };
    }
    case 'cpu': {
      if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend did not initialise');
      return { tfBackend: 'cpu' };
    }
  }
}

/** For `initBackend`'s `avoid`: code that reads tensors with dataSync, which tfjs-webgpu cannot do in Node (no OffscreenCanvas). */
export const SYNC_READS_AVOID_WEBGPU = { name: 'webgpu', why: 'this program reads tensors synchronously, which the webgpu backend cannot do in Node' } as const;

function parseForced(value: string | undefined): BackendName | undefined {
  if (value === undefined || value === '' || value === 'auto') return undefined;
  if ((BACKEND_ORDER as readonly string[]).includes(value)) return value as BackendName;
  throw new BackendError(`CLIP_STUDIO_BACKEND must be one of ${BACKEND_ORDER.join(', ')} or auto, got "${value}"`);
}

/**
 * Choose and start the backend once per process (later calls return the same report). `avoid`
 * leaves backends out of `auto`'s order (code that reads tensors synchronously avoids webgpu).
 *
 * @example
 * const { name, reason } = await initBackend();
 * console.log(`tfjs backend: ${name} (${reason})`);
 */
export function initBackend(forced: string | undefined = process.env.CLIP_STUDIO_BACKEND, opts: { avoid?: { name: BackendName; why: string }[] } = {}): Promise<BackendReport> {
  current ??= (async () => {
    const want = parseForced(forced);
    if (want) {
      try {
        const r = await start(want, true);
        return { name: want, ...r, reason: `forced by CLIP_STUDIO_BACKEND=${want}`, skipped: [] };
      } catch (err) {
        current = undefined;
        throw new BackendError(`CLIP_STUDIO_BACKEND=${want} could not start: ${(err as Error).message}`, { cause: err });
      }
    }
    const skipped: BackendReport['skipped'] = [];
    for (const name of BACKEND_ORDER) {
      const avoided = opts.avoid?.find((a) => a.name === name);
      if (avoided) {
        skipped.push({ name, why: avoided.why });
        continue;
      }
      try {
        const r = await start(name);
        const reason = skipped.length ? `first available (${skipped.map((s) => s.name).join(', ')} unavailable)` : 'first in order';
        return { name, ...r, reason, skipped };
      } catch (err) {
        skipped.push({ name, why: (err as Error).message.split('\n')[0]! });
      }
    }
    current = undefined;
    throw new BackendError(`No TensorFlow.js backend could start: ${skipped.map((s) => `${s.name}: ${s.why}`).join('; ')}`);
  })();
  return current;
}
