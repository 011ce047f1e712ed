/**
 * The job journal across restarts (issue #8): each row names the process that journaled it and
 * the queue running it. A start interrupts in-process jobs whose process is gone, and only
 * those; with BullMQ a web node killed mid-job leaves its job to a worker, so the next start
 * leaves the row alone while Redis holds the job, follows it to its end, and marks interrupted
 * only a job Redis no longer holds. Real SQLite, engine worker threads, redis-server, BullMQ.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobEvent } from '../../engine/index';
import { loadConfig } from '../../server/config';
import { BullJobQueue } from '../../server/jobs/bullmq';
import { createJobQueue, INTERRUPTED_MESSAGE, journaled, LOST_MESSAGE, recoverJournal } from '../../server/jobs/queue';
import { startJobWorker } from '../../server/cluster/worker';
import { openDatabase, type Db } from '../../server/store/db';
import { JobStore, newNodeId } from '../../server/store/jobs';
import { REPO_ROOT } from '../helpers/fixtures';
import { requireRedis, startRedis, type RedisInstance } from '../helpers/redis';

const dirs: string[] = [];
const dbs: Db[] = [];
function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'clip-studio-journal-'));
  dirs.push(d);
  return d;
}
function open(dir: string): Db {
  const db = openDatabase(dir);
  dbs.push(db);
  return db;
}
after(() => {
  for (const db of dbs) if (db.open) db.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function until<T>(what: string, get: () => T | Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(v)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('journal, in-process mode', () => {
  it('a restart marks the previous run\'s running job interrupted, and leaves a live process\'s job alone', { timeout: 60_000 }, async () => {
    const dir = dataDir();
    const config = loadConfig({ NODE_ENV: 'test', CLIP_STUDIO_DATA: dir, CLIP_STUDIO_BACKEND: 'cpu', CLIP_STUDIO_WORKERS: '1' });
    // The previous run: a real job on an engine thread, running when "the process stops".
    const first = new JobStore(open(dir), { node: newNodeId(), queue: 'in-process' });
    const pool = createJobQueue(config, { testJobs: true, cancelGraceMs: 100 });
    const queue = journaled(pool, first);
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const job = queue.submit('block-for-test', { ms: 60_000 }, (e: JobEvent) => void (e.type === 'started' && started()));
    job.result.catch(() => {});
    await running;
    assert.equal(first.get(job.id)?.state, 'running');

    // Another in-process server on this host, alive, sharing the data dir; one that has exited.
    const alive = spawn('sleep', ['60'], { stdio: 'ignore' });
    const gone = spawnSync('true');
    assert.ok(alive.pid && gone.pid);
    const aliveRow = randomUUID(), goneRow = randomUUID();
    new JobStore(open(dir), { node: `${hostname()}:${alive.pid}:0a0b0c0d`, queue: 'in-process' }).queued(aliveRow, 'generate', 'a live one');
    new JobStore(open(dir), { node: `${hostname()}:${gone.pid}:0a0b0c0d`, queue: 'in-process' }).queued(goneRow, 'generate', 'a dead one');
    try {
      // The restart: same data dir, a new node id (the old one's pid is this process's now).
      const next = new JobStore(open(dir), { node: newNodeId(), queue: 'in-process' });
      const recovered = await recoverJournal(next, pool);
      assert.deepEqual(recovered, { interrupted: 2, reconciled: 0, followed: 0 });
      const row = next.get(job.id)!;
      assert.equal(row.state, 'interrupted');
      assert.deepEqual(row.error, { code: 'INTERRUPTED', message: INTERRUPTED_MESSAGE });
      assert.equal(next.get(goneRow)?.state, 'interrupted', 'its process exited');
      assert.equal(next.get(aliveRow)?.state, 'queued', 'its process is alive: not interrupted');
      assert.equal(next.count('interrupted'), 2);
    } finally {
      alive.kill();
      await pool.close();
    }
  });
});

const redisBinary = requireRedis();

describe('journal, BullMQ mode', { skip: redisBinary.skip }, () => {
  let redis: RedisInstance;
  before(async () => {
    redis = await startRedis(redisBinary.path!);
  });
  after(async () => {
    await redis?.stop();
  });

  it('a web node killed with a job in Redis: the next start leaves the row alone, follows it to done; a job Redis lost is interrupted', { timeout: 120_000 }, async () => {
    const dir = dataDir();
    const name = `journal-${randomUUID().slice(0, 8)}`;
    // Web node A, a real process: journals a job into BullMQ (no worker yet), then is killed.
    const script = join(dir, 'node-a.mts');
    writeFileSync(script, `
      import { BullJobQueue } from ${JSON.stringify(join(REPO_ROOT, 'server/jobs/bullmq.ts'))};
      import { journaled } from ${JSON.stringify(join(REPO_ROOT, 'server/jobs/queue.ts'))};
      import { openDatabase } from ${JSON.stringify(join(REPO_ROOT, 'server/store/db.ts'))};
      import { JobStore, newNodeId } from ${JSON.stringify(join(REPO_ROOT, 'server/store/jobs.ts'))};
      const bull = new BullJobQueue({ url: ${JSON.stringify(redis.url)}, queueLimit: 10, name: ${JSON.stringify(name)} });
      await bull.ready();
      const q = journaled(bull, new JobStore(openDatabase(${JSON.stringify(dir)}), { node: newNodeId(), queue: 'bullmq' }));
      const job = q.submit('tensor-selftest', { steps: 2 });
      job.result.catch(() => {});
      while ((await bull.lookup(job.id)).state !== 'waiting') await new Promise((r) => setTimeout(r, 50));
      console.log('QUEUED ' + job.id);
      setInterval(() => {}, 1000);
    `);
    const a = spawn(process.execPath, ['--import', 'tsx', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    a.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    a.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const jobId = await until('node A to queue its job', () => /QUEUED (\S+)/.exec(log)?.[1], (v) => !!v).catch((err: Error) => {
      a.kill('SIGKILL');
      throw new Error(`${err.message}\n${log}`);
    });
    const exited = new Promise((r) => a.once('exit', r));
    a.kill('SIGKILL');
    await exited;

    const db = open(dir);
    const lostId = randomUUID(); // journaled by a node, gone from Redis (removed, or Redis emptied)
    new JobStore(db, { node: newNodeId(), queue: 'bullmq' }).queued(lostId, 'generate', 'lost');

    // Node A's restart (or node B): in-process interruption must not touch BullMQ rows.
    const bull = new BullJobQueue({ url: redis.url, queueLimit: 10, name });
    const worker = { current: undefined as Awaited<ReturnType<typeof startJobWorker>> | undefined };
    try {
      await bull.ready();
      const store = new JobStore(db, { node: newNodeId(), queue: 'bullmq' });
      assert.equal(store.get(jobId!)?.state, 'queued');
      const recovered = await recoverJournal(store, bull);
      assert.deepEqual(recovered, { interrupted: 0, reconciled: 1, followed: 1 });
      assert.equal(store.get(jobId!)?.state, 'queued', 'the job is still in Redis: left alone');
      assert.equal((await bull.lookup(jobId!)).state, 'waiting');
      assert.deepEqual(store.get(lostId)?.error, { code: 'INTERRUPTED', message: LOST_MESSAGE });
      assert.equal(store.get(lostId)?.state, 'interrupted');

      // A worker takes the job now; the restarted node journals its end.
      worker.current = await startJobWorker({ url: redis.url, name, threads: 1, engine: { backend: 'cpu' }, log: () => {} });
      const done = await until('the journal to record the end', () => store.get(jobId!), (r) => r?.state !== 'queued' && r?.state !== 'running', 90_000);
      assert.equal(done?.state, 'done', JSON.stringify(done));
      assert.ok(done?.startedAt, 'the start was journaled too');
    } finally {
      await worker.current?.close(true);
      await bull.close();
    }
  });
});
