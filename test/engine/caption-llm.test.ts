/**
 * CaptionLlm against a local OpenAI-compatible server over real HTTP (the `openai` package,
 * no mocking library): the key travels in the Authorization header and nowhere else, 429 and
 * 500 are retried with backoff (Retry-After honoured), a client error is not, a slow answer
 * is a timeout, and cancelling aborts a pending call.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CaptionLlm, CancelledError, LlmError, LlmTimeoutError } from '../../engine/index';
import { chatAnswer, errorAnswer, startLlmServer, type LlmServer } from '../helpers/llm-server';

const KEY = 'sk-test-SECRET-4242';
let server: LlmServer;
before(async () => { server = await startLlmServer(() => chatAnswer('[]')); });
after(() => server.close());

function client(extra: Partial<ConstructorParameters<typeof CaptionLlm>[0]> = {}, waits: number[] = []) {
  return new CaptionLlm({
    baseUrl: server.baseUrl, apiKey: KEY, model: 'test-model', timeoutMs: 2000, maxRetries: 3, backoffMs: 10,
    sleep: async (ms) => { waits.push(ms); await new Promise((r) => setTimeout(r, 1)); }, ...extra,
  });
}

test('a completion: the model, the messages and the key arrive; usage is counted', async () => {
  server.requests.length = 0;
  server.handle(() => chatAnswer('["a red circle"]', { prompt_tokens: 30, completion_tokens: 12 }));
  const answer = await client().complete([{ role: 'user', content: 'caption this: red, circle' }]);
  assert.deepEqual(answer, { text: '["a red circle"]', tokens: 42, attempts: 1 });
  const req = server.requests[0]!;
  assert.equal(req.path, '/v1/chat/completions');
  assert.equal(req.headers.authorization, `Bearer ${KEY}`);
  assert.equal(req.body.model, 'test-model');
  assert.equal(req.body.messages?.[0]?.content, 'caption this: red, circle');
});

test('429 and 500 are retried with growing backoff, Retry-After honoured; each retry is reported', async () => {
  server.requests.length = 0;
  server.handle((_req, i) => [errorAnswer(429, 'slow down'), errorAnswer(500), errorAnswer(503, 'busy', { 'retry-after': '0.05' })][i] ?? chatAnswer('["ok"]'));
  const waits: number[] = [];
  const retries: string[] = [];
  const answer = await client({}, waits).complete([{ role: 'user', content: 'x' }], { onRetry: (m) => retries.push(m) });
  assert.equal(answer.attempts, 4);
  assert.equal(server.requests.length, 4);
  assert.equal(waits.length, 3);
  assert.ok(waits[0]! >= 7.5 && waits[0]! <= 12.5, `first backoff ~10 ms, got ${waits[0]}`);
  assert.ok(waits[1]! >= 15 && waits[1]! <= 25, `second backoff ~20 ms, got ${waits[1]}`);
  assert.equal(waits[2], 50, 'Retry-After: 0.05 s');
  assert.match(retries[0]!, /HTTP 429 .*retry 1 of 3/);
  assert.match(retries[1]!, /HTTP 500 .*retry 2 of 3/);
});

test('retries run out; a 401 is not retried; the key is in no message', async () => {
  server.requests.length = 0;
  server.handle(() => errorAnswer(500, `internal error, your key was ${KEY}`));
  await assert.rejects(client({ maxRetries: 2 }).complete([{ role: 'user', content: 'x' }]), (e) => e instanceof LlmError && e.status === 500 && /3 times/.test(e.message) && !e.message.includes(KEY));
  assert.equal(server.requests.length, 3);
  server.requests.length = 0;
  server.handle(() => errorAnswer(401, 'bad key'));
  await assert.rejects(client().complete([{ role: 'user', content: 'x' }]), (e) => e instanceof LlmError && e.status === 401 && /OPENAI_API_KEY/.test(e.message) && !e.message.includes(KEY));
  assert.equal(server.requests.length, 1, 'not retried');
});

test('a slow answer is a timeout, not retried', async () => {
  server.requests.length = 0;
  server.handle(() => ({ ...chatAnswer('["late"]'), delayMs: 1500 }));
  const t0 = performance.now();
  await assert.rejects(client({ timeoutMs: 200 }).complete([{ role: 'user', content: 'x' }]), (e) => e instanceof LlmTimeoutError && /within 0\.2 s/.test(e.message));
  assert.ok(performance.now() - t0 < 1400, 'gave up at the timeout');
  assert.equal(server.requests.length, 1);
});

test('cancelling aborts a pending call', async () => {
  server.handle(() => ({ ...chatAnswer('["late"]'), delayMs: 1500 }));
  const ctrl = new AbortController();
  setTimeout(() => ctrl.abort(), 100);
  await assert.rejects(client().complete([{ role: 'user', content: 'x' }], { signal: ctrl.signal }), CancelledError);
});
