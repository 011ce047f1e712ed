/**
 * WorkerPool: runs engine jobs in worker threads so tensor work never blocks the server's
 * event loop. N workers, one job each at a time, and a bounded FIFO queue in front of them.
 *
 * - Position: a queued job hears `queued` with its place (1 = next) whenever that changes.
 * - Full: `submit` throws BusyError(ahead) when the queue already holds `queueLimit` jobs.
 * - Cancel: a queued job is dropped at once; a running one is asked to stop (it checks between
 *   steps) and, if it has not stopped after `cancelGraceMs`, its worker is terminated and replaced.
 * - Crash: a worker that dies mid-job fails that job with the reason and is replaced.
 *
 * The worker entry is TypeScript; it is started through tsx's ESM API from a tiny eval'd
 * bootstrap, because in Node 20 `execArgv: ['--import', 'tsx']` does not apply the loader to a
 * worker's own .ts entry (ERR_UNKNOWN_FILE_EXTENSION) and resolves `tsx` from the cwd.
 *
 * @example
 * const pool = new WorkerPool({ size: 1, queueLimit: 8 });
 * const job = pool.submit('tensor-selftest', { steps: 3 }, (e) => console.log(e));
 * console.log(await job.result);
 * await pool.close();
 */
import { Worker } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import { BusyError, CancelledError, ClipStudioError } from '../errors';
import type { HostMessage, SerializedError, WorkerMessage, WorkerOptions } from './worker';

/** A job did not succeed: it threw in the worker, or its worker died. `code` is the engine's. */
export class JobFailedError extends ClipStudioError {
  override readonly code: string;
  constructor(readonly kind: string, readonly reason: SerializedError) {
    super(reason.message);
    this.code = reason.code;
  }
  get field(): string | undefined {
    return this.reason.field;
  }
}

export type JobEvent =
  | { type: 'queued'; jobId: string; position: number }
  | { type: 'started'; jobId: string }
  | { type: 'progress'; jobId: string; data: unknown }
  | { type: 'done'; jobId: string; result: unknown }
  | { type: 'failed'; jobId: string; error: SerializedError }
  | { type: 'cancelled'; jobId: string };

export interface JobHandle<R = unknown> {
  id: string;
  kind: string;
  /** Resolves with the job's result; rejects with CancelledError or JobFailedError. */
  result: Promise<R>;
  cancel(): void;
}

export interface WorkerPoolOptions {
  /** Number of worker threads (default 1). */
  size?: number;
  /** Jobs allowed to wait for a worker (default 16); 0 means "only when a worker is idle". */
  queueLimit?: number;
  /** How long a running job may take to honour a cancel before its worker is terminated. */
  cancelGraceMs?: number;
  /** Passed to each worker (backend choice, test jobs). */
  worker?: WorkerOptions;
  /** The worker entry; the engine's own by default. */
  entry?: URL;
}

export interface PoolStats {
  workers: number;
  ready: number;
  busy: number;
  queued: number;
  queueLimit: number;
  /** Workers replaced after a crash or a forced cancel since start. */
  replaced: number;
}

interface Job {
  id: string;
  kind: string;
  params: unknown;
  listener?: (e: JobEvent) => void;
  resolve(v: unknown): void;
  reject(e: Error): void;
  settled: boolean;
  cancelRequested: boolean;
  graceTimer?: NodeJS.Timeout;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job?: Job;
  /** Set when we terminate it on purpose, so its exit is not reported as a crash. */
  retiring: boolean;
}

/** Consecutive workers that die before becoming ready: a broken install, not a bad job. */
const MAX_BOOT_FAILURES = 3;

/**
 * A worker thread running a TypeScript module: started through tsx's ESM API from a tiny eval'd
 * bootstrap (see the file comment for why not `execArgv: ['--import', 'tsx']`).
 *
 * @example
 * const worker = startTsWorker(new URL('./job-worker.ts', import.meta.url), { backend: 'wasm' });
 */
export function startTsWorker(entry: URL, workerData: unknown): Worker {
  const api = import.meta.resolve('tsx/esm/api');
  const boot =
    `import(${JSON.stringify(api)})` +
    `.then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); });`;
  // execArgv: [] so the worker does not inherit the parent's loader flags and register tsx twice.
  return new Worker(boot, { eval: true, execArgv: [], workerData });
}

export class WorkerPool {
  readonly size: number;
  readonly queueLimit: number;
  private readonly cancelGraceMs: number;
  private readonly entry: URL;
  private readonly workerOptions: WorkerOptions;
  private readonly slots = new Set<Slot>();
  private readonly queue: Job[] = [];
  private readonly jobs = new Map<string, Job>();
  private replaced = 0;
  private bootFailures = 0;
  private broken: SerializedError | undefined;
  private closed = false;

  constructor(opts: WorkerPoolOptions = {}) {
    this.size = opts.size ?? 1;
    this.queueLimit = opts.queueLimit ?? 16;
    this.cancelGraceMs = opts.cancelGraceMs ?? 2000;
    this.entry = opts.entry ?? new URL('./worker.ts', import.meta.url);
    this.workerOptions = opts.worker ?? {};
    if (!Number.isInteger(this.size) || this.size < 1) throw new RangeError(`WorkerPool size must be an integer ≥ 1, got ${this.size}`);
    for (let i = 0; i < this.size; i++) this.spawn();
  }

  /**
   * Queue a job. Throws BusyError when the queue is full. Events go to `listener` in order:
   * queued* → started → progress* → done | failed | cancelled.
   */
  submit<R = unknown>(kind: string, params?: unknown, listener?: (e: JobEvent) => void): JobHandle<R> {
    if (this.closed) throw new ClipStudioError('The worker pool is closed.');
    if (this.broken) throw new JobFailedError(kind, this.broken);
    const idle = [...this.slots].some((s) => s.ready && !s.job);
    if (!idle && this.queue.length >= this.queueLimit) throw new BusyError(this.queue.length + this.busyCount());
    let resolve!: (v: unknown) => void;
    let reject!: (e: Error) => void;
    const result = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    result.catch(() => {}); // the caller may only listen to events; never an unhandled rejection
    const job: Job = { id: randomUUID(), kind, params, listener, resolve, reject, settled: false, cancelRequested: false };
    this.jobs.set(job.id, job);
    this.queue.push(job);
    this.emit(job, { type: 'queued', jobId: job.id, position: this.queue.length });
    this.dispatch();
    return { id: job.id, kind, result: result as Promise<R>, cancel: () => this.cancel(job.id) };
  }

  /** Cancel a queued or running job. Returns false if no such job is pending. */
  cancel(jobId: string): boolean {
    const job = this.jobs.get(jobId);
    if (!job || job.settled) return false;
    const queuedAt = this.queue.indexOf(job);
    if (queuedAt >= 0) {
      this.queue.splice(queuedAt, 1);
      this.settleCancelled(job);
      this.announcePositions(queuedAt);
      return true;
    }
    if (job.cancelRequested) return true;
    job.cancelRequested = true;
    const slot = this.slotOf(job);
    if (!slot) return false;
    slot.worker.postMessage({ type: 'cancel', jobId } satisfies HostMessage);
    job.graceTimer = setTimeout(() => {
      if (job.settled || slot.job !== job) return;
      // It did not stop in time (a step that never yields): end the thread, start a fresh one.
      slot.job = undefined;
      this.retire(slot);
      this.settleCancelled(job);
      this.spawn();
      this.replaced++;
    }, this.cancelGraceMs);
    return true;
  }

  stats(): PoolStats {
    const slots = [...this.slots];
    return {
      workers: slots.length,
      ready: slots.filter((s) => s.ready).length,
      busy: this.busyCount(),
      queued: this.queue.length,
      queueLimit: this.queueLimit,
      replaced: this.replaced,
    };
  }

  /** Cancel everything and stop the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const job of this.queue.splice(0)) this.settleCancelled(job);
    const exits: Promise<unknown>[] = [];
    for (const slot of this.slots) {
      if (slot.job) this.settleCancelled(slot.job);
      slot.job = undefined;
      exits.push(this.retire(slot));
    }
    await Promise.all(exits);
  }

  // -------------------------------------------------------------------------------------------

  private busyCount(): number {
    return [...this.slots].filter((s) => s.job).length;
  }

  private slotOf(job: Job): Slot | undefined {
    for (const s of this.slots) if (s.job === job) return s;
    return undefined;
  }

  private emit(job: Job, e: JobEvent): void {
    try {
      job.listener?.(e);
    } catch {
      // A listener's bug must not take the pool down.
    }
  }

  private announcePositions(from: number): void {
    for (let i = from; i < this.queue.length; i++) this.emit(this.queue[i]!, { type: 'queued', jobId: this.queue[i]!.id, position: i + 1 });
  }

  private finish(job: Job): void {
    job.settled = true;
    clearTimeout(job.graceTimer);
    this.jobs.delete(job.id);
    queueMicrotask(() => this.updateRefs());
  }

  private settleCancelled(job: Job): void {
    if (job.settled) return;
    this.finish(job);
    this.emit(job, { type: 'cancelled', jobId: job.id });
    job.reject(new CancelledError());
  }

  private settleFailed(job: Job, error: SerializedError): void {
    if (job.settled) return;
    this.finish(job);
    this.emit(job, { type: 'failed', jobId: job.id, error });
    job.reject(new JobFailedError(job.kind, error));
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (!this.queue.length) break;
      if (!slot.ready || slot.job || slot.retiring) continue;
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.postMessage({ type: 'run', jobId: job.id, kind: job.kind, params: job.params } satisfies HostMessage);
      this.announcePositions(0);
    }
    this.updateRefs();
  }

  /**
   * Workers keep the process alive only while there is work: an idle pool must not stop a CLI
   * from exiting, and a pending job must not let it exit early.
   */
  private updateRefs(): void {
    const pending = this.queue.length > 0;
    for (const slot of this.slots) {
      if (slot.job || (pending && !slot.ready)) slot.worker.ref();
      else slot.worker.unref();
    }
  }

  private spawn(): void {
    if (this.closed) return;
    const worker = startTsWorker(this.entry, this.workerOptions);
    const slot: Slot = { worker, ready: false, retiring: false };
    this.slots.add(slot);
    this.updateRefs();
    let lastError: Error | undefined;

    worker.on('message', (msg: WorkerMessage) => this.onMessage(slot, msg));
    worker.on('error', (err) => {
      lastError = err;
    });
    worker.on('exit', (code) => {
      this.slots.delete(slot);
      if (slot.retiring || this.closed) return;
      const why = lastError ? `${lastError.name}: ${lastError.message}` : `exit code ${code}`;
      const job = slot.job;
      slot.job = undefined;
      if (!slot.ready) this.bootFailures++;
      if (job) this.settleFailed(job, { name: 'WorkerCrashed', code: 'WORKER_CRASHED', message: `The worker running this ${job.kind} job crashed (${why}).` });
      if (this.bootFailures >= MAX_BOOT_FAILURES) {
        this.broken = { name: 'WorkerBootError', code: 'WORKER_BOOT', message: `Engine workers fail to start (${why}).` };
        for (const q of this.queue.splice(0)) this.settleFailed(q, this.broken);
        return;
      }
      this.replaced++;
      this.spawn();
    });
  }

  private retire(slot: Slot): Promise<number> {
    slot.retiring = true;
    slot.ready = false;
    this.slots.delete(slot);
    return slot.worker.terminate();
  }

  private onMessage(slot: Slot, msg: WorkerMessage): void {
    if (msg.type === 'ready') {
      slot.ready = true;
      this.bootFailures = 0;
      this.dispatch();
      return;
    }
    const job = slot.job;
    if (!job || job.id !== msg.jobId || job.settled) return; // a late message from a cancelled job
    switch (msg.type) {
      case 'started':
      case 'progress':
        this.emit(job, msg);
        return;
      case 'done':
        slot.job = undefined;
        this.finish(job);
        this.emit(job, msg);
        job.resolve(msg.result);
        break;
      case 'failed':
        slot.job = undefined;
        this.settleFailed(job, msg.error);
        break;
      case 'cancelled':
        slot.job = undefined;
        this.settleCancelled(job);
        break;
    }
    this.dispatch();
  }
}
