/**
 * Generation through the real server (API + socket.io + engine worker), on the reference fixture
 * models installed under test ids: events in order with previews, the result saved to the
 * gallery and served, bad input refused with the field named, cancel, busy.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io as connect, type Socket } from 'socket.io-client';
import { loadConfig } from '../../server/config';
import { createStudioServer, type StudioServer } from '../../server/create';
import type { ClientToServer, GalleryItem, GenerateInfo, GenerateParamsInput, JobError, ProtocolError, ServerToClient } from '../../server/protocol';
import { fixtureManifests } from '../helpers/generate-models';

type Client = Socket<ServerToClient, ClientToServer>;
type Ev = { event: string; payload: Record<string, unknown> };

const tiny = { size: 16, cutn: 1, clipModel: 'fixture-clip', vqganModel: 'fixture-vqgan' } as const;

describe('generate through the studio server', () => {
  let studio: StudioServer;
  let url: string;
  let dataDir: string;
  let manifests: string;
  const clients: Client[] = [];

  const client = async (): Promise<{ c: Client; events: Ev[]; waitFor: (event: string, n?: number) => Promise<Ev> }> => {
    const c: Client = connect(url, { transports: ['websocket'], forceNew: true });
    clients.push(c);
    const events: Ev[] = [];
    const waiters: (() => void)[] = [];
    c.onAny((event: string, payload: Record<string, unknown>) => {
      events.push({ event, payload });
      for (const w of waiters.splice(0)) w();
    });
    await new Promise((r) => c.once('connect', () => r(undefined)));
    const waitFor = (event: string, n = 1) => new Promise<Ev>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${event} in 120 s; got ${events.map((e) => e.event).join(', ')}`)), 120_000);
      const check = () => {
        const found = events.filter((e) => e.event === event);
        if (found.length >= n) { clearTimeout(timer); resolve(found[n - 1]!); } else waiters.push(check);
      };
      check();
    });
    return { c, events, waitFor };
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-generate-'));
    manifests = fixtureManifests();
    studio = await createStudioServer({
      config: loadConfig({ NODE_ENV: 'test', CLIP_STUDIO_DATA: dataDir, CLIP_STUDIO_QUEUE: '1' }), next: false, manifestsDir: manifests,
    });
    const addr = await studio.listen(0, '127.0.0.1');
    url = `http://127.0.0.1:${addr.port}`;
  });
  after(async () => {
    for (const c of clients) c.close();
    await studio?.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(manifests, { recursive: true, force: true });
  });

  it('says which models and limits the form has', async () => {
    const info = (await (await fetch(`${url}/api/generate/info`)).json()) as GenerateInfo;
    assert.equal(info.models.clip?.id, 'fixture-clip');
    assert.equal(info.models.vqgan?.factor, 4);
    assert.equal(info.defaults.size, 64);
    assert.deepEqual(info.limits.steps, { min: 1, max: 2000, integer: true });
  });

  it('streams queued, started, progress with previews, then done; the image is saved, served and listed', async () => {
    const { c, events, waitFor } = await client();
    const params: GenerateParamsInput = { ...tiny, prompt: 'a red circle', steps: 4, previewEvery: 1, seed: 5 };
    c.emit('job:start', { kind: 'generate', params, requestId: 'r1' });
    const done = await waitFor('job:done');
    const order = events.map((e) => e.event).filter((e) => e.startsWith('job:'));
    assert.deepEqual(order, ['job:queued', 'job:started', 'job:progress', 'job:progress', 'job:progress', 'job:progress', 'job:done']);
    assert.equal(events[0]!.payload.requestId, 'r1');
    const progress = events.filter((e) => e.event === 'job:progress').map((e) => e.payload.data as { step: number; total: number; loss: number; preview?: Buffer });
    assert.deepEqual(progress.map((p) => p.step), [1, 2, 3, 4]);
    assert.ok(progress.every((p) => p.total === 4 && Number.isFinite(p.loss)));
    assert.equal(progress.filter((p) => p.preview).length, 3, 'a preview at steps 1–3; step 4 is the final image');
    assert.deepEqual([...Buffer.from(progress[0]!.preview!).subarray(1, 4)], [0x50, 0x4e, 0x47]);

    const item = done.payload.result as GalleryItem;
    assert.equal(item.prompt, 'a red circle');
    assert.equal(item.recipe.seed, 5);
    assert.equal((item.recipe.models as { clip: { id: string } }).clip.id, 'fixture-clip');
    assert.match(JSON.stringify(item.recipe.models), /[0-9a-f]{64}/, 'model checksums in the recipe');
    const img = await fetch(`${url}${item.imageUrl}`);
    assert.equal(img.headers.get('content-type'), 'image/png');
    assert.ok((await img.arrayBuffer()).byteLength > 50);
    assert.equal((await fetch(`${url}${item.animationUrl}`)).status, 200);
    const list = (await (await fetch(`${url}/api/gallery`)).json()) as { items: GalleryItem[] };
    assert.equal(list.items[0]!.id, item.id);
    assert.equal((await fetch(`${url}/api/images/..%2F..%2Fstudio.db.png`)).status, 404);
    assert.equal((await fetch(`${url}/api/images/../studio.db`)).status, 404);
  });

  it('refuses bad input with a message naming the field, and keeps serving', async () => {
    const { c } = await client();
    const expectError = async (params: Record<string, unknown>, field: string, pattern: RegExp) => {
      const got = new Promise<{ field?: string; message: string }>((resolve) => {
        c.once('error', (e: ProtocolError) => resolve(e));
        c.once('job:failed', (e: { error: JobError }) => resolve(e.error));
      });
      c.emit('job:start', { kind: 'generate', params } as never);
      const e = await got;
      assert.equal(e.field?.replace(/^params\./, ''), field, e.message);
      assert.match(e.message, pattern);
    };
    await expectError({ ...tiny, prompt: 'x', steps: 0 }, 'steps', /`steps` option must be an integer between 1 and 2000, got 0/);
    await expectError({ ...tiny, prompt: 'x', steps: 1e6 }, 'steps', /got 1000000/);
    await expectError({ ...tiny, prompt: 'x', size: 30 }, 'size', /multiple of 4/);
    await expectError({ ...tiny, prompt: '' }, 'prompt', /empty/);
    await expectError({ ...tiny, prompt: 'a'.repeat(2000) }, 'prompt', /at most 1000 characters/);
    await expectError({ ...tiny, prompt: 'a cat:abc' }, 'prompt', /weight of "a cat:abc"/);
    await expectError({ ...tiny, prompt: 'x', initImage: '00000000-0000-0000-0000-000000000000' }, 'initImage', /upload it again/);
    await expectError({ ...tiny, prompt: 'x', clipModel: 'fixture-vqgan' }, 'clipModel', /is a vqgan model/);
    await expectError({ ...tiny, prompt: 'x', vqganModel: 'no-such-model' }, 'vqganModel', /Unknown model/);

    const corrupt = await fetch(`${url}/api/uploads?field=initImage`, { method: 'POST', body: Buffer.from('\x89PNG\r\n\x1a\nnot really') });
    assert.equal(corrupt.status, 400);
    const body = (await corrupt.json()) as { field: string; error: string };
    assert.equal(body.field, 'initImage');
    assert.match(body.error, /initImage/);
    assert.equal((await fetch(`${url}/api/health`)).status, 200, 'the server still answers');
  });

  it('cancel stops a running job; a full queue answers busy with how many are ahead', async () => {
    const { c, waitFor } = await client();
    c.emit('job:start', { kind: 'generate', params: { ...tiny, prompt: 'a long one', steps: 500, previewEvery: 0 } });
    const started = await waitFor('job:started');
    const jobId = started.payload.jobId as string;
    c.emit('job:start', { kind: 'generate', params: { ...tiny, prompt: 'waits', steps: 1 } }); // fills the queue (limit 1)
    await waitFor('job:queued', 2);
    c.emit('job:start', { kind: 'generate', params: { ...tiny, prompt: 'refused', steps: 1 } });
    const busy = await waitFor('job:failed');
    assert.match((busy.payload.error as JobError).message, /busy: 2 jobs ahead/);
    await waitFor('job:progress');
    c.emit('job:cancel', { jobId });
    const cancelled = await waitFor('job:cancelled');
    assert.equal(cancelled.payload.jobId, jobId);
    await waitFor('job:done'); // the queued one still runs
  });
});
