/**
 * Caption over socket.io on a real studio server (no Next) with the bundled demo CLIP and a
 * local OpenAI-compatible server as the configured LLM: upload, start, rounds stream in, done;
 * the API key reaches the LLM and never the browser; bad payloads and unknown uploads name
 * the field; a full queue answers busy; a job can be cancelled.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io as connect, type Socket } from 'socket.io-client';
import { encodePng, rasterizeSvg } from '../../engine/index';
import { loadConfig } from '../../server/config';
import { createStudioServer, type StudioServer } from '../../server/create';
import type { CaptionFailed, CaptionInfo, CaptionResultView, CaptionRoundView, ClientToServer, ProtocolError, ServerToClient } from '../../server/protocol';
import { chatAnswer, startLlmServer, type LlmServer } from '../helpers/llm-server';

type Client = Socket<ServerToClient, ClientToServer>;
const KEY = 'sk-server-side-only-7331';
const RIGHT = 'a red circle on a blue background';

function once<T>(socket: Client, event: string): Promise<T> {
  return new Promise((resolve) => (socket as unknown as Socket).once(event, resolve));
}

describe('caption over socket.io', () => {
  let studio: StudioServer;
  let llm: LlmServer;
  let url: string;
  let dataDir: string;
  let upload: string;
  const clients: Client[] = [];
  /** Everything any client received, to check the key never reaches a browser. */
  const received: string[] = [];
  const client = async (): Promise<Client> => {
    const c: Client = connect(url, { transports: ['websocket'], forceNew: true });
    (c as unknown as Socket).onAny((event: string, payload: unknown) => received.push(`${event} ${JSON.stringify(payload)}`));
    clients.push(c);
    await once(c, 'connect');
    return c;
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-caption-socket-'));
    llm = await startLlmServer(() => chatAnswer(JSON.stringify(['a blue circle on a red background', RIGHT, 'a drawing of a house', 'a green circle on a blue background'])));
    const config = loadConfig({ NODE_ENV: 'test', CLIP_STUDIO_DATA: dataDir, CLIP_STUDIO_BACKEND: 'cpu', OPENAI_BASE_URL: llm.baseUrl, OPENAI_API_KEY: KEY, CAPTION_LLM_MODEL: 'test-llm', CAPTION_LLM_TIMEOUT_MS: '5000' });
    studio = await createStudioServer({ config, next: false });
    url = `http://127.0.0.1:${(await studio.listen(0, '127.0.0.1')).port}`;
    const png = await encodePng((await rasterizeSvg('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 128 128"><rect width="128" height="128" fill="#1e50dc"/><circle cx="64" cy="64" r="36" fill="#e01e1e"/></svg>', 128)).data, 128, 128);
    const res = await fetch(`${url}/api/uploads?field=image&name=circle.png`, { method: 'POST', body: new Uint8Array(png) });
    assert.equal(res.status, 201);
    upload = ((await res.json()) as { id: string }).id;
  });
  after(async () => {
    for (const c of clients) c.close();
    await studio?.close();
    await llm?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('info names the LLM model and host, not the key', async () => {
    const c = await client();
    const info = once<CaptionInfo>(c, 'caption:info');
    c.emit('caption:info');
    const i = await info;
    assert.deepEqual(i.llm, { model: 'test-llm', host: new URL(llm.baseUrl).host });
    assert.equal(i.model?.id, 'demo-clip');
    assert.equal(i.limits.rounds!.max, 8);
  });

  it('streams terms and rounds, then the ranked captions; the key goes to the LLM only', async () => {
    const c = await client();
    const order: string[] = [];
    const rounds: CaptionRoundView[] = [];
    for (const e of ['caption:queued', 'caption:started', 'caption:terms', 'caption:round', 'caption:notice']) (c as unknown as Socket).on(e, (p: { round?: CaptionRoundView }) => { order.push(e); if (p.round) rounds.push(p.round); });
    const done = once<{ jobId: string; result: CaptionResultView }>(c, 'caption:done');
    llm.requests.length = 0;
    c.emit('caption:start', { upload, rounds: 2, candidates: 4, requestId: 'r1' });
    const { result } = await done;
    assert.deepEqual(order.slice(0, 4), ['caption:queued', 'caption:started', 'caption:terms', 'caption:round']);
    assert.ok(rounds.length >= 1 && rounds.length === result.rounds.length);
    assert.equal(result.source, 'llm');
    assert.equal(result.captions[0]!.text, RIGHT);
    assert.ok(result.captions[0]!.terms.some((t) => t.text === 'red'));
    assert.equal(llm.requests[0]!.headers.authorization, `Bearer ${KEY}`);
    assert.ok(received.length > 5);
    assert.ok(received.every((m) => !m.includes(KEY)), 'the key never reaches a client');
  });

  it('useLlm false: the offline generator, said in a notice', async () => {
    const c = await client();
    const done = once<{ result: CaptionResultView }>(c, 'caption:done');
    c.emit('caption:start', { upload, rounds: 0, useLlm: false });
    const { result } = await done;
    assert.equal(result.source, 'offline');
    assert.match(result.notices.join(' '), /not asked/);
  });

  it('a bad option or an unknown upload is named', async () => {
    const c = await client();
    const err = once<ProtocolError>(c, 'error');
    c.emit('caption:start', { upload, rounds: 99 });
    const e = await err;
    assert.equal(e.event, 'caption:start');
    assert.equal(e.field, 'rounds');
    assert.match(e.message, /between 0 and 8, got 99/);
    const err2 = once<ProtocolError>(c, 'error');
    c.emit('caption:start', { upload: 'not-an-id' });
    assert.equal((await err2).field, 'upload');
    const failed = once<CaptionFailed>(c, 'caption:failed');
    c.emit('caption:start', { upload: '00000000-0000-4000-8000-000000000000', requestId: 'gone' });
    const f = await failed;
    assert.equal(f.error.field, 'upload');
    assert.equal(f.requestId, 'gone');
    assert.match(f.error.message, /upload it again/);
  });

  it('a full queue answers busy; cancel stops a running job and empties the queue', async () => {
    llm.handle(() => ({ ...chatAnswer(JSON.stringify([RIGHT])), delayMs: 3000 }));
    const c = await client();
    const ids: string[] = [];
    const busy = new Promise<CaptionFailed>((resolve) => c.on('caption:failed', (p) => { if (p.error.code === 'BUSY') resolve(p); }));
    c.on('caption:queued', (p) => ids.push(p.jobId));
    const cancelled: string[] = [];
    c.on('caption:cancelled', (p) => cancelled.push(p.jobId));
    for (let i = 0; i < 6; i++) c.emit('caption:start', { upload, rounds: 0 });
    const b = await busy;
    assert.match(b.error.message, /busy: 5 jobs ahead/);
    while (ids.length < 5) await new Promise((r) => setTimeout(r, 20));
    const t0 = Date.now();
    for (const id of ids) c.emit('caption:cancel', { jobId: id });
    while (cancelled.length < 5) await new Promise((r) => setTimeout(r, 20));
    assert.ok(Date.now() - t0 < 2500, 'the running job stopped before its LLM answered');
    assert.deepEqual([...cancelled].sort(), [...ids].sort());
    const err = once<ProtocolError>(c, 'error');
    c.emit('caption:cancel', { jobId: ids[0]! });
    assert.equal((await err).field, 'jobId');
  });
});
