/**
 * Issue #8, input limits on the real server: job starts and uploads rate-limited per connection
 * and per address (and counted in /api/metrics), events nobody handles ignored and counted,
 * reserved event names refused, a message over the socket limit closes only that connection,
 * the bounded queue answers busy, lengths are capped with the field named.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io as connect, type Socket } from 'socket.io-client';
import { loadConfig } from '../../server/config';
import { createStudioServer, type StudioServer } from '../../server/create';
import { DEFAULT_RATE_RULES, RateLimits, SOCKET_MAX_BYTES } from '../../server/limits';
import { PROTOCOL_VERSION } from '../../server/protocol';
import { solidPng } from '../helpers/hostile-images';

type Ev = { event: string; payload: Record<string, unknown> };

async function recordingClient(url: string) {
  const c: Socket = connect(url, { transports: ['websocket'], forceNew: true, reconnection: false });
  const events: Ev[] = [];
  const waiters: (() => void)[] = [];
  const push = (event: string, payload: Record<string, unknown>) => {
    events.push({ event, payload });
    for (const w of waiters.splice(0)) w();
  };
  c.onAny(push);
  c.on('disconnect', (reason) => push('disconnect', { reason }));
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('connect_error', reject);
  });
  const waitFor = (event: string, pred: (p: Record<string, unknown>) => boolean = () => true, ms = 60_000) => new Promise<Ev>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} in ${ms} ms; got ${JSON.stringify(events).slice(0, 2000)}`)), ms);
    const check = () => {
      const found = events.find((e) => e.event === event && pred(e.payload));
      if (found) { clearTimeout(timer); resolve(found); } else waiters.push(check);
    };
    check();
  });
  /** Send a raw socket.io packet (what a hand-written client could put on the wire). */
  const rawSend = (packet: string) => (c.io.engine as unknown as { send(p: string): void }).send(packet);
  return { c, events, waitFor, rawSend };
}

describe('input limits on the studio server', () => {
  let studio: StudioServer;
  let url: string;
  let dataDir: string;
  const clients: Socket[] = [];
  const client = async () => {
    const r = await recordingClient(url);
    clients.push(r.c);
    return r;
  };
  const metrics = async () => (await fetch(`${url}/api/metrics`)).text();

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-hardening-'));
    studio = await createStudioServer({
      config: loadConfig({ NODE_ENV: 'test', CLIP_STUDIO_DATA: dataDir, CLIP_STUDIO_BACKEND: 'cpu', CLIP_STUDIO_WORKERS: '1', CLIP_STUDIO_QUEUE: '1' }),
      next: false,
      rateRules: {
        ...DEFAULT_RATE_RULES,
        'job:start': { perConnection: { points: 3, seconds: 60 }, perAddress: { points: 5, seconds: 60 } },
        upload: { perConnection: { points: 100, seconds: 60 }, perAddress: { points: 2, seconds: 60 } },
      },
    });
    url = `http://127.0.0.1:${(await studio.listen(0, '127.0.0.1')).port}`;
    await fetch(`${url}/api/health`); // the startup probe has had its turn on the worker
  });
  after(async () => {
    for (const c of clients) c.close();
    await studio?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('the bounded queue answers busy, naming how many jobs are ahead, instead of growing', async () => {
    const { c, waitFor } = await client();
    c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 200, delayMs: 50 }, requestId: 'runs' });
    const runs = (await waitFor('job:queued', (p) => p.requestId === 'runs')).payload.jobId as string;
    await waitFor('job:started', (p) => p.jobId === runs);
    c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 1 }, requestId: 'waits' });
    await waitFor('job:queued', (p) => p.requestId === 'waits');
    c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 1 }, requestId: 'refused' });
    const busy = await waitFor('job:failed', (p) => p.requestId === 'refused');
    assert.deepEqual(busy.payload.error, { code: 'BUSY', message: 'The studio is busy: 2 jobs ahead. Try again shortly.' });
    assert.equal(studio.queue.stats().queued, 1, 'the queue did not grow');
    c.emit('job:cancel', { jobId: runs });
    await waitFor('job:cancelled', (p) => p.jobId === runs);
    // That connection has now used its 3 job starts: the 4th is refused by the connection's budget.
    c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 1 }, requestId: 'fourth' });
    const limited = await waitFor('job:failed', (p) => p.requestId === 'fourth');
    const error = limited.payload.error as { code: string; message: string };
    assert.equal(error.code, 'RATE_LIMITED');
    assert.match(error.message, /^Too many jobs started from this connection \(at most 3 per 60 s\); try again in \d+ s\.$/);
  });

  it('job starts are also limited per address, across connections', async () => {
    const a = await client();
    const b = await client();
    // The address has 5; the first test's connection spent 3 (the refused 4th was given back).
    a.c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 1 }, requestId: 'a1' });
    await a.waitFor('job:done');
    b.c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 1 }, requestId: 'b1' });
    await b.waitFor('job:done');
    b.c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 1 }, requestId: 'b2' });
    const limited = await b.waitFor('job:failed', (p) => p.requestId === 'b2');
    assert.match((limited.payload.error as { message: string }).message, /^Too many jobs started from this address \(at most 5 per 60 s\)/);
    assert.match(await metrics(), /clip_studio_rate_limited_total\{action="job:start"\} 2/);
  });

  it('uploads are limited per address with 429 and Retry-After', async () => {
    const post = () => fetch(`${url}/api/uploads?field=initImage&name=a.png`, { method: 'POST', body: new Uint8Array(solidPng(8, 8)) });
    assert.equal((await post()).status, 201);
    assert.equal((await post()).status, 201);
    const third = await post();
    assert.equal(third.status, 429);
    assert.ok(Number(third.headers.get('retry-after')) >= 1);
    const body = await third.json() as { field: string; code: string; error: string };
    assert.equal(body.code, 'RATE_LIMITED');
    assert.equal(body.field, 'initImage');
    assert.match(body.error, /Too many uploads from this address/);
  });

  it('events nobody handles are ignored and counted, and the connection keeps working', async () => {
    const unknown = async () => Number(/clip_studio_socket_unknown_events_total (\d+)/.exec(await metrics())![1]);
    const before = await unknown();
    const { c, waitFor, rawSend } = await client();
    c.emit('no:such:event', { a: 1 });
    c.emit('job:Start', {}); // not job:start
    rawSend('2["__proto__",{}]'); // socket.io packets as a hand-written client could send them
    rawSend('2["error",{"event":"x"}]'); // a name the server uses for itself
    rawSend('2[1,2]'); // not a name at all
    c.emit('hello', { protocolVersion: PROTOCOL_VERSION });
    await waitFor('hello');
    assert.ok(c.connected, 'still connected');
    assert.equal(await unknown() - before, 5);
  });

  it('a reserved event name (disconnect, connect) closes that connection; the server goes on', async () => {
    for (const packet of ['2["disconnect","forged"]', '2["connect"]', '2["newListener","job:start"]']) {
      const bad = await client();
      bad.rawSend(packet);
      await bad.waitFor('disconnect');
    }
    const good = await client();
    good.c.emit('hello', { protocolVersion: PROTOCOL_VERSION });
    await good.waitFor('hello');
  });

  it('a message over the socket limit closes that connection only; one just under it gets an error naming the field', async () => {
    const big = await client();
    const bystander = await client();
    big.c.emit('hello', { protocolVersion: PROTOCOL_VERSION, client: 'x'.repeat(SOCKET_MAX_BYTES - 10_000) });
    const refused = await big.waitFor('error');
    assert.equal(refused.payload.field, 'client', 'under the limit: validated, and the field named');
    big.c.emit('hello', { protocolVersion: PROTOCOL_VERSION, client: 'x'.repeat(SOCKET_MAX_BYTES + 1) });
    await big.waitFor('disconnect');
    assert.match(await metrics(), /clip_studio_socket_oversized_total 1\n/);
    bystander.c.emit('hello', { protocolVersion: PROTOCOL_VERSION });
    await bystander.waitFor('hello');
  });

  it('a flood of events from one connection is cut at its budget, with one notice, and the connection recovers', async () => {
    const { c, events, waitFor } = await client();
    for (let i = 0; i < 1000; i++) c.emit('job:cancel', { jobId: '' });
    await waitFor('error', (p) => p.field === '(rate)');
    await new Promise((r) => setTimeout(r, 1100)); // the budget is per second
    c.emit('hello', { protocolVersion: PROTOCOL_VERSION });
    await waitFor('hello');
    const answered = events.filter((e) => e.event === 'error' && e.payload.field === 'jobId').length;
    const notices = events.filter((e) => e.event === 'error' && e.payload.field === '(rate)');
    assert.ok(answered >= 400 && answered < 1000, `${answered} of 1000 handled (budget ${DEFAULT_RATE_RULES.event.perConnection.points}/s)`);
    assert.ok(notices.length >= 1 && notices.length <= 2, `${notices.length} notices`);
    assert.match(String(notices[0]!.payload.message), /Too many messages from this connection/);
    assert.match(await metrics(), /clip_studio_rate_limited_total\{action="event"\} [1-9]/);
  });

  it('lengths are capped with the field named', async () => {
    const { c, waitFor } = await client();
    c.emit('job:start', { kind: 'generate', params: { prompt: 'a'.repeat(5000) } });
    const e = await waitFor('error');
    assert.equal(e.payload.field, 'params.prompt');
    assert.match(String(e.payload.message), /at most \d+ characters/);
    c.emit('job:start', { kind: 'tensor-selftest', requestId: 'r'.repeat(101) });
    assert.equal((await waitFor('error', (p) => p.field === 'requestId')).payload.event, 'job:start');
  });
});

describe('RateLimits', () => {
  it('refuses by connection first, then by address, gives back what an address refusal charged, and says when to retry', async () => {
    const limits = new RateLimits({ ...DEFAULT_RATE_RULES, guess: { perConnection: { points: 2, seconds: 10 }, perAddress: { points: 3, seconds: 10 } } });
    const a = { connection: 'a', address: '203.0.113.1' };
    const b = { connection: 'b', address: '203.0.113.1' };
    assert.equal((await limits.take('guess', a)).ok, true);
    assert.equal((await limits.take('guess', a)).ok, true);
    const third = await limits.take('guess', a);
    assert.ok(!third.ok && third.scope === 'connection' && third.retryAfterMs > 0 && third.retryAfterMs <= 10_000);
    assert.equal((await limits.take('guess', b)).ok, true);
    const fifth = await limits.take('guess', b);
    assert.ok(!fifth.ok && fifth.scope === 'address');
    assert.equal((await limits.take('guess', { connection: 'c', address: '198.51.100.7' })).ok, true, 'another address is not affected');
    assert.throws(() => new RateLimits({ ...DEFAULT_RATE_RULES, stroke: { perConnection: { points: 0, seconds: 1 }, perAddress: { points: 1, seconds: 1 } } }), /stroke\/connection/);
  });
});
