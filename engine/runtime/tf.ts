/**
 * The one place that chooses and initialises the TensorFlow.js backend.
 *
 * Order: tfjs-node-gpu (CUDA) → tfjs-node (native CPU) → wasm → cpu. The native packages are
 * optional dependencies: their install downloads libtensorflow, which fails offline, so they are
 * imported at run time and skipped with the reason recorded. `CLIP_STUDIO_BACKEND`
 * (`node-gpu` | `node` | `wasm` | `cpu`) forces one; if it cannot start, that is an error, not a
 * silent fallback. Everything else imports `tf` from here so there is one tfjs-core instance.
 */
import * as tf from '@tensorflow/tfjs'; // the full package: it registers every op's gradient
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { availableParallelism } from 'node:os';
import { ClipStudioError } from '../errors';

export { tf };

export type BackendName = 'node-gpu' | 'node' | 'wasm' | 'cpu';
export const BACKEND_ORDER: readonly BackendName[] = ['node-gpu', 'node', 'wasm', 'cpu'];

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
}

export class BackendError extends ClipStudioError {
  override readonly code = 'BACKEND';
}

const require = createRequire(import.meta.url);
let current: Promise<BackendReport> | undefined;

/** Start one backend by our name; throws with the reason if it cannot. */
async function start(name: BackendName): Promise<{ tfBackend: string; threads?: number }> {
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

function parseForced(value: string | undefined): BackendName | undefined {
  if (value === undefined || value === '' || value === 'auto') return undefined;
  if ((BACKEND_ORDER as readonly string[]).includes(value)) return value as BackendName;
  throw new BackendError(`CLIP_STUDIO_BACKEND must be one of ${BACKEND_ORDER.join(', ')} or auto, got "${value}"`);
}

/**
 * Choose and start the backend once per process (later calls return the same report).
 *
 * @example
 * const { name, reason } = await initBackend();
 * console.log(`tfjs backend: ${name} (${reason})`);
 */
export function initBackend(forced: string | undefined = process.env.CLIP_STUDIO_BACKEND): Promise<BackendReport> {
  current ??= (async () => {
    const want = parseForced(forced);
    if (want) {
      try {
        const r = await start(want);
        return { name: want, ...r, reason: `forced by CLIP_STUDIO_BACKEND=${want}`, skipped: [] };
      } catch (err) {
        current = undefined;
        throw new BackendError(`CLIP_STUDIO_BACKEND=${want} could not start: ${(err as Error).message}`, { cause: err });
      }
    }
    const skipped: BackendReport['skipped'] = [];
    for (const name of BACKEND_ORDER) {
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
