/**
 * Training batches drawn in a worker thread while the main thread trains, for the trainer on
 * onnxruntime (train-clip.ts --engine onnx): its session runs block the main thread, and drawing
 * a batch of 64 pictures takes about as long as a step's backward pass, so drawing the next batch
 * beside the step nearly halves a step's time on two cores. The worker runs at the lowest
 * priority (yieldToTraining).
 *
 * @example
 * const prefetch = await BatchPrefetcher.start(preprocess);
 * prefetch.request(1, { seed, index: 1, batchSize: 64, labelMix: true });
 * const batch = await prefetch.take(1);
 * await prefetch.close();
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { isMainThread, parentPort, workerData, type Worker } from 'node:worker_threads';
import type { ClipPreprocess } from '../io/images';
import { ClipTokenizer } from '../models/tokenizer';
import { startTsWorker } from '../runtime/worker-host';
import { clipBatch, type BatchOptions, type ClipBatch } from './clip-data';

/** A batch without its WorldSamples (the pictures are in `pixels` already): what crosses threads. */
export type TrainBatch = Omit<ClipBatch, 'samples'>;

/** clipBatch's arguments, less the tokenizer and preprocessing (the worker has its own). */
export type BatchRequest = { seed: number; index: number } & Omit<BatchOptions, 'tok' | 'pre'>;

type FromWorker = { type: 'ready' } | { type: 'batch'; key: number; batch: TrainBatch } | { type: 'error'; key: number; message: string };

const isBatchWorker = () => !isMainThread && (workerData as { batchWorker?: unknown } | null)?.batchWorker !== undefined;

export function stripSamples(b: ClipBatch): TrainBatch {
  const { samples: _, ...rest } = b;
  return rest;
}

function transferables(b: TrainBatch): ArrayBuffer[] {
  const list = [b.pixels, b.ids, b.matches, ...Object.values(b.targets), ...(b.twins ? [b.twins.pixels, b.twins.of] : [])];
  return [...new Set(list.map((a) => a.buffer as ArrayBuffer))];
}

export class BatchPrefetcher {
  private readonly waiting = new Map<number, { resolve: (b: TrainBatch) => void; reject: (e: Error) => void }>();
  private readonly done = new Map<number, TrainBatch | Error>();
  private failure: Error | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'ready') return;
      const result = m.type === 'batch' ? m.batch : new Error(`batch ${m.key}: ${m.message}`);
      const w = this.waiting.get(m.key);
      if (!w) this.done.set(m.key, result);
      else {
        this.waiting.delete(m.key);
        if (result instanceof Error) w.reject(result);
        else w.resolve(result);
      }
    });
    const fail = (e: Error) => {
      this.failure = e;
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => { if (code !== 0) fail(new Error(`the batch worker exited with code ${code}`)); });
  }

  static async start(pre: ClipPreprocess): Promise<BatchPrefetcher> {
    const worker = startTsWorker(new URL(import.meta.url), { batchWorker: { pre } });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', (m: FromWorker) => (m.type === 'ready' ? resolve() : reject(new Error('the batch worker did not start'))));
      worker.once('error', reject);
    });
    return new BatchPrefetcher(worker);
  }

  /** Start drawing a batch; `key` names it for `take`. */
  request(key: number, r: BatchRequest): void {
    if (this.failure) throw this.failure;
    this.worker.postMessage({ key, request: r });
  }

  /** The batch requested under `key` (waits for it). */
  take(key: number): Promise<TrainBatch> {
    if (this.failure) return Promise.reject(this.failure);
    const ready = this.done.get(key);
    if (ready) {
      this.done.delete(key);
      return ready instanceof Error ? Promise.reject(ready) : Promise.resolve(ready);
    }
    return new Promise((resolve, reject) => this.waiting.set(key, { resolve, reject }));
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/**
 * Lower this worker thread's scheduling priority (Linux: nice 19 on the thread's own id), so
 * that onnxruntime's threads, which wait for their slowest member at every op, are not
 * preempted by the drawing; the worker then draws in the time the step leaves idle. Measured
 * on 2 cores (stop 19): ~8 % faster steps. Elsewhere, where a thread has no id of its own to
 * give, it does nothing (os.setPriority there would slow the whole process).
 */
function yieldToTraining(): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, 19);
  } catch {
    // no /proc/thread-self: not Linux, or no procfs
  }
}

if (isBatchWorker()) {
  const { pre } = (workerData as { batchWorker: { pre: ClipPreprocess } }).batchWorker;
  const tok = await ClipTokenizer.load();
  yieldToTraining();
  parentPort!.on('message', ({ key, request }: { key: number; request: BatchRequest }) => {
    try {
      const { seed, index, ...opts } = request;
      const batch = stripSamples(clipBatch(seed, index, { ...opts, pre, tok }));
      parentPort!.postMessage({ type: 'batch', key, batch } satisfies FromWorker, transferables(batch));
    } catch (err) {
      parentPort!.postMessage({ type: 'error', key, message: (err as Error).message } satisfies FromWorker);
    }
  });
  parentPort!.postMessage({ type: 'ready' } satisfies FromWorker);
}
