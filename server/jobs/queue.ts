/**
 * The one job-queue interface the studio talks to. In-process (a WorkerPool of engine worker
 * threads) by default; with REDIS_URL set, BullMQ (./bullmq.ts): this process only enqueues and
 * follows jobs, and `clip-studio worker` processes run them.
 */
import { ClipStudioError, WorkerPool, type JobEvent, type JobHandle, type PoolStats } from '../../engine/index';
import type { StudioConfig } from '../config';
import type { JobStore } from '../store/jobs';
import { BullJobQueue, CANCELLED_REASON } from './bullmq';
import { reasonToError } from './wire';

export type { JobEvent, JobHandle, PoolStats };

export interface JobQueue {
  /** Which implementation runs the jobs, for the health report. */
  readonly kind: 'in-process' | 'bullmq';
  /** Throws BusyError (with how many jobs are ahead) when the queue is full. */
  submit<R = unknown>(kind: string, params: unknown, listener?: (e: JobEvent) => void): JobHandle<R>;
  cancel(jobId: string): boolean;
  stats(): PoolStats;
  close(): Promise<void>;
}

/** The server is stopping: no new jobs. */
export class ShuttingDownError extends ClipStudioError {
  override readonly code = 'SHUTTING_DOWN';
  constructor() {
    super('The studio is restarting and takes no new jobs; try again in a minute.');
  }
}

/** What a job's client hears when a shutdown (or a crash before it) cut the job short. */
export const INTERRUPTED_MESSAGE = 'The studio restarted while this job was running; it was interrupted. Start it again.';

/** A BullMQ job in the journal that Redis no longer holds (removed after its hour, or Redis was emptied). */
export const LOST_MESSAGE = 'The studio restarted while this job ran on a worker, and Redis no longer holds it; its outcome is unknown. Start it again if you need it.';

/**
 * At start, bring the journal up to date with what a previous run left unfinished: in-process
 * jobs of a process that is gone are marked interrupted (`JobStore.interruptUnfinished`). With
 * BullMQ (`queue` is the unwrapped BullJobQueue), jobs journaled by other or earlier nodes may
 * still be running on a worker: each is looked up in Redis; finished ones get their ending,
 * ones Redis no longer holds are marked interrupted, and the rest are left as they are and
 * followed, so their ending is journaled when it comes.
 */
export async function recoverJournal(store: JobStore, queue: JobQueue): Promise<{ interrupted: number; reconciled: number; followed: number }> {
  const out = { interrupted: store.interruptUnfinished(INTERRUPTED_MESSAGE), reconciled: 0, followed: 0 };
  if (!(queue instanceof BullJobQueue)) return out;
  for (const id of store.unfinishedElsewhere('bullmq')) {
    const stop = queue.follow(id, (e) => {
      if (e.type === 'started') store.started(id);
      else if (e.type === 'done' || e.type === 'cancelled') store.finished(id, e.type);
      else if (e.type === 'failed') store.finished(id, 'failed', { error: { code: e.error.code, message: e.error.message } });
    }); // before the lookup, so an ending between the two is not missed
    const { state, failedReason = '' } = await queue.lookup(id).catch(() => ({ state: 'unreadable', failedReason: '' })); // followed
    if (state === 'completed') store.finished(id, 'done');
    else if (state === 'failed' && failedReason.includes(CANCELLED_REASON)) store.finished(id, 'cancelled');
    else if (state === 'failed') {
      const err = reasonToError(failedReason);
      store.finished(id, 'failed', { error: { code: err.code, message: err.message } });
    } else if (state === 'missing') store.finished(id, 'interrupted', { error: { code: 'INTERRUPTED', message: LOST_MESSAGE } });
    else {
      if (state === 'active') store.started(id);
      out.followed++;
      continue;
    }
    stop();
    out.reconciled++;
  }
  return out;
}

/** A JobQueue that writes every job to the journal and can be drained for a graceful stop. */
export interface JournaledQueue extends JobQueue {
  /** Refuse new jobs from now on (ShuttingDownError). */
  stopAccepting(): void;
  /** Resolves when no job is queued or running, or after `deadlineMs`; true when all finished. */
  drained(deadlineMs: number): Promise<boolean>;
  /** Jobs submitted and not yet finished. */
  pending(): number;
}

/**
 * Wrap a queue so every job (but the server's own health probes) is journaled in SQLite:
 * queued, running, and how it ended. `close()` marks jobs still pending as interrupted and tells
 * their listeners so (a `failed` event with code INTERRUPTED), rather than a plain `cancelled`.
 */
export function journaled(queue: JobQueue, store: JobStore, opts: { skipKinds?: readonly string[] } = {}): JournaledQueue {
  const skip = new Set(opts.skipKinds ?? ['health']);
  const pending = new Map<string, { kind: string; listener?: (e: JobEvent) => void; closing: boolean }>();
  let accepting = true;
  const idleWaiters: (() => void)[] = [];
  const settle = (id: string) => {
    pending.delete(id);
    if (!pending.size) for (const w of idleWaiters.splice(0)) w();
  };
  const label = (params: unknown): string | null => {
    const p = (params as { prompt?: unknown } | null | undefined)?.prompt;
    return typeof p === 'string' ? p : null;
  };
  const record = (e: JobEvent, kind: string, params: unknown) => {
    try {
      switch (e.type) {
        case 'queued': return store.queued(e.jobId, kind, label(params));
        case 'started': return store.started(e.jobId);
        case 'done': return store.finished(e.jobId, 'done');
        case 'failed': return store.finished(e.jobId, 'failed', { error: { code: e.error.code, message: e.error.message } });
        case 'cancelled': return store.finished(e.jobId, 'cancelled');
      }
    } catch (err) {
      console.error('[jobs] could not write the journal:', err); // the job itself goes on
    }
  };
  return {
    kind: queue.kind,
    submit<R = unknown>(kind: string, params: unknown, listener?: (e: JobEvent) => void): JobHandle<R> {
      if (!accepting) throw new ShuttingDownError();
      if (skip.has(kind)) return queue.submit<R>(kind, params, listener);
      let entry: { kind: string; listener?: (e: JobEvent) => void; closing: boolean } | undefined;
      const handle = queue.submit<R>(kind, params, (e) => {
        if (!entry) pending.set(e.jobId, entry = { kind, listener, closing: false });
        if (entry.closing && e.type === 'cancelled') return; // close() already said "interrupted"
        record(e, kind, params);
        if (e.type === 'done' || e.type === 'failed' || e.type === 'cancelled') settle(e.jobId);
        listener?.(e);
      });
      return handle;
    },
    cancel: (id) => queue.cancel(id),
    stats: () => queue.stats(),
    pending: () => pending.size,
    stopAccepting() {
      accepting = false;
    },
    drained(deadlineMs) {
      if (!pending.size) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), deadlineMs);
        idleWaiters.push(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    },
    async close() {
      accepting = false;
      for (const [id, entry] of pending) {
        entry.closing = true;
        try {
          store.finished(id, 'interrupted', { error: { code: 'INTERRUPTED', message: INTERRUPTED_MESSAGE } });
        } catch (err) {
          console.error('[jobs] could not write the journal:', err);
        }
        try {
          entry.listener?.({ type: 'failed', jobId: id, error: { name: 'Interrupted', code: 'INTERRUPTED', message: INTERRUPTED_MESSAGE } });
        } catch {
          // a listener's bug must not stop the shutdown
        }
      }
      pending.clear();
      for (const w of idleWaiters.splice(0)) w();
      await queue.close();
    },
  };
}

export interface QueueOptions {
  /** Register the engine's test-only job kinds (crash-for-test, block-for-test). */
  testJobs?: boolean;
  cancelGraceMs?: number;
  /** Directory of model manifests the workers read (default: the repo's models/). */
  manifestsDir?: string;
}

export function createJobQueue(config: StudioConfig, opts: QueueOptions = {}): JobQueue {
  if (config.redisUrl) return new BullJobQueue({ url: config.redisUrl, queueLimit: config.queueLimit });
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
