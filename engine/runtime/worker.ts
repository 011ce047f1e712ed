/**
 * The engine's worker-thread entry: it runs one job at a time, off the server's event loop.
 *
 * The host (worker-host.ts) posts `run` and `cancel`; this file answers with `started`,
 * `progress`, then one of `done` / `failed` / `cancelled`. Jobs are async step loops that call
 * `ctx.checkpoint()` between steps: that yields to the event loop (so a `cancel` message can be
 * read) and throws CancelledError once one has arrived. A job that never yields cannot be
 * cancelled politely; the host terminates the worker after a grace period instead.
 *
 * Job kinds are registered by name in JOBS below. `crash-for-test` and `block-for-test` exist
 * only when the host asks for test jobs (NODE_ENV=test or `testJobs: true`).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { isMainThread, parentPort, threadId, workerData } from 'node:worker_threads';
import { CancelledError, ClipStudioError, InputError } from '../errors';
import { initBackend, tf, type BackendReport } from './tf';
import { probeOnnx, type OnnxHealth } from './onnx';
import { listModels, verifyModel } from '../models/registry';
import { generateJob } from '../guide/job';

// ---------------------------------------------------------------------------------------------
// Messages (the host imports these types only)

export type HostMessage =
  | { type: 'run'; jobId: string; kind: string; params: unknown }
  | { type: 'cancel'; jobId: string };

export interface SerializedError {
  name: string;
  code: string;
  message: string;
  field?: string;
}

export type WorkerMessage =
  | { type: 'ready'; kinds: string[] }
  | { type: 'started'; jobId: string }
  | { type: 'progress'; jobId: string; data: unknown }
  | { type: 'done'; jobId: string; result: unknown }
  | { type: 'failed'; jobId: string; error: SerializedError }
  | { type: 'cancelled'; jobId: string };

export interface WorkerOptions {
  /** `auto` or undefined lets initBackend choose; a name forces that backend. */
  backend?: string;
  /** The data directory (CLIP_STUDIO_DATA). */
  dataDir?: string;
  /** Where fetched models live (CLIP_STUDIO_MODELS; default <dataDir>/models). */
  modelsDir?: string;
  /** Directory of model manifests (default: the repo's models/). */
  manifestsDir?: string;
  /** Register the jobs that exist only to test the pool (crash, block). */
  testJobs?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Jobs

export interface JobContext {
  /** Send a progress message to whoever submitted the job. Structured-clonable data only. */
  progress(data: unknown): void;
  /** Yield to the event loop, then throw CancelledError if the job was cancelled. */
  checkpoint(): Promise<void>;
  readonly cancelled: boolean;
}

export type JobHandler = (params: unknown, ctx: JobContext) => Promise<unknown>;

/** What the `health` job reports about the process that computes. */
export interface EngineHealth {
  threadId: number;
  tfjs: { version: string; backend: BackendReport | null; error?: string };
  onnx: OnnxHealth;
  models: ModelsHealth;
}

export interface ModelsHealth {
  /** False when this checkout has no model registry to ask. */
  registry: boolean;
  dir?: string;
  /** Models with files on disk (installed or partly downloaded), bundled demos included. */
  installed: { id: string; family?: string; bundled?: boolean; verified: boolean; problem?: string }[];
  /** Known model ids that can be fetched. */
  available?: string[];
  error?: string;
}

export type { OnnxHealth } from './onnx';

/** Verification results by model id, kept while the files' sizes and mtimes are unchanged. */
const verified = new Map<string, { key: string; ok: boolean; problem?: string }>();

/**
 * Ask the model registry what is installed, and verify each installed model's bytes (sha256
 * against the manifest or the checksum recorded at download). Hashing hundreds of MB on every
 * health check would be wasteful, so a model is re-hashed only when its files change.
 */
async function probeModels(): Promise<ModelsHealth> {
  const opts = { dataDir: options.dataDir, installDir: options.modelsDir };
  try {
    const models = listModels(opts);
    const installed: ModelsHealth['installed'] = [];
    for (const m of models) {
      if (m.status === 'missing') continue;
      if (m.status === 'partial') {
        const missing = m.files.filter((f) => f.required && !f.present).map((f) => f.path);
        installed.push({ id: m.id, family: m.family, bundled: m.bundled, verified: false, problem: `partly downloaded: missing ${missing.join(', ')}` });
        continue;
      }
      const key = JSON.stringify(m.files.map((f) => [f.path, f.size, f.present ? statSync(join(m.dir, f.path)).mtimeMs : null]));
      let v = verified.get(m.id);
      if (v?.key !== key) {
        const r = await verifyModel(m.id, opts);
        const bad = r.files.filter((f) => f.status === 'mismatch' || f.status === 'missing');
        v = { key, ok: r.ok, ...(bad.length ? { problem: bad.map((f) => `${f.path} ${f.status}`).join(', ') } : {}) };
        verified.set(m.id, v);
      }
      installed.push({ id: m.id, family: m.family, bundled: m.bundled, verified: v.ok, ...(v.problem ? { problem: v.problem } : {}) });
    }
    const dir = options.modelsDir ?? (options.dataDir ? join(options.dataDir, 'models') : undefined);
    return { registry: true, ...(dir ? { dir } : {}), installed, available: models.filter((m) => m.status !== 'installed').map((m) => m.id) };
  } catch (err) {
    return { registry: false, installed: [], error: `the model registry failed: ${(err as Error).message.split('\n')[0]}` };
  }
}

async function health(): Promise<EngineHealth> {
  let backend: BackendReport | null = null;
  let error: string | undefined;
  try {
    backend = await initBackend(options.backend);
  } catch (err) {
    error = (err as Error).message;
  }
  const [onnx, models] = await Promise.all([probeOnnx(), probeModels()]);
  return { threadId, tfjs: { version: tf.version.tfjs, backend, ...(error ? { error } : {}) }, onnx, models };
}

/**
 * A few real tfjs steps (a small matrix power iteration) with progress after each, cancellable
 * between steps. Cheap enough for tests; proves the backend computes in this thread.
 */
async function tensorSelftest(params: unknown, ctx: JobContext): Promise<{ steps: number; backend: string; eigen: number; tensorsLeaked: number }> {
  const p = (params ?? {}) as { steps?: unknown; delayMs?: unknown };
  const steps = p.steps === undefined ? 5 : Number(p.steps);
  if (!Number.isInteger(steps) || steps < 1 || steps > 10_000) {
    throw new InputError('steps', `The \`steps\` option must be an integer between 1 and 10000, got ${JSON.stringify(p.steps)}`);
  }
  const delayMs = p.delayMs === undefined ? 0 : Number(p.delayMs);
  if (!Number.isFinite(delayMs) || delayMs < 0 || delayMs > 10_000) {
    throw new InputError('delayMs', `The \`delayMs\` option must be between 0 and 10000, got ${JSON.stringify(p.delayMs)}`);
  }
  const report = await initBackend(options.backend);
  const before = tf.memory().numTensors;
  // A symmetric 4x4 matrix whose largest eigenvalue power iteration should find.
  const m = tf.tensor2d([4, 1, 0, 0, 1, 3, 1, 0, 0, 1, 2, 1, 0, 0, 1, 1], [4, 4]);
  let v = tf.ones([4, 1]);
  let eigen = 0;
  try {
    for (let step = 1; step <= steps; step++) {
      await ctx.checkpoint();
      const next = tf.tidy(() => {
        const mv = tf.matMul(m, v);
        return mv.div(tf.norm(mv));
      });
      v.dispose();
      v = next;
      const rayleigh = tf.tidy(() => tf.sum(tf.mul(v, tf.matMul(m, v))));
      eigen = (await rayleigh.data())[0]!; // async: the webgpu backend cannot read synchronously in Node
      rayleigh.dispose();
      ctx.progress({ step, of: steps, eigen });
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    }
  } finally {
    m.dispose();
    v.dispose();
  }
  return { steps, backend: report.name, eigen, tensorsLeaked: tf.memory().numTensors - before };
}

/** Dies the way a native crash or a bug would: an uncaught error, or exit. Test-only. */
async function crashForTest(params: unknown): Promise<never> {
  const mode = (params as { mode?: string } | undefined)?.mode ?? 'throw';
  if (mode === 'exit') process.exit(3);
  setImmediate(() => {
    throw new Error('crash-for-test: deliberate uncaught error');
  });
  return new Promise<never>(() => {});
}

/** Blocks the thread without yielding, so a cancel can only be honoured by terminating. Test-only. */
async function blockForTest(params: unknown, ctx: JobContext): Promise<string> {
  const ms = Number((params as { ms?: number } | undefined)?.ms ?? 60_000);
  ctx.progress({ blocking: ms });
  await new Promise((r) => setImmediate(r)); // let the progress message go out first
  const end = Date.now() + ms;
  while (Date.now() < end) { /* spin: deliberately unresponsive */ }
  return 'unblocked';
}

const options: WorkerOptions = (workerData ?? {}) as WorkerOptions;

const JOBS = new Map<string, JobHandler>([
  ['health', () => health()],
  ['tensor-selftest', tensorSelftest],
  ['generate', (params, ctx) => generateJob(params, {
    progress: (d) => ctx.progress(d), checkpoint: () => ctx.checkpoint(), backend: options.backend,
    registry: { dataDir: options.dataDir, installDir: options.modelsDir, ...(options.manifestsDir ? { modelsDir: options.manifestsDir } : {}) },
  })],
]);
if (options.testJobs) {
  JOBS.set('crash-for-test', crashForTest);
  JOBS.set('block-for-test', blockForTest);
}

// ---------------------------------------------------------------------------------------------
// The message loop

export function serializeError(err: unknown): SerializedError {
  if (err instanceof ClipStudioError) {
    return { name: err.name, code: err.code, message: err.message, ...(err instanceof InputError ? { field: err.field } : {}) };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return { name: e.name, code: 'INTERNAL', message: e.message };
}

function serve(port: NonNullable<typeof parentPort>): void {
  let current: { jobId: string; cancelled: boolean } | undefined;
  const send = (m: WorkerMessage) => port.postMessage(m);

  port.on('message', (msg: HostMessage) => {
    if (msg.type === 'cancel') {
      if (current?.jobId === msg.jobId) current.cancelled = true;
      return;
    }
    if (msg.type !== 'run') return;
    if (current) {
      send({ type: 'failed', jobId: msg.jobId, error: { name: 'Error', code: 'INTERNAL', message: 'worker is already running a job' } });
      return;
    }
    const job = { jobId: msg.jobId, cancelled: false };
    current = job;
    void (async () => {
      const handler = JOBS.get(msg.kind);
      if (!handler) {
        const known = [...JOBS.keys()].join(', ');
        throw new InputError('kind', `Unknown job kind "${msg.kind}"; this worker runs: ${known}`);
      }
      send({ type: 'started', jobId: job.jobId });
      const ctx: JobContext = {
        progress: (data) => send({ type: 'progress', jobId: job.jobId, data }),
        checkpoint: async () => {
          await new Promise((r) => setImmediate(r));
          if (job.cancelled) throw new CancelledError();
        },
        get cancelled() {
          return job.cancelled;
        },
      };
      return handler(msg.params, ctx);
    })().then(
      (result) => send({ type: 'done', jobId: job.jobId, result }),
      (err) => send(err instanceof CancelledError ? { type: 'cancelled', jobId: job.jobId } : { type: 'failed', jobId: job.jobId, error: serializeError(err) }),
    ).finally(() => {
      if (current === job) current = undefined;
    });
  });
  send({ type: 'ready', kinds: [...JOBS.keys()] });
}

if (!isMainThread && parentPort) serve(parentPort);
