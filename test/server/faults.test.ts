/**
 * Issue #8, faults, on the real server:
 *
 * - An engine worker killed mid-generate: the job fails with a reason, the client is told, the
 *   journal says failed, the worker is replaced and the next job succeeds.
 * - `tsx server.ts` killed outright (SIGKILL) mid-job: after a restart the gallery, recipes and
 *   hall of fame are all there, and the job that was running is listed as interrupted.
 * - SIGTERM: the server stops taking connections, lets a short job finish, interrupts a long one
 *   at the deadline (its client hears why), closes the database and exits 0.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadConfig } from '../../server/config';
import { createStudioServer, type StudioServer } from '../../server/create';
import { openDatabase } from '../../server/store/db';
import { Gallery } from '../../server/store/gallery';
import { HallOfFame } from '../../server/store/hall-of-fame';
import { JobStore, type JobRecord } from '../../server/store/jobs';
import { REPO_ROOT } from '../helpers/fixtures';
import { recordingClient as recordingClientAt, type RecordedEvent } from '../helpers/recording-client';
import { fixtureManifests } from '../helpers/generate-models';
import { solidPng } from '../helpers/hostile-images';

type Ev = RecordedEvent;

/** Recording clients with a longer wait: generate jobs on a loaded machine take a while. */
const recordingClient = (url: string) => recordingClientAt(url, { timeoutMs: 120_000 });

describe('an engine worker killed mid-job', () => {
  let studio: StudioServer;
  let url: string;
  let dataDir: string;
  let manifests: string;
  const running = new Map<string, Worker>();
  const realPost = Worker.prototype.postMessage;

  before(async () => {
    // Find the worker thread a job runs on: the pool posts {type: 'run', jobId} to it.
    Worker.prototype.postMessage = function (this: Worker, msg: unknown, ...rest: unknown[]) {
      const m = msg as { type?: string; jobId?: string };
      if (m?.type === 'run' && m.jobId) running.set(m.jobId, this);
      return (realPost as (...a: unknown[]) => void).call(this, msg, ...rest);
    } as typeof Worker.prototype.postMessage;
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-faults-'));
    manifests = fixtureManifests();
    studio = await createStudioServer({ config: loadConfig({ NODE_ENV: 'test', CLIP_STUDIO_DATA: dataDir, CLIP_STUDIO_WORKERS: '1' }), next: false, manifestsDir: manifests });
    url = `http://127.0.0.1:${(await studio.listen(0, '127.0.0.1')).port}`;
  });
  after(async () => {
    Worker.prototype.postMessage = realPost;
    await studio?.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(manifests, { recursive: true, force: true });
  });

  it('fails the job with the reason, tells the client, replaces the worker; the next job succeeds', async () => {
    const tiny = { size: 16, cutn: 1, clipModel: 'fixture-clip', vqganModel: 'fixture-vqgan' };
    const { c, waitFor } = await recordingClient(url);
    try {
      c.emit('job:start', { kind: 'generate', params: { ...tiny, prompt: 'a long one', steps: 2000, previewEvery: 0 }, requestId: 'doomed' });
      const queued = await waitFor('job:queued', (p) => p.requestId === 'doomed');
      const jobId = queued.payload.jobId as string;
      await waitFor('job:progress', (p) => p.jobId === jobId);
      const replacedBefore = studio.queue.stats().replaced;
      const worker = running.get(jobId);
      assert.ok(worker, 'found the worker thread running the job');
      await worker.terminate(); // killed from outside, as an OOM killer or a native crash would

      const failed = await waitFor('job:failed', (p) => p.jobId === jobId);
      const error = failed.payload.error as { code: string; message: string };
      assert.equal(error.code, 'WORKER_CRASHED');
      assert.match(error.message, /worker running this generate job crashed \(exit code 1\)/);
      const row = openJournal(dataDir).find((j) => j.id === jobId);
      assert.equal(row?.state, 'failed');
      assert.equal(row?.error?.code, 'WORKER_CRASHED');
      assert.equal(row?.label, 'a long one');

      c.emit('job:start', { kind: 'generate', params: { ...tiny, prompt: 'after the crash', steps: 2, previewEvery: 0 }, requestId: 'next' });
      const next = (await waitFor('job:queued', (p) => p.requestId === 'next')).payload.jobId as string;
      const done = await waitFor('job:done', (p) => p.jobId === next);
      assert.equal((done.payload.result as { prompt: string }).prompt, 'after the crash');
      assert.equal(studio.queue.stats().replaced, replacedBefore + 1, 'one new worker');
      const metrics = await (await fetch(`${url}/api/metrics`)).text();
      assert.match(metrics, new RegExp(`clip_studio_workers_replaced_total ${replacedBefore + 1}`));
      assert.match(metrics, /clip_studio_jobs_total\{state="failed"\} 1/);
    } finally {
      c.close();
    }
  });
});

/** The journal as a new process would read it. */
function openJournal(dataDir: string): JobRecord[] {
  const db = openDatabase(dataDir);
  try {
    return new JobStore(db).list({ limit: 100 });
  } finally {
    db.close();
  }
}

/** `tsx server.ts --api-only` on a free port; resolves once it says where it listens. */
function startServerProcess(dataDir: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; url: string; log: () => string; exited: Promise<number | null> }> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', CLIP_STUDIO_DATA: dataDir, CLIP_STUDIO_BACKEND: 'cpu', ...env };
  delete childEnv.NODE_OPTIONS;
  delete childEnv.NODE_TEST_CONTEXT;
  // One process (node with tsx's loader), not the tsx CLI, which would run the server in a child
  // that a SIGKILL of its parent leaves behind.
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'server.ts'), '--api-only'], { cwd: REPO_ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 90 s:\n${out}`)), 90_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      const m = /on (http:\/\/\S+:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, log: () => out, exited });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${out}`));
    });
  });
}

describe('the server process stops', () => {
  let dataDir: string;
  const children: ChildProcess[] = [];
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-restart-'));
  });
  after(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('killed outright mid-job: after a restart the gallery, recipes and hall of fame are kept and the job is listed as interrupted', async () => {
    // Something to keep: a gallery item with its recipe, a hall-of-fame drawing.
    const db = openDatabase(dataDir);
    const item = await new Gallery(db, dataDir).add({ prompt: 'kept', seed: 7, width: 16, height: 16, png: solidPng(16, 16), recipe: { steps: 9, prompt: 'kept' } });
    new HallOfFame(db).add([{ pack: 'demo', prompt: 'a red circle', nickname: 'ada', score: 0.9, png: solidPng(8, 8) }]);
    db.close();

    const server = await startServerProcess(dataDir);
    children.push(server.child);
    const { c, waitFor } = await recordingClient(server.url);
    c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 200, delayMs: 100 }, requestId: 'cut' });
    const jobId = (await waitFor('job:queued', (p) => p.requestId === 'cut')).payload.jobId as string;
    await waitFor('job:progress', (p) => p.jobId === jobId);
    server.child.kill('SIGKILL');
    await server.exited;
    c.close();
    assert.equal(openJournal(dataDir).find((j) => j.id === jobId)?.state, 'running', 'a kill leaves no chance to write anything');

    const studio = await createStudioServer({ config: loadConfig({ NODE_ENV: 'test', CLIP_STUDIO_DATA: dataDir, CLIP_STUDIO_BACKEND: 'cpu' }), next: false });
    try {
      const base = `http://127.0.0.1:${(await studio.listen(0, '127.0.0.1')).port}`;
      const jobs = await (await fetch(`${base}/api/jobs?state=interrupted`)).json() as { items: JobRecord[] };
      const row = jobs.items.find((j) => j.id === jobId);
      assert.ok(row, `the killed job is listed as interrupted: ${JSON.stringify(jobs)}`);
      assert.equal(row.error?.code, 'INTERRUPTED');
      assert.match(row.error!.message, /restarted while this job was running/);
      const gallery = await (await fetch(`${base}/api/gallery`)).json() as { items: { id: string; recipe: Record<string, unknown> }[] };
      assert.deepEqual(gallery.items.map((i) => i.id), [item.id]);
      assert.deepEqual(gallery.items[0]!.recipe, { steps: 9, prompt: 'kept' });
      assert.equal((await fetch(`${base}/api/images/${item.id}.png`)).status, 200);
    } finally {
      await studio.close();
    }
    const db2 = openDatabase(dataDir);
    assert.deepEqual(new HallOfFame(db2).best('demo').map((p) => [p.prompt, p.entries[0]!.nickname]), [['a red circle', 'ada']]);
    db2.close();
  });

  it('SIGTERM: a short job finishes, a long one is interrupted at the deadline and its client told; exit 0', async () => {
    const server = await startServerProcess(dataDir, { CLIP_STUDIO_WORKERS: '2', CLIP_STUDIO_SHUTDOWN_MS: '4000' });
    children.push(server.child);
    const a = await recordingClient(server.url);
    const b = await recordingClient(server.url);
    try {
      b.c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 200, delayMs: 200 }, requestId: 'long' });
      const longId = (await b.waitFor('job:queued', (p) => p.requestId === 'long')).payload.jobId as string;
      await b.waitFor('job:progress', (p) => p.jobId === longId);
      a.c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 20, delayMs: 50 }, requestId: 'short' });
      const shortId = (await a.waitFor('job:queued', (p) => p.requestId === 'short')).payload.jobId as string;
      await a.waitFor('job:started', (p) => p.jobId === shortId);

      const t0 = Date.now();
      server.child.kill('SIGTERM');
      // No new connections once it is stopping.
      await new Promise((r) => setTimeout(r, 300));
      await assert.rejects(recordingClient(server.url), 'a new connection is refused while draining');

      const shortDone = await a.waitFor('job:done', (p) => p.jobId === shortId, 30_000);
      assert.equal((shortDone.payload.result as { steps: number }).steps, 20, 'the short job finished');
      const longFailed = await b.waitFor('job:failed', (p) => p.jobId === longId, 30_000);
      const error = longFailed.payload.error as { code: string; message: string };
      assert.equal(error.code, 'INTERRUPTED');
      assert.match(error.message, /interrupted/);
      assert.equal(await server.exited, 0);
      const took = Date.now() - t0;
      assert.ok(took >= 3500, `waited for the deadline (${took} ms)`);
      assert.match(server.log(), /SIGTERM: closing; 2 jobs may take up to 4 s to finish/);
      assert.match(server.log(), /closed; unfinished jobs were marked interrupted/);

      const journal = openJournal(dataDir);
      assert.equal(journal.find((j) => j.id === shortId)?.state, 'done');
      assert.equal(journal.find((j) => j.id === longId)?.state, 'interrupted');
    } finally {
      a.c.close();
      b.c.close();
    }
  });
});
