import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io as connect, type Socket } from 'socket.io-client';
import { loadConfig } from '../../server/config';
import { createStudioServer, type StudioServer } from '../../server/create';
import { PROTOCOL_VERSION, type ClientToServer, type ProtocolError, type ServerToClient } from '../../server/protocol';

type Client = Socket<ServerToClient, ClientToServer>;

function once<T>(socket: Client, event: string): Promise<T> {
  return new Promise((resolve) => (socket as unknown as Socket).once(event, resolve));
}

describe('studio socket protocol', () => {
  let studio: StudioServer;
  let url: string;
  let dataDir: string;
  const clients: Client[] = [];
  const client = async (): Promise<Client> => {
    const c: Client = connect(url, { transports: ['websocket'], forceNew: true });
    clients.push(c);
    await once(c, 'connect');
    return c;
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-socket-'));
    studio = await createStudioServer({ config: loadConfig({ NODE_ENV: 'test', CLIP_STUDIO_DATA: dataDir, CLIP_STUDIO_BACKEND: 'cpu' }), next: false });
    const addr = await studio.listen(0, '127.0.0.1');
    url = `http://127.0.0.1:${addr.port}`;
  });
  after(async () => {
    for (const c of clients) c.close();
    await studio.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers hello with its protocol version', async () => {
    const c = await client();
    const reply = once<{ protocolVersion: number; version: string }>(c, 'hello');
    c.emit('hello', { protocolVersion: PROTOCOL_VERSION });
    assert.equal((await reply).protocolVersion, PROTOCOL_VERSION);
  });

  it('an invalid payload gets an error naming the field', async () => {
    const c = await client();
    const err = once<ProtocolError>(c, 'error');
    c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 0 } });
    const e = await err;
    assert.equal(e.event, 'job:start');
    assert.equal(e.field, 'params.steps');
    const err2 = once<ProtocolError>(c, 'error');
    c.emit('job:start', { kind: 'crash-for-test', params: {} } as never);
    assert.equal((await err2).field, 'kind', 'test-only job kinds cannot be started by clients');
  });

  it('runs a job: queued, started, progress in order, done', async () => {
    const c = await client();
    const seen: string[] = [];
    const steps: number[] = [];
    const positions: number[] = [];
    for (const ev of ['job:queued', 'job:started', 'job:progress', 'job:done'] as const) {
      (c as unknown as Socket).on(ev, (p: { data?: { step: number }; position?: number }) => {
        if (ev === 'job:queued') positions.push(p.position!);
        else seen.push(ev);
        if (ev === 'job:progress') steps.push(p.data!.step);
      });
    }
    const done = once<{ result: { steps: number; backend: string } }>(c, 'job:done');
    c.emit('job:start', { kind: 'tensor-selftest', params: { steps: 3 }, requestId: 'r1' });
    const { result } = await done;
    assert.equal(result.steps, 3);
    assert.equal(result.backend, 'cpu');
    // Queued first (again each time its place changes, e.g. behind the startup health check), then the run.
    assert.ok(positions.length >= 1 && positions.at(-1) === 1, `positions ${positions}`);
    assert.deepEqual(positions, [...positions].sort((a, b) => b - a));
    assert.deepEqual(seen, ['job:started', 'job:progress', 'job:progress', 'job:progress', 'job:done']);
    assert.deepEqual(steps, [1, 2, 3]);
  });

  it('a client cancels its own job, and only its own', async () => {
    const owner = await client();
    const other = await client();
    const queued = once<{ jobId: string }>(owner, 'job:queued');
    owner.emit('job:start', { kind: 'tensor-selftest', params: { steps: 200, delayMs: 50 } });
    const { jobId } = await queued;
    await once(owner, 'job:progress');
    const refused = once<ProtocolError>(other, 'error');
    other.emit('job:cancel', { jobId });
    assert.equal((await refused).field, 'jobId');
    const cancelled = once<{ jobId: string }>(owner, 'job:cancelled');
    owner.emit('job:cancel', { jobId });
    assert.equal((await cancelled).jobId, jobId);
  });
});
