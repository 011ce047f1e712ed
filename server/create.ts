/**
 * Builds the studio's one HTTP server: `/api/*` from server/http.ts first, then Next.js for
 * pages and assets, with socket.io on the same server. `next: false` gives an API-and-socket
 * server without Next (tests, and `serve --api-only`).
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server as SocketServer } from 'socket.io';
import type { StudioConfig } from './config';
import { createJobQueue, type JobQueue, type QueueOptions } from './jobs/queue';
import { EngineHealthProbe, ensureDataDir } from './health';
import { handleApi, type ApiContext } from './http';
import { attachStudioSockets } from './studio/socket';
import { GenerateService } from './studio/generate';
import { Uploads } from './studio/uploads';
import { openDatabase } from './store/db';
import { Gallery } from './store/gallery';
import { HallOfFame } from './store/hall-of-fame';
import { ScoringService } from './scoring';
import { GameServer, type GameServerOptions } from './game/socket';
import type { ClientToServer, ServerToClient } from './protocol';

export interface StudioServerOptions {
  config: StudioConfig;
  /** Serve the Next.js app (default true). */
  next?: boolean;
  /** The project directory Next reads (default: this repository). */
  dir?: string;
  queue?: QueueOptions;
  /** Directory of model manifests (default: the repo's models/); tests point it elsewhere. */
  manifestsDir?: string;
  /** Play: room timings and rate limits (tests shorten the reveal). */
  game?: Pick<GameServerOptions, 'timing' | 'limits' | 'clock'>;
}

export interface StudioServer {
  http: HttpServer;
  io: SocketServer<ClientToServer, ServerToClient>;
  queue: JobQueue;
  /** Play: the game's rooms and judge. */
  game: GameServer;
  /** Listen; resolves with the bound address (port 0 picks a free one). */
  listen(port?: number, host?: string): Promise<AddressInfo>;
  close(): Promise<void>;
}

type NextHandler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => Promise<void>;

export async function createStudioServer(opts: StudioServerOptions): Promise<StudioServer> {
  const { config } = opts;
  await ensureDataDir(config.dataDir);
  const queue = createJobQueue(config, { ...opts.queue, ...(opts.manifestsDir ? { manifestsDir: opts.manifestsDir } : {}) });
  const engine = new EngineHealthProbe(queue);
  const db = openDatabase(config.dataDir);
  const generate = new GenerateService(config, queue, new Gallery(db, config.dataDir), new Uploads(config.dataDir), opts.manifestsDir);
  const ctx: ApiContext = { config, queue, engine, generate };
  // The one shared ClipScorer (opened on first use), for the game's judge and live guesses.
  const scoring = new ScoringService(config, opts.manifestsDir ? { manifestsDir: opts.manifestsDir } : {});
  const game = new GameServer({ scoring, hallOfFame: new HallOfFame(db), ...opts.game });

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
      if (await handleApi(req, res, ctx)) return;
      if (nextHandle) return nextHandle(req, res);
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('Not found (this server runs without the Next.js app).\n');
    })().catch((err) => {
      console.error('[http]', err);
      if (!res.headersSent) res.writeHead(500).end();
    });
  });

  // Other upgrade requests (Next's HMR in dev) must not be destroyed by engine.io.
  const io = new SocketServer<ClientToServer, ServerToClient>(http, { destroyUpgrade: !nextUpgrade });
  if (nextUpgrade) {
    const upgrade = nextUpgrade;
    http.on('upgrade', (req, socket, head) => {
      if (!req.url?.startsWith('/socket.io/')) void upgrade(req, socket, head);
    });
  }
  attachStudioSockets(io, ctx);
  game.attach(io);
  // Measure the engine once in the background so the first health request is quick.
  void engine.get().catch(() => {});

  return {
    http,
    io,
    queue,
    game,
    listen: (port = config.port, host = config.host) =>
      new Promise((resolve, reject) => {
        http.once('error', reject);
        http.listen(port, host, () => {
          http.off('error', reject);
          resolve(http.address() as AddressInfo);
        });
      }),
    close: async () => {
      io.close(); // also closes the http server
      game.close();
      await queue.close();
      await scoring.close();
      await nextClose?.();
      db.close();
      await new Promise<void>((r) => (http.listening ? http.close(() => r()) : r()));
    },
  };
}
