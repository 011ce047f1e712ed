/**
 * The one job-queue interface the studio talks to. In-process (a WorkerPool of engine worker
 * threads) by default; a Redis-backed implementation can sit behind the same interface when
 * REDIS_URL is set (not built yet: with REDIS_URL set we say so and stay in-process).
 */
import { WorkerPool, type JobEvent, type JobHandle, type PoolStats } from '../../engine/index';
import type { StudioConfig } from '../config';

export type { JobEvent, JobHandle, PoolStats };

export interface JobQueue {
  /** Which implementation runs the jobs, for the health report. */
  readonly kind: 'in-process';
  /** Throws BusyError (with how many jobs are ahead) when the queue is full. */
  submit<R = unknown>(kind: string, params: unknown, listener?: (e: JobEvent) => void): JobHandle<R>;
  cancel(jobId: string): boolean;
  stats(): PoolStats;
  close(): Promise<void>;
}

export interface QueueOptions {
  /** Register the engine's test-only job kinds (crash-for-test, block-for-test). */
  testJobs?: boolean;
  cancelGraceMs?: number;
  /** Directory of model manifests the workers read (default: the repo's models/). */
  manifestsDir?: string;
}

export function createJobQueue(config: StudioConfig, opts: QueueOptions = {}): JobQueue {
  const pool = new WorkerPool({
    size: config.workers,
    queueLimit: config.queueLimit,
    cancelGraceMs: opts.cancelGraceMs,
    worker: {
      backend: config.backend,
      dataDir: config.dataDir,
      modelsDir: config.modelsDir,
      testJobs: opts.testJobs ?? config.test,
      ...(opts.manifestsDir ? { manifestsDir: opts.manifestsDir } : {}),
    },
  });
  return {
    kind: 'in-process',
    submit: (kind, params, listener) => pool.submit(kind, params, listener),
    cancel: (id) => pool.cancel(id),
    stats: () => pool.stats(),
    close: () => pool.close(),
  };
}
