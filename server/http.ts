/**
 * The HTTP API, served before the Next.js handler so the engine never enters the Next bundle.
 * `handleApi` answers any `/api/...` request and returns true; anything else is Next's.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StudioConfig } from './config';
import type { JobQueue } from './jobs/queue';
import { buildHealthReport, type EngineHealthProbe } from './health';
import type { GuardMetrics, RateLimits } from './limits';
import { JOB_STATES, type JobState, type JobStore } from './store/jobs';
import type { GenerateService } from './studio/generate';
import { handleStudioApi } from './studio/routes';

export interface ApiContext {
  config: StudioConfig;
  queue: JobQueue;
  engine: EngineHealthProbe;
  /** Generation, uploads and the gallery (absent in servers built without them). */
  generate?: GenerateService;
  /** The job journal (queued, running, done, failed, cancelled, interrupted). */
  jobs: JobStore;
  /** Per-connection and per-address budgets; socket adapters call `limits.take(...)`. */
  limits: RateLimits;
  metrics: GuardMetrics;
  /** Replaces server paths and secrets in anything sent to a client. */
  redact: <T>(value: T) => T;
}

/** JSON out, with server paths and secrets replaced (`redact`). */
export function sendJson(res: ServerResponse, status: number, body: unknown, redact: <T>(v: T) => T = (v) => v): void {
  const text = JSON.stringify(redact(body));
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function methodNotAllowed(res: ServerResponse, method: string | undefined, path: string, allowed: string[]): void {
  res.setHeader('allow', allowed.join(', '));
  sendJson(res, 405, { error: `${method} is not allowed on ${path}; use ${allowed.join(' or ')}` });
}

export async function handleApi(req: IncomingMessage, res: ServerResponse, ctx: ApiContext): Promise<boolean> {
  // Which requests are the API's is decided on the path as sent: `/api/%2e%2e/x` is the API's
  // (and a 404), never a page or a file because URL parsing removed its dot segments.
  const sent = (req.url ?? '/').split('?')[0]!;
  if (sent !== '/api' && !sent.startsWith('/api/')) return false;
  const url = new URL(req.url ?? '/', 'http://localhost');
  try {
    if (url.pathname === '/api/health') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD');
        sendJson(res, 405, { error: `${req.method} is not allowed on /api/health; use GET` });
        return true;
      }
      const report = await buildHealthReport(ctx.config, ctx.queue, ctx.engine, { fresh: url.searchParams.has('fresh') });
      sendJson(res, 200, report, ctx.redact);
      return true;
    }
    if (url.pathname === '/api/metrics') {
      if (req.method !== 'GET') return methodNotAllowed(res, req.method, url.pathname, ['GET']), true;
      const q = ctx.queue.stats();
      const byState = JOB_STATES.map((s) => `clip_studio_jobs_total{state="${s}"} ${ctx.jobs.count(s)}`);
      const text = [
        ...ctx.metrics.lines(),
        `clip_studio_queue_busy ${q.busy}`, `clip_studio_queue_queued ${q.queued}`, `clip_studio_queue_limit ${q.queueLimit}`,
        `clip_studio_workers_replaced_total ${q.replaced}`, ...byState, '',
      ].join('\n');
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store' }).end(text);
      return true;
    }
    if (url.pathname === '/api/jobs') {
      if (req.method !== 'GET') return methodNotAllowed(res, req.method, url.pathname, ['GET']), true;
      const state = url.searchParams.get('state');
      if (state !== null && !(JOB_STATES as readonly string[]).includes(state)) {
        return sendJson(res, 400, { field: 'state', error: `state must be one of ${JOB_STATES.join(', ')}, got ${JSON.stringify(state.slice(0, 50))}` }), true;
      }
      const limit = Math.min(500, Math.max(1, Number(url.searchParams.get('limit') ?? 100) || 100));
      const filter = state ? { state: state as JobState } : {};
      sendJson(res, 200, { items: ctx.jobs.list({ limit, ...filter }), total: ctx.jobs.count(filter.state) }, ctx.redact);
      return true;
    }
    if (ctx.generate) {
      const backend = async () => (await ctx.engine.get()).tfjs?.backend?.name ?? null;
      if (await handleStudioApi(req, res, url, ctx.generate, backend, ctx)) return true;
    }
    sendJson(res, 404, { error: `No API route ${url.pathname.slice(0, 200)}` });
  } catch (err) {
    // No stack traces to clients; the server log has the detail.
    console.error(`[api] ${req.method} ${url.pathname}:`, err);
    if (!res.headersSent) sendJson(res, 500, { error: 'Internal error while answering this request.' });
  }
  return true;
}
