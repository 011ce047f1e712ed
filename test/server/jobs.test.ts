import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BusyError, CancelledError, JobFailedError, type JobEvent } from '../../engine/index';
import { loadConfig } from '../../server/config';
import { createJobQueue, type JobQueue } from '../../server/jobs/queue';

function queueWith(env: Record<string, string>, cancelGraceMs = 500): JobQueue {
  const config = loadConfig({ NODE_ENV: 'test', CLIP_STUDIO_DATA: '/tmp/clip-studio-test-data', CLIP_STUDIO_BACKEND: 'cpu', ...env });
  return createJobQueue(config, { testJobs: true, cancelGraceMs });
}

/** Resolves with the first event of `type` the listener sees (wired up by `track`). */
function track() {
  const events: JobEvent[] = [];
  const waiters: { type: string; resolve(e: JobEvent): void }[] = [];
  const listener = (e: JobEvent) => {
    events.push(e);
    for (const w of waiters.splice(0)) (w.type === e.type ? w.resolve(e) : waiters.push(w));
  };
  const next = (type: JobEvent['type']) =>
    new Promise<JobEvent>((resolve) => {
      const seen = events.find((e) => e.type === type);
      if (seen) resolve(seen);
      else waiters.push({ type, resolve });
    });
  return { events, listener, next };
}

describe('engine jobs in worker threads', () => {
  let queue: JobQueue;
  before(() => {
    queue = queueWith({ CLIP_STUDIO_WORKERS: '1', CLIP_STUDIO_QUEUE: '1' });
  });
  after(async () => {
    await queue.close();
  });

  it('runs a real tfjs job off the main thread with progress in order', async () => {
    const t = track();
    const job = queue.submit<{ steps: number; backend: string; eigen: number; tensorsLeaked: number }>('tensor-selftest', { steps: 6 }, t.listener);
    const result = await job.result;
    assert.equal(result.steps, 6);
    assert.equal(result.backend, 'cpu', 'CLIP_STUDIO_BACKEND=cpu reaches the worker');
    assert.equal(result.tensorsLeaked, 0);
    // Power iteration on that 4x4 matrix approaches its largest eigenvalue (~4.74) from below.
    assert.ok(result.eigen > 4.5 && result.eigen < 4.8, `eigen ${result.eigen}`);
    const types = t.events.map((e) => e.type);
    assert.deepEqual(types, ['queued', 'started', 'progress', 'progress', 'progress', 'progress', 'progress', 'progress', 'done']);
    const steps = t.events.flatMap((e) => (e.type === 'progress' ? [(e.data as { step: number }).step] : []));
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6]);
  });

  it('an unknown kind fails with an input error naming the field', async () => {
    await assert.rejects(queue.submit('no-such-job', {}).result, (err: unknown) => {
      assert.ok(err instanceof JobFailedError);
      assert.equal(err.code, 'INPUT');
      assert.equal(err.field, 'kind');
      assert.match(err.message, /tensor-selftest/);
      return true;
    });
  });

  it('cancel stops a running job between steps and frees the worker', async () => {
    const t = track();
    const job = queue.submit('tensor-selftest', { steps: 5000, delayMs: 10 }, t.listener);
    await t.next('progress');
    const replacedBefore = queue.stats().replaced;
    job.cancel();
    await assert.rejects(job.result, CancelledError);
    assert.equal(t.events.at(-1)?.type, 'cancelled');
    const progressed = t.events.filter((e) => e.type === 'progress').length;
    assert.ok(progressed < 5000, 'it stopped early');
    assert.equal(queue.stats().replaced, replacedBefore, 'a cooperative cancel keeps the worker');
    const next = await queue.submit<{ steps: number }>('tensor-selftest', { steps: 2 }).result;
    assert.equal(next.steps, 2);
  });

  it('a job that ignores cancel is terminated after the grace period and its worker replaced', async () => {
    const t = track();
    const job = queue.submit('block-for-test', { ms: 60_000 }, t.listener);
    await t.next('progress');
    const replacedBefore = queue.stats().replaced;
    const t0 = Date.now();
    job.cancel();
    await assert.rejects(job.result, CancelledError);
    assert.ok(Date.now() - t0 < 10_000, 'did not wait for the 60 s block');
    assert.equal(queue.stats().replaced, replacedBefore + 1);
    const next = await queue.submit<{ steps: number }>('tensor-selftest', { steps: 1 }).result;
    assert.equal(next.steps, 1);
  });

  it('a full queue refuses with BusyError naming how many jobs are ahead; positions move up', async () => {
    const a = track();
    const running = queue.submit('tensor-selftest', { steps: 5000, delayMs: 10 }, a.listener);
    await a.next('started');
    const b = track();
    const waiting = queue.submit('tensor-selftest', { steps: 1 }, b.listener);
    assert.deepEqual(b.events[0], { type: 'queued', jobId: waiting.id, position: 1 });
    assert.throws(() => queue.submit('tensor-selftest', { steps: 1 }), (err: unknown) => {
      assert.ok(err instanceof BusyError);
      assert.equal(err.ahead, 2);
      return true;
    });
    running.cancel();
    await assert.rejects(running.result, CancelledError);
    await waiting.result;
    assert.deepEqual(b.events.map((e) => e.type), ['queued', 'started', 'progress', 'done']);
  });

  it('cancelling a queued job drops it at once', async () => {
    const a = track();
    const running = queue.submit('tensor-selftest', { steps: 5000, delayMs: 10 }, a.listener);
    await a.next('started');
    const queued = queue.submit('tensor-selftest', { steps: 1 });
    queued.cancel();
    await assert.rejects(queued.result, CancelledError);
    assert.equal(queue.stats().queued, 0);
    running.cancel();
    await assert.rejects(running.result, CancelledError);
  });

  for (const mode of ['throw', 'exit'] as const) {
    it(`a worker that crashes (${mode}) fails its job with the reason, and the next job succeeds`, async () => {
      const replacedBefore = queue.stats().replaced;
      await assert.rejects(queue.submit('crash-for-test', { mode }).result, (err: unknown) => {
        assert.ok(err instanceof JobFailedError);
        assert.equal(err.code, 'WORKER_CRASHED');
        assert.match(err.message, mode === 'throw' ? /crash-for-test: deliberate uncaught error/ : /exit code 3/);
        return true;
      });
      const next = await queue.submit<{ steps: number }>('tensor-selftest', { steps: 2 }).result;
      assert.equal(next.steps, 2);
      assert.equal(queue.stats().replaced, replacedBefore + 1);
    });
  }
});

describe('several workers', () => {
  it('runs jobs side by side, one per worker', async () => {
    const queue = queueWith({ CLIP_STUDIO_WORKERS: '2', CLIP_STUDIO_QUEUE: '4' });
    try {
      const a = track();
      const b = track();
      const ja = queue.submit('tensor-selftest', { steps: 5000, delayMs: 10 }, a.listener);
      const jb = queue.submit('tensor-selftest', { steps: 5000, delayMs: 10 }, b.listener);
      await Promise.all([a.next('progress'), b.next('progress')]);
      assert.equal(queue.stats().busy, 2);
      ja.cancel();
      jb.cancel();
      await Promise.all([assert.rejects(ja.result, CancelledError), assert.rejects(jb.result, CancelledError)]);
    } finally {
      await queue.close();
    }
  });
});
