/**
 * The caption pipeline end to end on the bundled demo CLIP (onnxruntime) with a local
 * OpenAI-compatible server over real HTTP: the request carries the key and the interrogated
 * terms; 429 and 500 are retried; a timeout and a malformed answer fall back to the offline
 * generator with a notice; CLIP's ranking puts the right caption first; refinement rounds
 * dedupe, stop when the best stops improving, and respect the token budget; cancel works.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CancelledError, captionImage, CaptionLlm, ClipScorer, encodePng, InputError, rasterizeSvg, type CaptionEvent,
} from '../../engine/index';
import { chatAnswer, errorAnswer, requestText, startLlmServer, type LlmServer } from '../helpers/llm-server';

const KEY = 'sk-caption-test-key';
const RIGHT = 'a red circle on a blue background';
/** Wrong colours, the right words otherwise: only seeing the picture tells them apart. */
const DISTRACTORS = ['a blue circle on a red background', 'a green circle on a blue background', 'a red circle on a yellow background',
  'a yellow circle on a purple background', 'a white circle on a black background', 'a drawing of a house', 'a purple circle on a green background'];

let dir: string;
let scorer: ClipScorer;
let server: LlmServer;
let png: Buffer;

const llm = (extra: Partial<ConstructorParameters<typeof CaptionLlm>[0]> = {}) =>
  new CaptionLlm({ baseUrl: server.baseUrl, apiKey: KEY, model: 'test-llm', timeoutMs: 3000, backoffMs: 5, ...extra });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'clip-studio-caption-'));
  scorer = await ClipScorer.open({ model: 'demo-clip', dataDir: dir });
  png = await encodePng((await rasterizeSvg('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 128 128"><rect width="128" height="128" fill="#1e50dc"/><circle cx="64" cy="64" r="36" fill="#e01e1e"/></svg>', 128)).data, 128, 128);
  server = await startLlmServer(() => chatAnswer('[]'));
});
after(async () => {
  await server?.close();
  await scorer?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('captioning with the demo CLIP', () => {
  it('without an LLM: the offline generator composes from the top terms, and says so', async () => {
    const events: CaptionEvent[] = [];
    const r = await captionImage(scorer, png, { rounds: 1, candidates: 8 }, { onEvent: (e) => events.push(e) });
    assert.equal(r.source, 'offline');
    assert.match(r.notices[0]!, /No LLM is configured/);
    assert.equal(r.model.id, 'demo-clip');
    const color = r.terms.filter((t) => t.category === 'color');
    assert.equal(color[0]!.text, 'red', `the colour read first: ${JSON.stringify(color)}`);
    assert.equal(r.terms.filter((t) => t.category === 'background').length, 3, 'three terms kept per category');
    assert.match(r.captions[0]!.text, /\bred\b/);
    for (let i = 1; i < r.captions.length; i++) assert.ok(r.captions[i - 1]!.score >= r.captions[i]!.score, 'best first');
    assert.ok(Math.abs(r.captions.reduce((a, c) => a + c.score, 0) - 1) < 1e-4, 'softmax over every candidate');
    assert.ok(r.captions[0]!.terms.some((t) => t.text === 'red'), 'the terms that support the caption');
    assert.deepEqual(events.map((e) => e.type).slice(0, 3), ['terms', 'notice', 'round']);
    assert.equal(r.rounds[0]!.source, 'offline');
    assert.ok(r.rounds.length >= 1 && r.rounds.length <= 2);
    if (r.rounds[1]) assert.ok(r.rounds[1].added.every((a) => !r.rounds[0]!.added.includes(a)), 'variations are new');
  });

  it('the LLM request carries the key and the terms; CLIP ranks the right caption first among its candidates', async () => {
    server.requests.length = 0;
    server.handle(() => chatAnswer(`Here are the captions:\n${[...DISTRACTORS.slice(0, 3), RIGHT, ...DISTRACTORS.slice(3)].map((c, i) => `${i + 1}. ${c}`).join('\n')}`));
    const r = await captionImage(scorer, png, { rounds: 0, candidates: 8 }, { llm: llm() });
    assert.equal(r.source, 'llm');
    assert.deepEqual(r.notices, []);
    assert.equal(r.captions.length, 8);
    assert.equal(r.captions[0]!.text, RIGHT, r.captions.map((c) => `${c.text} ${c.score.toFixed(3)}`).join('\n'));
    assert.ok(r.captions.every((c) => c.source === 'llm' && c.round === 0));
    const req = server.requests[0]!;
    assert.equal(req.headers.authorization, `Bearer ${KEY}`);
    assert.equal(req.body.model, 'test-llm');
    const prompt = requestText(req);
    const topColor = r.terms.find((t) => t.category === 'color')!;
    assert.ok(prompt.includes(`${topColor.text} ${Math.round(topColor.score * 100)}%`), `the terms with their scores are in the prompt:\n${prompt}`);
    assert.match(prompt, /blue background \d+%/);
    assert.match(prompt, /8 different candidate captions/);
    assert.ok(!JSON.stringify(r).includes(KEY), 'the key is not in the result');
  });

  it('429 and 500 are retried (with a notice each); the answer is used', async () => {
    server.requests.length = 0;
    server.handle((_req, i) => (i === 0 ? errorAnswer(429) : i === 1 ? errorAnswer(500) : chatAnswer(JSON.stringify([RIGHT, ...DISTRACTORS]))));
    const r = await captionImage(scorer, png, { rounds: 0 }, { llm: llm() });
    assert.equal(server.requests.length, 3);
    assert.equal(r.source, 'llm');
    assert.equal(r.notices.length, 2);
    assert.match(r.notices[0]!, /HTTP 429.*retry 1/);
    assert.match(r.notices[1]!, /HTTP 500.*retry 2/);
    assert.equal(r.captions[0]!.text, RIGHT);
  });

  it('a timeout falls back to the offline generator with a notice', async () => {
    server.handle(() => ({ ...chatAnswer(JSON.stringify([RIGHT])), delayMs: 2000 }));
    const r = await captionImage(scorer, png, { rounds: 0, candidates: 6 }, { llm: llm({ timeoutMs: 250 }) });
    assert.equal(r.source, 'offline');
    assert.match(r.notices[0]!, /did not answer within 0\.3 s.*offline generator/);
    assert.ok(r.captions.length >= 2 && r.captions.every((c) => c.source === 'offline'));
  });

  it('a malformed answer falls back to the offline generator with a notice', async () => {
    server.handle(() => chatAnswer('{"error": "I cannot see images"}'));
    const r = await captionImage(scorer, png, { rounds: 0 }, { llm: llm() });
    assert.equal(r.source, 'offline');
    assert.match(r.notices[0]!, /JSON that holds no captions.*offline generator/);
    server.handle(() => ({ status: 200, text: '<html>gateway</html>' }));
    const r2 = await captionImage(scorer, png, { rounds: 0 }, { llm: llm() });
    assert.equal(r2.source, 'offline');
    assert.equal(r2.notices.length, 1);
    assert.match(r2.notices[0]!, /not a chat completion.*gateway/);
  });

  it('refinement: the LLM varies the best, duplicates are dropped, it stops when the best stops improving', async () => {
    server.requests.length = 0;
    const answers = [
      JSON.stringify(['a blue circle on a red background', 'a green circle', 'a drawing of a house']),
      JSON.stringify(['a green circle', 'A blue circle on a red background.', RIGHT]), // two repeats, one better caption
      JSON.stringify(['a white circle on a black background', RIGHT]), // nothing better
      JSON.stringify(['never asked']),
    ];
    server.handle((_req, i) => chatAnswer(answers[i]!));
    const r = await captionImage(scorer, png, { rounds: 4, candidates: 3, topK: 2 }, { llm: llm() });
    assert.equal(server.requests.length, 3);
    assert.deepEqual(r.rounds.map((x) => x.added.length), [3, 1, 1]);
    assert.deepEqual(r.rounds[1]!.added, [RIGHT]);
    assert.deepEqual(r.rounds.map((x) => x.improved), [true, true, false]);
    assert.equal(r.stopped, 'converged');
    assert.equal(r.captions[0]!.text, RIGHT);
    assert.equal(r.captions[0]!.round, 1);
    assert.equal(r.captions.length, 5);
    const refine = requestText(server.requests[1]!);
    assert.match(refine, /1\. a blue circle on a red background \(\d+%\)|1\. a green circle \(\d+%\)|1\. a drawing of a house \(\d+%\)/, 'the best so far are shown to the LLM');
  });

  it('the token budget and the candidate budget stop the rounds', async () => {
    let n = 0;
    server.handle(() => chatAnswer(JSON.stringify([`a red circle number ${++n}`, `a blue circle number ${n}`]), { prompt_tokens: 100, completion_tokens: 50 }));
    const r = await captionImage(scorer, png, { rounds: 8, candidates: 2, maxTokens: 300 }, { llm: llm() });
    assert.equal(r.usage.tokens, 300);
    assert.equal(r.usage.llmCalls, 2);
    assert.ok(['tokens', 'converged'].includes(r.stopped));
    if (r.stopped === 'tokens') assert.equal(r.rounds.length, 2);
    const r2 = await captionImage(scorer, png, { rounds: 8, candidates: 2, maxCandidates: 3 }, { llm: llm() });
    assert.ok(r2.usage.candidates <= 3);
    assert.ok(['candidates', 'converged'].includes(r2.stopped));
  });

  it('a caption over 77 tokens is ranked on its start and flagged', async () => {
    const long = `${RIGHT}${', a red dot'.repeat(20)}`; // over 77 tokens, under MAX_CAPTION_CHARS
    server.handle(() => chatAnswer(JSON.stringify([long, 'a drawing of a house'])));
    const r = await captionImage(scorer, png, { rounds: 0 }, { llm: llm() });
    assert.equal(r.captions.find((c) => c.text === long)!.truncated, true);
    assert.equal(r.captions.find((c) => c.text === 'a drawing of a house')!.truncated, false);
  });

  it('the image goes to the LLM only when asked, as a data URL', async () => {
    server.requests.length = 0;
    server.handle(() => chatAnswer(JSON.stringify([RIGHT, 'a drawing of a house'])));
    await captionImage(scorer, png, { rounds: 0, sendImage: true }, { llm: llm() });
    await captionImage(scorer, png, { rounds: 0 }, { llm: llm() });
    const parts = server.requests[0]!.body.messages!.at(-1)!.content;
    assert.ok(Array.isArray(parts));
    assert.match((parts as { image_url?: { url: string } }[]).find((p) => p.image_url)!.image_url!.url, /^data:image\/png;base64,iVBOR/);
    assert.equal(typeof server.requests[1]!.body.messages!.at(-1)!.content, 'string');
  });

  it('cancel aborts a pending LLM call; bad options name the field', async () => {
    server.handle(() => ({ ...chatAnswer('["late"]'), delayMs: 2000 }));
    const ctrl = new AbortController();
    setTimeout(() => ctrl.abort(), 150);
    await assert.rejects(captionImage(scorer, png, {}, { llm: llm(), signal: ctrl.signal }), CancelledError);
    await assert.rejects(captionImage(scorer, png, { rounds: 99 }), (e) => e instanceof InputError && e.field === 'rounds');
    await assert.rejects(captionImage(scorer, Buffer.from('not an image')), InputError);
  });
});
