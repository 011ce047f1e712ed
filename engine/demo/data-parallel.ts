/**
 * Data-parallel training on one machine: tfjs-wasm computes on one thread in Node (its threaded
 * build is browser-only), so a trainer uses one core of many. Here N worker threads each hold a
 * replica of the model and train on their shard of every batch; after each backward pass the
 * main thread averages their gradients (an all-reduce, summed in shard order so a run is
 * reproducible) and sends the mean back, and every replica applies the same optimiser step, so
 * the replicas stay identical without ever sending weights.
 *
 *   main thread                       worker k (k = 0 … N−1)
 *   ───────────                       ──────────────────────
 *   spawn N workers (workerData)  →   build the model, draw shard k of batch s, backward
 *   sum grads of step s, ÷ N      ←   post grads (Float32Array per variable, transferred)
 *   post the mean to every worker →   optimiser step with the mean; shard 0 logs and checkpoints
 *
 * @example
 * // main thread
 * await runDataParallel(new URL(import.meta.url), 2, { job: 'clip', args });
 * // in the worker (same file)
 * const exchange = workerExchange(); const { shard, shards } = exchange;
 */
import { isMainThread, parentPort, type Worker, workerData } from 'node:worker_threads';
import { startTsWorker } from '../runtime/worker-host';

type ToMain =
  | { type: 'grads'; step: number; arrays: Float32Array[] }
  | { type: 'done'; summary: unknown }
  | { type: 'failed'; message: string };
type ToWorker = { type: 'mean'; step: number; arrays: Float32Array[] };

/** What a replica asks of the others: the mean of every shard's gradients for one step. */
export interface GradientExchange {
  shard: number;
  shards: number;
  /** Post this shard's gradients for `step` (in the agreed variable order) and wait for the mean. */
  average(step: number, arrays: Float32Array[]): Promise<Float32Array[]>;
}

interface ShardData { dataParallel: { shard: number; shards: number }; payload: unknown }

/** True in a worker thread started by runDataParallel. */
export function isDataParallelWorker(): boolean {
  return !isMainThread && !!(workerData as ShardData | undefined)?.dataParallel;
}

/** The payload runDataParallel gave every worker. */
export function workerPayload<T>(): T {
  return (workerData as ShardData).payload as T;
}

/** The worker's side of the all-reduce (call once per worker). */
export function workerExchange(): GradientExchange {
  const { shard, shards } = (workerData as ShardData).dataParallel;
  const port = parentPort!;
  const waiting = new Map<number, (arrays: Float32Array[]) => void>();
  port.on('message', (m: ToWorker) => {
    if (m.type !== 'mean') return;
    waiting.get(m.step)?.(m.arrays);
    waiting.delete(m.step);
  });
  return {
    shard, shards,
    average: (step, arrays) => new Promise((resolve) => {
      waiting.set(step, resolve);
      port.postMessage({ type: 'grads', step, arrays } satisfies ToMain, arrays.map((a) => a.buffer as ArrayBuffer));
    }),
  };
}

/** Tell the main thread this worker finished, with a summary (e.g. a checksum of its weights). */
export function workerFinished(summary: unknown = null): void {
  parentPort!.postMessage({ type: 'done', summary } satisfies ToMain);
}

/** Tell the main thread this worker failed: it stops every worker. */
export function workerFailed(err: unknown): void {
  parentPort!.postMessage({ type: 'failed', message: (err as Error)?.stack ?? String(err) } satisfies ToMain);
}

/**
 * Run `file` in `shards` worker threads with `payload`, averaging their gradients each step,
 * until every worker reports done; resolves with each worker's summary, in shard order.
 * Rejects (and stops them all) when one fails or exits early.
 */
export function runDataParallel(file: URL, shards: number, payload: unknown): Promise<unknown[]> {
  if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`The number of workers must be a positive integer, got ${shards}.`);
  return new Promise<unknown[]>((resolve, reject) => {
    const workers: Worker[] = [];
    const summaries = new Array<unknown>(shards).fill(null);
    const pending = new Map<number, (Float32Array[] | undefined)[]>();
    let done = 0;
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      for (const w of workers) void w.terminate();
      reject(new Error(why));
    };
    for (let shard = 0; shard < shards; shard++) {
      const w = startTsWorker(file, { dataParallel: { shard, shards }, payload } satisfies ShardData);
      workers.push(w);
      w.on('message', (m: ToMain) => {
        if (m.type === 'failed') return fail(`training worker ${shard} failed: ${m.message}`);
        if (m.type === 'done') {
          summaries[shard] = m.summary;
          if (++done === shards && !settled) {
            settled = true;
            // Finished workers still listen on their port: end them so the process can exit.
            void Promise.all(workers.map((x) => x.terminate())).then(() => resolve(summaries));
          }
          return;
        }
        const got = pending.get(m.step) ?? new Array<Float32Array[] | undefined>(shards).fill(undefined);
        got[shard] = m.arrays;
        pending.set(m.step, got);
        if (got.some((g) => !g)) return;
        pending.delete(m.step);
        // Sum in shard order, then scale: the same bits on every run.
        const mean = got[0]!.map((first, i) => {
          const out = new Float32Array(first.length);
          for (const g of got) { const x = g![i]!; for (let j = 0; j < out.length; j++) out[j] = out[j]! + x[j]!; }
          for (let j = 0; j < out.length; j++) out[j] = out[j]! / shards;
          return out;
        });
        for (const worker of workers) {
          const copy = mean.map((a) => a.slice());
          worker.postMessage({ type: 'mean', step: m.step, arrays: copy } satisfies ToWorker, copy.map((a) => a.buffer));
        }
      });
      w.on('error', (err) => fail(`training worker ${shard}: ${err.stack ?? err.message}`));
      w.on('exit', (code) => { if (!settled && code !== 0) fail(`training worker ${shard} exited with code ${code}`); });
    }
  });
}
