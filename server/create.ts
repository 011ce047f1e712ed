/**
 * Builds the studio's one HTTP server: `/api/*` from server/http.ts first, then Next.js for
 * pages and assets, with socket.io on the same server. `next: false` gives an API-and-socket
 * server without Next (tests, and `serve --api-only`).
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server as SocketServer } from 'socket.io';
import type { StudioConfig } from './config';
import { createJobQueue, journaled, recoverJournal, type JournaledQueue, type QueueOptions } from './jobs/queue';
import { EngineHealthProbe, ensureDataDir } from './health';
import { handleApi, type ApiContext } from './http';
import { attachStudioSockets } from './studio/socket';
import { GenerateService } from './studio/generate';
import { Uploads } from './studio/uploads';
import { openDatabase } from './store/db';
import { JobStore, newNodeId } from './store/jobs';
import { DEFAULT_RATE_RULES, guardSockets, GuardMetrics, memoryStore, openRateLimitRedis, RateLimits, redisRateStore, SOCKET_MAX_BYTES, whoIs, type RateRules } from './limits';
import { API_CSP, applySecurityHeaders, BASE_HEADERS, handleCors, makeRedactor, originAllowed, preparePageRequest } from './security';
import { Gallery } from './store/gallery';
import { HallOfFame } from './store/hall-of-fame';
import { ScoringService } from './scoring';
import { GameServer, type GameServerOptions } from './game/socket';
import { CaptionService } from './caption/service';
import { attachCaptionSockets } from './caption/socket';
import type { ClientToServer, ServerToClient } from './protocol';
import { startRedisScaleOut, type RedisScaleOut } from './cluster/scale-out';

export interface StudioServerOptions {
  config: StudioConfig;
  /** Serve the Next.js app (default true). */
  next?: boolean;
  /** The project directory Next reads (default: this repository). */
  dir?: string;
  queue?: QueueOptions;
  /** Directory of model manifests (default: the repo's models/); tests point it elsewhere. */
  manifestsDir?: string;
  /** Rate limits (default DEFAULT_RATE_RULES); tests tighten or loosen them. */
  rateRules?: RateRules;
  /** Play: room timings and rate limits (tests shorten the reveal). */
  game?: Pick<GameServerOptions, 'timing' | 'limits' | 'clock'>;
}

export interface StudioServer {
  http: HttpServer;
  io: SocketServer<ClientToServer, ServerToClient>;
  queue: JournaledQueue;
  /** Counters for /api/metrics (unknown socket events, rate-limit refusals). */
  metrics: GuardMetrics;
  /** Play: the game's rooms and judge. */
  game: GameServer;
  /** Listen; resolves with the bound address (port 0 picks a free one). */
  listen(port?: number, host?: string): Promise<AddressInfo>;
  /** Stop at once: running jobs are interrupted (their clients told so), then everything closes. */
  close(): Promise<void>;
  /**
   * Stop gracefully (SIGTERM): refuse new connections and jobs, give running jobs up to
   * `deadlineMs` (default CLIP_STUDIO_SHUTDOWN_MS) to finish, interrupt the rest, close.
   */
  shutdown(deadlineMs?: number): Promise<{ finished: boolean }>;
}

type NextHandler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => Promise<void>;

export async function createStudioServer(opts: StudioServerOptions): Promise<StudioServer> {
  const { config } = opts;
  await ensureDataDir(config.dataDir);
  const db = openDatabase(config.dataDir);
  const runner = createJobQueue(config, { ...opts.queue, ...(opts.manifestsDir ? { manifestsDir: opts.manifestsDir } : {}) });
  // In-process jobs a gone process left queued or running were cut short by its end: say so.
  // BullMQ jobs may still run on a worker: the journal follows Redis for them instead.
  const jobs = new JobStore(db, { node: newNodeId(), queue: runner.kind });
  const recovered = await recoverJournal(jobs, runner);
  if (recovered.interrupted) console.log(`[jobs] ${recovered.interrupted} job${recovered.interrupted === 1 ? ' was' : 's were'} still running when the studio last stopped; marked interrupted`);
  if (recovered.followed) console.log(`[jobs] following ${recovered.followed} job${recovered.followed === 1 ? '' : 's'} another web node left on BullMQ`);
  const queue = journaled(runner, jobs);
  const engine = new EngineHealthProbe(queue);
  const metrics = new GuardMetrics();
  // REDIS_URL: per-address budgets live in Redis, so they hold across web nodes.
  const limitsRedis = config.redisUrl ? await openRateLimitRedis(config.redisUrl) : undefined;
  const limits = new RateLimits(opts.rateRules ?? DEFAULT_RATE_RULES, metrics, limitsRedis ? redisRateStore(limitsRedis) : memoryStore);
  const generate = new GenerateService(config, queue, new Gallery(db, config.dataDir), new Uploads(config.dataDir), opts.manifestsDir);
  const ctx: ApiContext = { config, queue, engine, generate, jobs, limits, metrics, redact: makeRedactor(config) };
  // The one shared ClipScorer (opened on first use), for the game's judge and live guesses.
  const scoring = new ScoringService(config, opts.manifestsDir ? { manifestsDir: opts.manifestsDir } : {});
  // REDIS_URL: socket.io's redis adapter and rooms hosted across nodes (server/cluster/).
  const scaleOut: RedisScaleOut | undefined = config.redisUrl ? await startRedisScaleOut(config.redisUrl, { leaseMs: config.roomLeaseMs }) : undefined;
  const game = new GameServer({ scoring, hallOfFame: scaleOut?.hallOfFame ?? new HallOfFame(db), ...opts.game, ...(scaleOut ? { cluster: scaleOut.rooms } : {}) });
  // Caption jobs run in this process on the same scorer (ORT is async); a small queue bounds them.
  const captions = new CaptionService({ config, scoring, uploads: generate.uploads });

  let nextHandle: NextHandler | undefined;
  let nextUpgrade: ((req: import('node:http').IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => Promise<void>) | undefined;
  let nextClose: (() => Promise<void>) | undefined;
  if (opts.next !== false) {
    // Imported lazily so API-only servers and tests never load Next.
    const { default: next } = await import('next');
    const app = next({ dev: config.dev, dir: opts.dir ?? new URL('..', import.meta.url).pathname, hostname: config.host ?? 'localhost', port: config.port });
    await app.prepare();
    const handle = app.getRequestHandler();
    nextHandle = (req, res) => handle(req, res);
    if (config.dev) nextUpgrade = app.getUpgradeHandler(); // dev only: HMR websocket
    nextClose = () => app.close();
  }

  const http = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0]!;
      if (path === '/api' || path.startsWith('/api/')) {
        applySecurityHeaders(res, API_CSP);
        if (!handleCors(req, res, config.corsOrigins)) return;
        if (await handleApi(req, res, ctx)) return;
      }
      if (nextHandle) {
        preparePageRequest(req, res, config); // a fresh CSP nonce per page
        return nextHandle(req, res);
      }
      applySecurityHeaders(res, API_CSP);
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('Not found (this server runs without the Next.js app).\n');
    })().catch((err) => {
      console.error('[http]', err);
      if (!res.headersSent) res.writeHead(500).end();
    });
  });

  // Other upgrade requests (Next's HMR in dev) must not be destroyed by engine.io.
  const io = new SocketServer<ClientToServer, ServerToClient>(http, {
    destroyUpgrade: !nextUpgrade,
    maxHttpBufferSize: SOCKET_MAX_BYTES,
    // A WebSocket handshake ignores CORS: check the Origin here (no Origin: not a browser).
    allowRequest: (req, cb) => cb(null, originAllowed(req.headers.origin, req.headers.host, config.corsOrigins)),
    ...(config.corsOrigins.length ? { cors: { origin: config.corsOrigins, methods: ['GET', 'POST'] } } : {}),
  });
  if (scaleOut) io.adapter(scaleOut.adapter);
  io.engine.on('headers', (headers: Record<string, string>) => {
    Object.assign(headers, BASE_HEADERS, { 'content-security-policy': API_CSP });
  });
  guardSockets(io, limits, metrics, { trustProxy: config.trustProxy });
  if (nextUpgrade) {
    const upgrade = nextUpgrade;
    http.on('upgrade', (req, socket, head) => {
      if (!req.url?.startsWith('/socket.io/')) void upgrade(req, socket, head);
    });
  }
  attachStudioSockets(io, ctx);
  game.attach(io);
  attachCaptionSockets(io, captions, { admit: (socket) => limits.take('caption', whoIs(socket, config)) });
  // Measure the engine once in the background so the first health request is quick.
  void engine.get().catch(() => {});

  let closing: Promise<{ finished: boolean }> | undefined;
  return {
    http,
    io,
    queue,
    metrics,
    game,
    listen: (port = config.port, host = config.host) =>
      new Promise((resolve, reject) => {
        http.once('error', reject);
        http.listen(port, host, () => {
          http.off('error', reject);
          resolve(http.address() as AddressInfo);
        });
      }),
    close: () => shutdown(0).then(() => undefined),
    shutdown: (deadlineMs = config.shutdownMs) => shutdown(deadlineMs),
  };

  async function shutdown(deadlineMs: number): Promise<{ finished: boolean }> {
    if (closing) return closing;
    return (closing = (async () => {
      // Stop accepting: no new connections, no new jobs; connected clients still hear their results.
      queue.stopAccepting();
      const httpClosed = new Promise<void>((r) => (http.listening ? http.close(() => r()) : r()));
      http.closeIdleConnections();
      const finished = await queue.drained(deadlineMs);
      await queue.close(); // what is still running is interrupted, journaled, and its client told
      await new Promise((r) => setImmediate(r)); // let those last events reach the sockets
      io.close();
      game.close();
      await scaleOut?.close();
      await limitsRedis?.quit().catch(() => limitsRedis.disconnect());
      await captions.close();
      await scoring.close();
      await nextClose?.();
      db.close();
      http.closeAllConnections();
      await httpClosed;
      return { finished };
    })());
  }
}
