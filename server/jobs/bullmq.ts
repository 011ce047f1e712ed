/**
 * The JobQueue on BullMQ (REDIS_URL set): web nodes enqueue, `clip-studio worker` processes on
 * other machines run the jobs (server/cluster/worker.ts), and each job's events come back
 * through BullMQ's QueueEvents to the web node that submitted it, which holds the browser's
 * socket and writes the gallery entry. Job data crosses Redis as described in ./wire.ts.
 *
 * - Bounded: a submit is refused with BusyError ("N jobs ahead") when the queue's waiting count
 *   is at CLIP_STUDIO_QUEUE and no worker is free. The count is read from Redis once a second and
 *   after every queue event, and counted up locally between reads, so a burst spread over several
 *   web nodes can overshoot the limit by a few jobs; it never grows without bound.
 * - Retries: a worker that crashes mid-job, or a worker process that dies (its lock lapses and
 *   BullMQ's stalled-job check moves the job back), gets the job retried: `attempts` (2) with
 *   exponential backoff, at most one stall. Engine errors (bad input, a model that does not load)
 *   are final: the worker raises them as UnrecoverableError.
 * - Cancel: a waiting job is removed; a running one gets a cancel flag in Redis that its worker
 *   polls, and ends as an UnrecoverableError the web node reports as `cancelled`.
 * - Results: bytes inline in BullMQ's return value (base64); the job is kept an hour, then removed.
 * - Restarts: jobs another (or an earlier) web node submitted can be looked up (`lookup`) and
 *   followed to their end (`follow`) for the journal; they are not cancelled when this node closes.
 */
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { BusyError, CancelledError, ClipStudioError, JobFailedError, type JobEvent, type JobHandle, type PoolStats } from '../../engine/index';
import type { JobQueue } from './queue';
import { decodeBytes, paramsToWire, reasonToError } from './wire';

/** Where the studio's jobs live in Redis (the worker uses the same names). */
export const JOB_QUEUE_NAME = 'jobs';
export const REDIS_PREFIX = 'clip-studio';
/** The flag a web node sets to cancel a running job; its worker polls it. */
export const cancelKey = (jobId: string) => `${REDIS_PREFIX}:cancel:${jobId}`;

/** What a job is retried with (BullMQ's rules); the worker's stalled-job settings match. */
export const JOB_RETRY: Pick<JobsOptions, 'attempts' | 'backoff'> = { attempts: 2, backoff: { type: 'exponential', delay: 1000 } };
/** Marker in a failure reason: the job was cancelled on request, not failed. */
export const CANCELLED_REASON = 'cancelled on request';

/** Options for the Redis connections BullMQ opens (a blocking Worker needs no per-request retry limit). */
export function redisConnection(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

interface Pending {
  kind: string;
  listener?: (e: JobEvent) => void;
  resolve(v: unknown): void;
  reject(e: Error): void;
  started: boolean;
  cancelRequested: boolean;
}

export interface BullJobQueueOptions {
  url: string;
  /** Jobs that may wait before new ones are refused (CLIP_STUDIO_QUEUE). */
  queueLimit: number;
  /** Queue name (tests use their own). */
  name?: string;
}

export class BullJobQueue implements JobQueue {
  readonly kind = 'bullmq' as const;
  private readonly queue: Queue;
  private readonly events: QueueEvents;
  private readonly redis: Redis;
  private readonly eventsRedis: Redis;
  private readonly pending = new Map<string, Pending>();
  /** Jobs submitted elsewhere whose events this node journals (`follow`). */
  private readonly followed = new Map<string, (e: JobEvent) => void>();
  private counts = { waiting: 0, active: 0, workers: 0 };
  /** Submitted here since the last count from Redis (counted as waiting until then). */
  private unconfirmed = 0;
  private readonly refresher: NodeJS.Timeout;
  private refreshing: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly opts: BullJobQueueOptions) {
    const name = opts.name ?? JOB_QUEUE_NAME;
    this.redis = redisConnection(opts.url);
    this.queue = new Queue(name, { connection: this.redis, prefix: REDIS_PREFIX });
    // QueueEvents blocks on XREAD: it needs a connection of its own (BullMQ duplicates this one).
    this.eventsRedis = redisConnection(opts.url);
    this.events = new QueueEvents(name, { connection: this.eventsRedis, prefix: REDIS_PREFIX });
    const onError = (err: Error) => console.error(`[jobs] redis: ${err.message}`);
    this.queue.on('error', onError);
    this.events.on('error', onError);
    this.events.on('active', ({ jobId }) => this.onActive(jobId));
    this.events.on('progress', ({ jobId, data }) => this.emit(jobId, { type: 'progress', jobId, data: decodeBytes(data) }));
    this.events.on('completed', ({ jobId, returnvalue }) => this.settle(jobId, { type: 'done', jobId, result: decodeBytes(returnvalue) }));
    this.events.on('failed', ({ jobId, failedReason }) => this.onFailed(jobId, failedReason));
    this.events.on('removed', ({ jobId }) => this.settle(jobId, { type: 'cancelled', jobId }));
    for (const e of ['waiting', 'active', 'completed', 'failed'] as const) this.events.on(e, () => void this.refresh());
    this.refresher = setInterval(() => void this.refresh(), 1000);
    this.refresher.unref();
    void this.refresh();
  }

  /** Resolves once the event stream is being read (jobs submitted before then still report). */
  async ready(): Promise<void> {
    await Promise.all([this.queue.waitUntilReady(), this.events.waitUntilReady()]);
    await this.refresh();
  }

  submit<R = unknown>(kind: string, params: unknown, listener?: (e: JobEvent) => void): JobHandle<R> {
    if (this.closed) throw new ClipStudioError('The job queue is closed.');
    const waiting = this.counts.waiting + this.unconfirmed;
    const workerFree = this.counts.active < this.counts.workers && waiting === 0;
    if (!workerFree && waiting >= this.opts.queueLimit) throw new BusyError(waiting + this.counts.active);
    const data = { params: paramsToWire(kind, params) }; // throws (a missing upload) before anything is queued
    let resolve!: (v: unknown) => void;
    let reject!: (e: Error) => void;
    const result = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    result.catch(() => {});
    const id = randomUUID();
    this.pending.set(id, { kind, listener, resolve, reject, started: false, cancelRequested: false });
    this.unconfirmed++;
    this.emit(id, { type: 'queued', jobId: id, position: waiting + 1 });
    this.queue.add(kind, data, {
      jobId: id, ...JOB_RETRY,
      removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 },
    }).catch((err: Error) => {
      this.settle(id, { type: 'failed', jobId: id, error: { name: 'QueueError', code: 'QUEUE', message: `The job could not be queued (Redis: ${err.message}).` } });
    });
    return { id, kind, result: result as Promise<R>, cancel: () => void this.cancel(id) };
  }

  cancel(jobId: string): boolean {
    const p = this.pending.get(jobId);
    if (!p) return false;
    if (p.cancelRequested) return true;
    p.cancelRequested = true;
    void (async () => {
      // The flag first: a job a worker takes between our two calls still sees it.
      await this.redis.set(cancelKey(jobId), '1', 'EX', 24 * 3600);
      // Not yet taken by a worker: remove it (a locked, running job is not removed; it polls the flag).
      const removed = await this.queue.remove(jobId).catch(() => 0);
      if (removed) this.settle(jobId, { type: 'cancelled', jobId });
    })().catch((err: Error) => console.error(`[jobs] cancel ${jobId}: ${err.message}`));
    return true;
  }

  /** Where a job is in Redis now: BullMQ's state ('waiting', 'active', 'completed', 'failed', …) or 'missing'. */
  async lookup(jobId: string): Promise<{ state: string; failedReason?: string }> {
    const job = await this.queue.getJob(jobId);
    if (!job) return { state: 'missing' };
    const state = await job.getState();
    return state === 'unknown' ? { state: 'missing' } : { state, failedReason: job.failedReason };
  }

  /** Hear a job submitted elsewhere start and end ('started', then 'done', 'failed' or 'cancelled'; no progress). */
  follow(jobId: string, listener: (e: JobEvent) => void): () => void {
    this.followed.set(jobId, listener);
    return () => void (this.followed.get(jobId) === listener && this.followed.delete(jobId));
  }

  stats(): PoolStats {
    return {
      workers: this.counts.workers, ready: this.counts.workers, busy: this.counts.active,
      queued: this.counts.waiting + this.unconfirmed, queueLimit: this.opts.queueLimit, replaced: 0,
    };
  }

  /** Stop listening; jobs still pending are asked to stop (their clients were told by the journal). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.refresher);
    const ids = [...this.pending.keys()];
    await Promise.all(ids.map(async (id) => {
      await this.redis.set(cancelKey(id), '1', 'EX', 24 * 3600).catch(() => {});
      await this.queue.remove(id).catch(() => 0);
      this.settle(id, { type: 'cancelled', jobId: id });
    }));
    await this.refreshing?.catch(() => {});
    await this.events.close().catch(() => {});
    await this.queue.close().catch(() => {});
    this.redis.disconnect();
    this.eventsRedis.disconnect();
  }

  // -------------------------------------------------------------------------------------------

  private refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return (this.refreshing ??= (async () => {
      try {
        const [c, workers] = await Promise.all([
          this.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active'),
          this.queue.getWorkersCount(),
        ]);
        this.counts = { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0), active: c.active ?? 0, workers };
        this.unconfirmed = 0;
      } catch {
        // Redis unreachable: keep the last counts; the add itself will fail and say so.
      } finally {
        this.refreshing = undefined;
      }
    })());
  }

  private emit(jobId: string, e: JobEvent): void {
    const listener = this.pending.has(jobId) ? this.pending.get(jobId)!.listener : e.type === 'progress' ? undefined : this.followed.get(jobId);
    try {
      listener?.(e);
    } catch {
      // a listener's bug must not stop the queue
    }
  }

  private onActive(jobId: string): void {
    const p = this.pending.get(jobId);
    if (!p) return this.emit(jobId, { type: 'started', jobId }); // followed: the journal ignores a second "started"
    if (p.started) return; // a retry is active again: the client already heard "started"
    p.started = true;
    this.emit(jobId, { type: 'started', jobId });
  }

  private onFailed(jobId: string, reason: string): void {
    const p = this.pending.get(jobId);
    if (!p && !this.followed.has(jobId)) return;
    if ((!p || p.cancelRequested) && reason.includes(CANCELLED_REASON)) return this.settle(jobId, { type: 'cancelled', jobId });
    this.settle(jobId, { type: 'failed', jobId, error: reasonToError(reason) });
  }

  private settle(jobId: string, e: Extract<JobEvent, { type: 'done' | 'failed' | 'cancelled' }>): void {
    const p = this.pending.get(jobId);
    if (!p) {
      this.emit(jobId, e);
      this.followed.delete(jobId);
      return;
    }
    this.emit(jobId, e);
    this.pending.delete(jobId);
    if (p.cancelRequested) void this.redis.del(cancelKey(jobId)).catch(() => {});
    if (e.type === 'done') p.resolve(e.result);
    else if (e.type === 'cancelled') p.reject(new CancelledError());
    else p.reject(new JobFailedError(p.kind, e.error));
  }
}
