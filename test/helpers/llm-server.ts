/**
 * A local OpenAI-compatible HTTP server for caption tests and the caption evaluation: real
 * HTTP on 127.0.0.1 that the `openai` package talks to unchanged (POST {base}/chat/completions).
 * Each test scripts the answers: a caption list, an HTTP error, a slow answer, garbage. Every
 * request is recorded (headers and parsed body) so tests can check what was sent.
 *
 * @example
 * const llm = await startLlmServer(() => chatAnswer('["a red circle", "a blue star"]'));
 * // new CaptionLlm({ baseUrl: llm.baseUrl, apiKey: 'k', model: 'test' })
 * await llm.close();
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: {
    model?: string;
    messages?: { role: string; content: string | { type: string; text?: string; image_url?: { url: string } }[] }[];
    max_tokens?: number;
  };
}

export interface LlmReply {
  status?: number;
  /** A JSON body (default: none). */
  json?: unknown;
  /** A raw body, when `json` is absent. */
  text?: string;
  headers?: Record<string, string>;
  /** Wait this long before answering (for timeouts). */
  delayMs?: number;
}

export type LlmHandler = (req: RecordedRequest, index: number) => LlmReply | Promise<LlmReply>;

export interface LlmServer {
  baseUrl: string;
  requests: RecordedRequest[];
  /** Replace the handler (the evaluation sets one answer per image). */
  handle(handler: LlmHandler): void;
  close(): Promise<void>;
}

/** A chat-completion body whose message is `content`, with token usage. */
export function chatAnswer(content: string, usage = { prompt_tokens: 100, completion_tokens: 50 }): LlmReply {
  return {
    json: {
      id: 'chatcmpl-test', object: 'chat.completion', created: Math.floor(Date.now() / 1000), model: 'test-llm',
      choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content } }],
      usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
    },
  };
}

/** An OpenAI-style error body with `status`. */
export function errorAnswer(status: number, message = 'test error', headers: Record<string, string> = {}): LlmReply {
  return { status, json: { error: { message, type: 'test', code: null } }, headers };
}

/** The text of a recorded request's messages (user and system), images left out. */
export function requestText(req: RecordedRequest): string {
  return (req.body.messages ?? []).map((m) => (typeof m.content === 'string' ? m.content : m.content.map((p) => p.text ?? '').join('\n'))).join('\n');
}

export async function startLlmServer(initial: LlmHandler): Promise<LlmServer> {
  let handler = initial;
  const requests: RecordedRequest[] = [];
  const pending = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        let body: RecordedRequest['body'] = {};
        try { body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as RecordedRequest['body']; } catch { /* recorded as empty */ }
        const rec: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body };
        requests.push(rec);
        if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
          res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `no route ${req.url}` } }));
          return;
        }
        const reply = await handler(rec, requests.length - 1);
        if (reply.delayMs) {
          pending.add(res);
          await new Promise((r) => setTimeout(r, reply.delayMs));
          pending.delete(res);
          if (res.destroyed || res.writableEnded) return;
        }
        const payload = reply.json !== undefined ? JSON.stringify(reply.json) : (reply.text ?? '');
        res.writeHead(reply.status ?? 200, { 'content-type': reply.json !== undefined ? 'application/json' : 'text/plain', ...reply.headers });
        res.end(payload);
      })().catch((err) => { res.writeHead(500).end(String(err)); });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    handle: (h) => { handler = h; },
    close: async () => {
      for (const res of pending) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
