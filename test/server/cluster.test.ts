/**
 * Issue #8, scale-out, on real components: a real redis-server, two web nodes (the real studio
 * server, REDIS_URL set: BullMQ queue, socket.io redis adapter, rooms hosted across nodes) and
 * `clip-studio worker` as a child process.
 *
 * - A client on node A starts a job; the worker process runs it; progress and the result come
 *   back through BullMQ's events to node A. Cancel reaches the running job on the worker.
 * - BullMQ's rules: an engine error is final (one attempt); a crashed engine thread is retried
 *   (two attempts); a worker process killed mid-job has the job taken over by another worker.
 * - Two players on nodes A and B play a round in one room with the demo CLIP judging: both see
 *   the same states, guesses, one bell, the reveal and the podium; the room's state and the hall
 *   of fame are in Redis. A web node killed mid-round has its room taken over by another.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Socket } from 'socket.io-client';
import { createRng, encodePng, renderSampleSync } from '../../engine/index';
import { loadConfig } from '../../server/config';
import { createStudioServer, type StudioServer } from '../../server/create';
import { RedisHallOfFame } from '../../server/cluster/hall-of-fame';
import { JOB_QUEUE_NAME, REDIS_PREFIX } from '../../server/jobs/bullmq';
import type { JobEvent } from '../../server/jobs/queue';
import { REPO_ROOT } from '../helpers/fixtures';
import { recordingClient, type RecordedEvent } from '../helpers/recording-client';
import { freePort, requireRedis, startRedis, type RedisInstance } from '../helpers/redis';

type Ev = RecordedEvent;

/** `clip-studio worker` as a real process; resolves once it is taking jobs. */
async function startWorker(redisUrl: string, dataDir: string): Promise<{ child: ChildProcess; log: () => string; stop(signal?: NodeJS.Signals): Promise<void> }> {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'cli/bin.mjs'), 'worker', '--lock-ms', '2000'], {
    cwd: REPO_ROOT,
    env: { ...process.env, REDIS_URL: redisUrl, NODE_ENV: 'test', CLIP_STUDIO_BACKEND: 'cpu', CLIP_STUDIO_DATA: dataDir, CLIP_STUDIO_WORKERS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the worker did not start in 60 s:\n${log}`)), 60_000);
    const check = () => {
      if (log.includes('taking jobs from')) { clearTimeout(timer); resolve(); }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the worker exited with ${code}:\n${log}`)); });
  });
  return {
    child,
    log: () => log,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await exited;
    },
  };
}

async function doodle(subject: string, seed: number): Promise<Buffer> {
  const { image } = renderSampleSync(createRng(seed), { size: 128, subject });
  return encodePng(image.data, image.width, image.height);
}

const redisBinary = requireRedis();

describe('scale-out: redis-server, two web nodes, one clip-studio worker', { skip: redisBinary.skip }, () => {
  let redis: RedisInstance;
  const nodes: StudioServer[] = [];
  const urls: string[] = [];
  const dirs: string[] = [];
  const clients: Socket[] = [];
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'clip-studio-cluster-'));
    dirs.push(d);
    return d;
  };
  const client = async (node: 0 | 1) => {
    const r = await recordingClient(urls[node]!);
    clients.push(r.c);
    return r;
  };

  before(async () => {
    redis = await startRedis(redisBinary.path!);
    for (let i = 0; i < 2; i++) {
      const studio = await createStudioServer({
        config: loadConfig({ NODE_ENV: 'test', CLIP_STUDIO_DATA: dir(), CLIP_STUDIO_BACKEND: 'cpu', REDIS_URL: redis.url }),
        next: false,
        game: { timing: { revealMs: 500, collectGraceMs: 1500 } },
      });
      nodes.push(studio);
      urls.push(`http://127.0.0.1:${(await studio.listen(0, '127.0.0.1')).port}`);
    }
    worker = await startWorker(redis.url, dir());
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const n of nodes) await n.close();
    await worker?.stop();
    await redis?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a client on node A gets a job run by the worker process, with its progress', { timeout: 90_000 }, async () => {
    assert.equal(nodes[0]!.queue.kind, 'bullmq', 'REDIS_URL selects the BullMQ queue: node A runs no engine threads');
    const a = await client(0);
    a.c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 4, delayMs: 50 }, requestId: 'r1' });
    const queued = await a.waitFor('job:queued', (p) => p.requestId === 'r1');
    const jobId = queued.payload.jobId as string;
    const done = await a.waitFor('job:done', (p) => p.jobId === jobId);
    const mine = a.events.filter((e) => e.payload.jobId === jobId).map((e) => e.event);
    assert.deepEqual(mine.filter((e) => e !== 'job:queued'), ['job:started', 'job:progress', 'job:progress', 'job:progress', 'job:progress', 'job:done']);
    const steps = a.events.filter((e) => e.event === 'job:progress' && e.payload.jobId === jobId).map((e) => (e.payload.data as { step: number }).step);
    assert.deepEqual(steps, [1, 2, 3, 4]);
    const result = done.payload.result as { steps: number; eigen: number; tensorsLeaked: number; backend: string };
    assert.equal(result.steps, 4);
    assert.equal(result.tensorsLeaked, 0);
    assert.ok(result.eigen > 4 && result.eigen < 5.2, `the power iteration converges towards 4.7, got ${result.eigen}`);
    assert.ok(nodes[0]!.queue.stats().workers >= 1, 'node A counts the worker process');
    // Node B heard nothing of node A's job: events go to the node that holds the socket.
    const b = await client(1);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(b.events.filter((e) => e.event.startsWith('job:')).length, 0);
  });

  it('cancel from node A stops the job running on the worker', { timeout: 60_000 }, async () => {
    const a = await client(0);
    a.c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 200, delayMs: 100 }, requestId: 'long' });
    const jobId = (await a.waitFor('job:queued', (p) => p.requestId === 'long')).payload.jobId as string;
    await a.waitFor('job:progress', (p) => p.jobId === jobId);
    const t0 = Date.now();
    a.c.emit('job:cancel', { jobId });
    await a.waitFor('job:cancelled', (p) => p.jobId === jobId, 10_000);
    assert.ok(Date.now() - t0 < 5_000, 'the cancel flag is polled while the job runs');
    assert.equal(a.events.some((e) => e.event === 'job:done' && e.payload.jobId === jobId), false);
    const progressAtCancel = a.events.filter((e) => e.event === 'job:progress' && e.payload.jobId === jobId).length;
    assert.ok(progressAtCancel < 200, 'it stopped early');
  });

  it('follows BullMQ retry rules: engine errors are final, a crashed engine thread is retried', { timeout: 90_000 }, async () => {
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue(JOB_QUEUE_NAME, { connection, prefix: REDIS_PREFIX });
    try {
      const run = (kind: string, params: unknown) => new Promise<{ id: string; last: JobEvent }>((resolve) => {
        const h = nodes[1]!.queue.submit(kind, params, (e) => {
          if (e.type === 'done' || e.type === 'failed' || e.type === 'cancelled') resolve({ id: h.id, last: e });
        });
      });
      const bad = await run('tensor-selftest', { steps: 0 });
      assert.equal(bad.last.type, 'failed');
      const badErr = (bad.last as Extract<JobEvent, { type: 'failed' }>).error;
      assert.equal(badErr.field, 'steps', 'the engine error comes back with its field');
      assert.match(badErr.message, /between 1 and 10000, got 0/);
      assert.equal((await queue.getJob(bad.id))!.attemptsMade, 1, 'an input error is not retried');

      const crash = await run('crash-for-test', { mode: 'throw' });
      assert.equal(crash.last.type, 'failed');
      assert.equal((crash.last as Extract<JobEvent, { type: 'failed' }>).error.code, 'WORKER_CRASHED');
      assert.equal((await queue.getJob(crash.id))!.attemptsMade, 2, 'a crashed thread is retried once (attempts: 2)');
    } finally {
      await queue.close();
      connection.disconnect(); // a connection handed to BullMQ stays ours to close
    }
  });

  it('a worker process killed mid-job: BullMQ hands the stalled job to another worker, and the client gets its result', { timeout: 120_000 }, async () => {
    const a = await client(0);
    a.c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 30, delayMs: 100 }, requestId: 'stall' });
    const jobId = (await a.waitFor('job:queued', (p) => p.requestId === 'stall')).payload.jobId as string;
    await a.waitFor('job:progress', (p) => p.jobId === jobId);
    await worker!.stop('SIGKILL'); // no chance to finish or give the job back
    worker = await startWorker(redis.url, dir());
    const done = await a.waitFor('job:done', (p) => p.jobId === jobId, 60_000);
    assert.equal((done.payload.result as { steps: number }).steps, 30);
    assert.equal(a.events.filter((e) => e.event === 'job:started' && e.payload.jobId === jobId).length, 1, 'the client hears "started" once');
  });

  it('two players on nodes A and B play a round in one room, judged by the demo CLIP', { timeout: 120_000 }, async () => {
    const ada = await client(0);
    const bo = await client(1);
    ada.c.emit('play:create', { nickname: 'Ada', settings: { rounds: 1, seconds: 5 } });
    const joinedA = (await ada.waitFor('play:joined')).payload as { code: string; seat: string };
    const code = joinedA.code;
    assert.equal(nodes[0]!.game.roomCount, 1, 'node A owns the room');
    assert.equal(nodes[1]!.game.roomCount, 0);

    // A join on node B is forwarded to the owner; errors come back naming the field.
    bo.c.emit('play:join', { code, nickname: 'ada' });
    const taken = await bo.waitFor('play:error');
    assert.deepEqual([taken.payload.code, taken.payload.field], ['NICKNAME_TAKEN', 'nickname']);
    bo.c.emit('play:join', { code, nickname: 'Bo' });
    const joinedB = (await bo.waitFor('play:joined')).payload as { seat: string; room: { seats: unknown[] } };
    assert.equal(joinedB.room.seats.length, 2);
    await ada.waitFor('play:state', (p) => (p.seats as unknown[]).length === 2);

    // Only the host (on node A) may start; Bo's start, sent through node B, is refused.
    bo.c.emit('play:start', {});
    assert.equal((await bo.waitFor('play:error', (p) => p.event === 'play:start')).payload.code, 'NOT_HOST');
    ada.c.emit('play:start', {});
    const drawingA = await ada.waitFor('play:state', (p) => p.phase === 'drawing');
    const drawingB = await bo.waitFor('play:state', (p) => p.phase === 'drawing');
    assert.equal(drawingA.payload.prompt, drawingB.payload.prompt, 'both nodes show the same prompt');
    const prompt = String(drawingA.payload.prompt);

    // Bo draws on node B: the owner (node A) scores it and the guesses reach Bo on node B, with an ack.
    const ack = await bo.c.timeout(30_000).emitWithAck('play:draw', { round: 1, png: await doodle(prompt, 1) });
    assert.deepEqual(ack, { ok: true });
    const guesses = await bo.waitFor('play:guesses', (p) => p.seat === joinedB.seat);
    assert.equal((guesses.payload.guesses as unknown[]).length, 5);

    // Final drawings from both nodes, then the bell (once, from the owner), judging and the reveal.
    ada.c.emit('play:submit', { round: 1, png: await doodle(prompt, 2) });
    bo.c.emit('play:submit', { round: 1, png: await doodle('house' === prompt ? 'tree' : 'house', 3) });
    const revealA = await ada.waitFor('play:reveal', () => true, 60_000);
    const revealB = await bo.waitFor('play:reveal', () => true, 60_000);
    assert.deepEqual(revealA.payload, revealB.payload, 'both nodes show the same reveal');
    const entries = revealA.payload.entries as { seat: string; nickname: string; clipScore: number; points: number; rank: number | null }[];
    const summary = JSON.stringify(entries.map(({ nickname, clipScore, points, rank }) => ({ nickname, clipScore, points, rank })));
    assert.equal(entries.length, 2);
    assert.ok(entries.every((e) => e.rank !== null && e.clipScore >= 0 && Number.isFinite(e.points)), `both drawings were judged: ${summary}`);
    assert.ok(entries.some((e) => e.clipScore > 0), `CLIP scored the drawings: ${summary}`);
    assert.equal(revealA.payload.error, undefined);
    const podiumB = await bo.waitFor('play:podium', () => true, 30_000);
    assert.equal((podiumB.payload.leaderboard as unknown[]).length, 2);
    for (const p of [ada, bo]) assert.equal(p.events.filter((e) => e.event === 'play:bell').length, 1, 'the round clock fired once');

    // The room's state is in Redis, where every node can read it.
    const r = new Redis(redis.url);
    try {
      await new Promise((res) => setTimeout(res, 400)); // saves are coalesced (250 ms)
      const saved = JSON.parse((await r.get(`${REDIS_PREFIX}:play:room:${code}:state`))!) as { owner: string; state: { phase: string; seats: { id: string; nickname: string; score: number }[] }; sockets: Record<string, { node: string }> };
      assert.equal(saved.state.phase, 'podium');
      assert.deepEqual(saved.state.seats.map((s) => s.nickname).sort(), ['Ada', 'Bo']);
      assert.equal(saved.owner, await r.get(`${REDIS_PREFIX}:play:room:${code}:owner`));
      assert.equal(saved.sockets[joinedB.seat]!.node !== saved.owner, true, "Bo's socket is on the other node");
      assert.equal(await r.get(`${REDIS_PREFIX}:play:room:${code}:owner`) !== null, true);
    } finally {
      r.disconnect();
    }

    // One hall of fame for every node (in Redis): the round's scored drawings show on A and on B alike.
    const scored = (revealA.payload.entries as { nickname: string; clipScore: number }[]).filter((e) => e.clipScore > 0).map((e) => e.nickname).sort();
    assert.ok(scored.length > 0, 'the judge scored the drawings');
    const halls = [];
    for (const p of [ada, bo]) {
      p.c.emit('play:hall-of-fame:get', {});
      const hall = (await p.waitFor('play:hall-of-fame')).payload as { prompts: { prompt: string; entries: { nickname: string; score: number }[] }[] };
      halls.push(hall.prompts.filter((g) => g.prompt === prompt).flatMap((g) => g.entries.map((e) => e.nickname)).sort());
    }
    assert.deepEqual(halls[0], scored, 'node A shows the round\'s drawings');
    assert.deepEqual(halls[1], scored, 'node B shows the same');

    // Bo leaves from node B; Ada sees it.
    bo.c.emit('play:leave', {});
    await ada.waitFor('play:state', (p) => (p.seats as unknown[]).length === 1);
  });

  it('the Redis hall of fame keeps the best drawings per prompt, the same contract as SQLite\'s, with two nodes adding at once', async () => {
    const conn = new Redis(redis.url);
    try {
      const hall = new RedisHallOfFame(conn, 2);
      const other = new RedisHallOfFame(conn, 2);
      const png = Buffer.from('png');
      const [k1, k2] = await Promise.all([
        hall.add([
          { pack: 'hof-p', prompt: 'house', nickname: 'A', score: 40, png },
          { pack: 'hof-p', prompt: 'house', nickname: 'B', score: 90, png },
          { pack: 'hof-p', prompt: 'tree', nickname: 'D', score: 20, png },
        ]),
        other.add([
          { pack: 'hof-p', prompt: 'house', nickname: 'C', score: 10, png },
          { pack: 'hof-q', prompt: 'house', nickname: 'E', score: 99, png },
        ]),
      ]);
      assert.equal(k1.length + k2.length <= 5, true);
      const best = await hall.best('hof-p');
      assert.deepEqual(best.map((g) => [g.prompt, g.entries.map((e) => [e.nickname, e.score])]), [['house', [['B', 90], ['A', 40]]], ['tree', [['D', 20]]]]);
      assert.deepEqual(best[0]!.entries[0]!.png, png);
      assert.equal((await conn.zcard(`${REDIS_PREFIX}:hof:hof-p:p:house`)), 2, 'trimmed to 2');
      assert.equal((await conn.keys(`${REDIS_PREFIX}:hof:entry:*`)).length >= 4, true);
      const orphans = [];
      for (const key of await conn.keys(`${REDIS_PREFIX}:hof:entry:*`)) {
        const id = key.split(':').at(-1)!;
        const h = await conn.hgetall(key);
        if ((await conn.zscore(`${REDIS_PREFIX}:hof:${h.pack}:p:${encodeURIComponent(h.prompt!)}`, id)) === null) orphans.push(h.nickname);
      }
      assert.deepEqual(orphans, [], 'no drawing outlives its place');
      assert.deepEqual((await hall.best('hof-q')).map((g) => g.entries[0]!.nickname), ['E']);
    } finally {
      conn.disconnect();
    }
  });

  it('a web node killed mid-game: a node with players in its room takes the room over and the game goes on', { timeout: 120_000 }, async () => {
    // A third web node as its own process (`clip-studio serve --api-only`), so it can really die.
    const port = await freePort();
    const child = spawn(process.execPath, [join(REPO_ROOT, 'cli/bin.mjs'), 'serve', '--api-only'], {
      cwd: REPO_ROOT,
      env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redis.url, NODE_ENV: 'test', CLIP_STUDIO_BACKEND: 'cpu', CLIP_STUDIO_DATA: dir(), CLIP_STUDIO_ROOM_LEASE_MS: '1500' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the web node did not start in 60 s:\n${log}`)), 60_000);
        child.stdout!.on('data', () => { if (log.includes('CLIP Studio on http')) { clearTimeout(timer); resolve(); } });
        child.once('exit', (c) => { clearTimeout(timer); reject(new Error(`the web node exited with ${c}:\n${log}`)); });
      });
      const cy = await recordingClient(`http://127.0.0.1:${port}`);
      clients.push(cy.c);
      const bo = await client(1);
      const dan = await client(0);
      cy.c.emit('play:create', { nickname: 'Cy', settings: { rounds: 2, seconds: 30 } });
      const code = ((await cy.waitFor('play:joined')).payload as { code: string }).code;
      bo.c.emit('play:join', { code, nickname: 'Bo' });
      const bo0 = (await bo.waitFor('play:joined')).payload as { seat: string };
      dan.c.emit('play:join', { code, nickname: 'Dan' });
      await dan.waitFor('play:joined');
      cy.c.emit('play:start', {});
      await bo.waitFor('play:state', (p) => p.phase === 'drawing');
      await new Promise((res) => setTimeout(res, 400)); // the owner's coalesced save (250 ms)

      child.kill('SIGKILL'); // no goodbye: its lease lapses (1.5 s)
      await new Promise((res) => child.once('exit', res));
      const t0 = Date.now();
      // Node A or B claims the room (one wins) and tells everyone reachable where the game stands.
      const resumed = await bo.waitFor('play:state', (p) => (p.seats as { nickname: string; connected: boolean }[]).some((s) => s.nickname === 'Cy' && !s.connected), 15_000);
      assert.equal(resumed.payload.phase, 'drawing', 'the round goes on');
      await dan.waitFor('play:state', (p) => (p.seats as { nickname: string; connected: boolean }[]).some((s) => s.nickname === 'Cy' && !s.connected), 5_000);
      const owners = [nodes[0]!.game.room(code), nodes[1]!.game.room(code)].filter(Boolean);
      assert.equal(owners.length, 1, 'exactly one node took the room');
      console.log(`# room ${code} taken over ${((Date.now() - t0) / 1000).toFixed(1)} s after its owner was killed (lease 1.5 s)`);

      // Commands work again, from both nodes: a live drawing gets CLIP's guesses, and after the
      // dead host's grace the host role passes to a living player, who can end the round.
      const ack = await bo.c.timeout(30_000).emitWithAck('play:draw', { round: 1, png: await doodle('house', 4) });
      assert.deepEqual(ack, { ok: true });
      const guesses = await bo.waitFor('play:guesses', (p) => p.seat === bo0.seat, 30_000);
      assert.ok((guesses.payload.guesses as unknown[]).length > 0);
      const handed = await bo.waitFor('play:state', (p) => (p.seats as { nickname: string; host: boolean }[]).some((s) => s.host && s.nickname !== 'Cy'), 20_000);
      const host = (handed.payload.seats as { nickname: string; host: boolean }[]).find((s) => s.host)!.nickname;
      assert.ok(['Bo', 'Dan'].includes(host));
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
