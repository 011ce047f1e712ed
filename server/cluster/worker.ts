/**
 * A `clip-studio worker` process: takes the studio's jobs from BullMQ (REDIS_URL) and runs them
 * on this machine's engine WorkerPool (worker threads, one job each), so GPU boxes can do the
 * compute while web nodes hold the browsers. What crosses Redis is described in
 * server/jobs/wire.ts; how web nodes submit and follow jobs in server/jobs/bullmq.ts.
 *
 * - Concurrency: as many BullMQ jobs at once as the pool has threads (CLIP_STUDIO_WORKERS).
 * - Progress: `job.updateProgress` with the engine's progress (PNG previews as base64).
 * - Cancel: the web node sets a flag in Redis; it is polled while a job runs (every 250 ms).
 * - Failures: engine errors are final (UnrecoverableError); a thread that crashed is retried
 *   under the job's `attempts`/`backoff`. If this process dies, the job's lock lapses and
 *   BullMQ's stalled-job check hands it to another worker (once: maxStalledCount 1).
 *
 * @example
 * const w = await startJobWorker({ url: 'redis://127.0.0.1:6379', threads: 1 });
 * // … SIGTERM:
 * await w.close(); // lets running jobs finish, then stops the threads
 */
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { CancelledError, JobFailedError, WorkerPool, type WorkerPoolOptions } from '../../engine/index';
import { CANCELLED_REASON, cancelKey, JOB_QUEUE_NAME, REDIS_PREFIX, redisConnection } from '../jobs/bullmq';
import { encodeBytes, errorToReason, paramsFromWire } from '../jobs/wire';

export interface JobWorkerOptions {
  url: string;
  /** Engine threads, and BullMQ jobs taken at once (default 1). */
  threads?: number;
  /** Passed to each engine thread (backend, data dir, manifests, test jobs). */
  engine?: WorkerPoolOptions['worker'];
  /** Queue name (tests use their own). */
  name?: string;
  /** How often a running job's cancel flag is checked (default 250 ms). */
  cancelPollMs?: number;
  /** How long a job's lock lasts without renewal: a dead worker's job is retried after about this. */
  lockDurationMs?: number;
  log?: (m: string) => void;
}

export interface JobWorker {
  readonly worker: Worker;
  readonly pool: WorkerPool;
  /** Stop taking jobs, let running ones finish (or be cut off by `force`), stop the threads. */
  close(force?: boolean): Promise<void>;
}

export async function startJobWorker(opts: JobWorkerOptions): Promise<JobWorker> {
  const threads = opts.threads ?? 1;
  const log = opts.log ?? ((m) => console.log(m));
  const pool = new WorkerPool({ size: threads, queueLimit: threads, worker: opts.engine ?? {} });
  const redis = redisConnection(opts.url);
  const pollMs = opts.cancelPollMs ?? 250;

  const processor = async (job: Job) => {
    const cancelled = async () => (await redis.exists(cancelKey(job.id!))) === 1;
    if (await cancelled()) throw new UnrecoverableError(CANCELLED_REASON);
    const { params, cleanup } = paramsFromWire((job.data as { params?: unknown }).params);
    const handle = pool.submit(job.name, params, (e) => {
      // Progress is best-effort: a lost update must not fail the job.
      if (e.type === 'progress') void job.updateProgress(encodeBytes(e.data) as object).catch(() => {});
    });
    let cancelRequested = false;
    const poll = setInterval(() => {
      cancelled().then((yes) => {
        if (yes && !cancelRequested) {
          cancelRequested = true;
          handle.cancel();
        }
      }, () => {});
    }, pollMs);
    try {
      return encodeBytes(await handle.result);
    } catch (err) {
      if (err instanceof CancelledError) throw new UnrecoverableError(CANCELLED_REASON);
      if (err instanceof JobFailedError) {
        // A crashed or unbootable thread may be this machine's problem: let BullMQ retry the job.
        if (err.code === 'WORKER_CRASHED' || err.code === 'WORKER_BOOT') throw new Error(errorToReason(err.reason));
        throw new UnrecoverableError(errorToReason(err.reason)); // the job's own error: same answer next time
      }
      throw new Error(errorToReason({ name: (err as Error).name ?? 'Error', code: 'INTERNAL', message: (err as Error).message ?? String(err) }));
    } finally {
      clearInterval(poll);
      cleanup();
    }
  };

  const workerRedis = redisConnection(opts.url); // given to BullMQ, which does not close it: closed below
  const worker = new Worker(opts.name ?? JOB_QUEUE_NAME, processor, {
    connection: workerRedis,
    prefix: REDIS_PREFIX,
    concurrency: threads,
    lockDuration: opts.lockDurationMs ?? 30_000,
    stalledInterval: opts.lockDurationMs ?? 30_000,
    maxStalledCount: 1,
  });
  worker.on('error', (err) => log(`[worker] redis: ${err.message}`));
  worker.on('failed', (job, err) => {
    if (job && !err.message.includes(CANCELLED_REASON)) log(`[worker] job ${job.id} (${job.name}) failed: ${err.message}`);
  });
  await worker.waitUntilReady();

  let closing: Promise<void> | undefined;
  return {
    worker,
    pool,
    close: (force = false) => (closing ??= (async () => {
      await worker.close(force);
      await pool.close();
      redis.disconnect();
      workerRedis.disconnect();
    })()),
  };
}
