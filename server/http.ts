/**
 * The HTTP API, served before the Next.js handler so the engine never enters the Next bundle.
 * `handleApi` answers any `/api/...` request and returns true; anything else is Next's.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StudioConfig } from './config';
import type { JobQueue } from './jobs/queue';
import { buildHealthReport, type EngineHealthProbe } from './health';
import type { GenerateService } from './studio/generate';
import { handleStudioApi } from './studio/routes';

export interface ApiContext {
  config: StudioConfig;
  queue: JobQueue;
  engine: EngineHealthProbe;
  /** Generation, uploads and the gallery (absent in servers built without them). */
  generate?: GenerateService;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function handleApi(req: IncomingMessage, res: ServerResponse, ctx: ApiContext): Promise<boolean> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname !== '/api' && !url.pathname.startsWith('/api/')) return false;
  try {
    if (url.pathname === '/api/health') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD');
        sendJson(res, 405, { error: `${req.method} is not allowed on /api/health; use GET` });
        return true;
      }
      const report = await buildHealthReport(ctx.config, ctx.queue, ctx.engine, { fresh: url.searchParams.has('fresh') });
      sendJson(res, 200, report);
      return true;
    }
    if (ctx.generate) {
      const backend = async () => (await ctx.engine.get()).tfjs?.backend?.name ?? null;
      if (await handleStudioApi(req, res, url, ctx.generate, backend)) return true;
    }
    sendJson(res, 404, { error: `No API route ${url.pathname}` });
  } catch (err) {
    // No stack traces to clients; the server log has the detail.
    console.error(`[api] ${req.method} ${url.pathname}:`, err);
    if (!res.headersSent) sendJson(res, 500, { error: 'Internal error while answering this request.' });
  }
  return true;
}
