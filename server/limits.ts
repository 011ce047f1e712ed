/**
 * Rate limits and the socket guard: what one connection and one address may do, and what
 * happens to events nobody handles.
 *
 * - `RateLimits.take(action, who)` charges an action (a job start, an upload, a caption, a
 *   guess, a stroke, any event) to the connection and to the address, with rate-limiter-flexible.
 *   Memory stores in one process; with REDIS_URL, `redisRateStore` keeps the budgets in Redis,
 *   so an address has one budget across all web nodes (same rules, same keys).
 * - `guardSockets(io, …)` sets the per-connection event budget, drops and counts events no
 *   handler listens to (and reserved names a client must not send), so a buggy or hostile
 *   client costs one counter increment, not a crash.
 *
 * Other socket adapters (caption, game) call it the same way:
 *
 * @example
 * const verdict = await ctx.limits.take('guess', whoIs(socket, ctx.config));
 * if (!verdict.ok) return void socket.emit('play:error', { code: 'RATE_LIMITED', message: verdict.message });
 */
import type { IncomingMessage } from 'node:http';
import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Server, Socket } from 'socket.io';

/** Largest socket.io message accepted (engine.io closes the connection above it): a 512×512 PNG drawing (≤ 300 KB) with room to spare. Uploads go over HTTP. */
export const SOCKET_MAX_BYTES = 1024 * 1024;

/** `points` actions per `seconds`, per connection and per address. */
export interface RateRule {
  perConnection: { points: number; seconds: number };
  perAddress: { points: number; seconds: number };
}

/**
 * The default budgets. Generous for a person at a keyboard, small for a script:
 * a generation takes seconds to minutes of a worker, a stroke a few microseconds.
 */
export const DEFAULT_RATE_RULES = {
  /** `job:start` (generate, self-test): each one takes a worker for a while. */
  'job:start': { perConnection: { points: 10, seconds: 60 }, perAddress: { points: 30, seconds: 60 } },
  /** `POST /api/uploads`: each one is a decode. */
  upload: { perConnection: { points: 30, seconds: 60 }, perAddress: { points: 60, seconds: 60 } },
  /** A caption request (a CLIP ranking, maybe an LLM call). */
  caption: { perConnection: { points: 10, seconds: 60 }, perAddress: { points: 30, seconds: 60 } },
  /** A guess or a drawing submitted in the game (each is scored by CLIP). */
  guess: { perConnection: { points: 10, seconds: 10 }, perAddress: { points: 40, seconds: 10 } },
  /** A stroke while drawing (forwarded to spectators). */
  stroke: { perConnection: { points: 60, seconds: 1 }, perAddress: { points: 240, seconds: 1 } },
  /** Any socket event at all: a flood guard, far above what a page sends. */
  event: { perConnection: { points: 400, seconds: 1 }, perAddress: { points: 2000, seconds: 1 } },
} satisfies Record<string, RateRule>;

export type RateAction = keyof typeof DEFAULT_RATE_RULES;
export type RateRules = Record<RateAction, RateRule>;

/** Who is acting: the connection (a socket id, or undefined for plain HTTP) and the client's address. */
export interface Actor {
  connection?: string;
  address: string;
}

export type RateVerdict =
  | { ok: true }
  | { ok: false; action: RateAction; scope: 'connection' | 'address'; retryAfterMs: number; message: string };

/** Builds the store for one (action, scope) bucket: memory in one process, Redis across nodes. */
export type RateStoreFactory = (opts: { keyPrefix: string; points: number; duration: number; scope: 'connection' | 'address' }) => RateLimiterAbstract;

export const memoryStore: RateStoreFactory = ({ keyPrefix, points, duration }) => new RateLimiterMemory({ keyPrefix, points, duration });

/**
 * Address buckets in Redis through `client` (ioredis), shared by every node using the same
 * Redis; connection buckets stay in memory (a connection lives on one node), which spares the
 * per-event budget a round trip.
 */
export const redisRateStore = (client: Redis): RateStoreFactory => ({ scope, keyPrefix, points, duration }) =>
  scope === 'connection' ? new RateLimiterMemory({ keyPrefix, points, duration }) : new RateLimiterRedis({ storeClient: client, keyPrefix, points, duration });

/**
 * The Redis connection for rate limits: no offline queue and one retry, so a Redis outage makes
 * `take` fail at once (a store error: callers let the action through) instead of waiting.
 * Resolves once connected; the caller closes it (`quit`) when the server closes.
 */
export async function openRateLimitRedis(url: string): Promise<Redis> {
  const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
  client.on('error', (err: Error) => console.error(`[limits] redis: ${err.message}`));
  await client.connect();
  return client;
}

const WORDS: Record<RateAction, string> = {
  'job:start': 'jobs started', upload: 'uploads', caption: 'caption requests', guess: 'guesses', stroke: 'strokes', event: 'messages',
};

/** Counters a person can read off `/api/metrics`. */
export class GuardMetrics {
  unknownEvents = 0;
  oversizedMessages = 0;
  readonly rateLimited: Partial<Record<RateAction, number>> = {};

  /** Prometheus-style text lines. */
  lines(): string[] {
    return [
      '# HELP clip_studio_socket_unknown_events_total Socket events no handler listens to (ignored).',
      `clip_studio_socket_unknown_events_total ${this.unknownEvents}`,
      '# HELP clip_studio_socket_oversized_total Connections closed for a message over the size limit.',
      `clip_studio_socket_oversized_total ${this.oversizedMessages}`,
      '# HELP clip_studio_rate_limited_total Actions refused by a rate limit, by action.',
      ...Object.entries(this.rateLimited).map(([a, n]) => `clip_studio_rate_limited_total{action="${a}"} ${n}`),
    ];
  }
}

export class RateLimits {
  private readonly buckets = new Map<string, RateLimiterAbstract>();

  constructor(
    readonly rules: RateRules = DEFAULT_RATE_RULES,
    private readonly metrics = new GuardMetrics(),
    private readonly store: RateStoreFactory = memoryStore,
  ) {
    for (const [action, rule] of Object.entries(rules) as [RateAction, RateRule][]) {
      for (const scope of ['connection', 'address'] as const) {
        const r = scope === 'connection' ? rule.perConnection : rule.perAddress;
        if (!(Number.isInteger(r.points) && r.points > 0 && r.seconds > 0)) throw new RangeError(`Rate rule ${action}/${scope} needs positive points and seconds`);
        this.buckets.set(`${action}:${scope}`, this.store({ keyPrefix: `clip-studio:${action}:${scope}`, points: r.points, duration: r.seconds, scope }));
      }
    }
  }

  /**
   * Charge `points` of `action` to the actor's connection and address. Refused when either
   * budget is spent; the message says what and for how long, for the client.
   */
  async take(action: RateAction, who: Actor, points = 1): Promise<RateVerdict> {
    const scopes: ['connection' | 'address', string | undefined][] = [['connection', who.connection], ['address', who.address]];
    const charged: [RateLimiterAbstract, string][] = [];
    for (const [scope, key] of scopes) {
      if (!key) continue;
      const bucket = this.buckets.get(`${action}:${scope}`)!;
      try {
        await bucket.consume(key, points);
        charged.push([bucket, key]);
      } catch (res) {
        if (!(res instanceof RateLimiterRes)) throw res; // a store error (Redis down) is not a refusal
        // Refused by the address: give the connection its points back, it did nothing wrong yet.
        for (const [b, k] of charged) await b.reward(k, points).catch(() => {});
        this.metrics.rateLimited[action] = (this.metrics.rateLimited[action] ?? 0) + 1;
        const rule = scope === 'connection' ? this.rules[action].perConnection : this.rules[action].perAddress;
        const retryAfterMs = Math.max(1, Math.ceil(res.msBeforeNext));
        return {
          ok: false, action, scope, retryAfterMs,
          message: `Too many ${WORDS[action]} from this ${scope} (at most ${rule.points} per ${rule.seconds} s); try again in ${Math.ceil(retryAfterMs / 1000)} s.`,
        };
      }
    }
    return { ok: true };
  }
}

/**
 * The client's address: the TCP peer, or with `trustProxy` the left-most X-Forwarded-For entry
 * (only behind a proxy you run, which sets it; otherwise anyone could pick their own bucket).
 */
export function clientAddress(req: Pick<IncomingMessage, 'headers' | 'socket'>, trustProxy: boolean): string {
  if (trustProxy) {
    const fwd = req.headers['x-forwarded-for'];
    const first = (Array.isArray(fwd) ? fwd[0] : fwd)?.split(',')[0]?.trim();
    if (first) return first;
  }
  return req.socket.remoteAddress ?? 'unknown';
}

/** The actor behind a socket: its id and its address. */
export function whoIs(socket: Socket, opts: { trustProxy: boolean }): Actor {
  return { connection: socket.id, address: clientAddress(socket.request, opts.trustProxy) };
}

/** Names socket.io uses for itself; a client sending one is misbehaving. */
const RESERVED_EVENTS = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'error', 'newListener', 'removeListener']);

/**
 * Guard every connection: events nobody listens to are dropped and counted, reserved names
 * too, and each connection and address has an event budget (`event` rule); over it, events
 * are dropped and the client hears one `error` a second saying so.
 */
export function guardSockets(io: Server, limits: RateLimits, metrics: GuardMetrics, opts: { trustProxy: boolean }): void {
  io.engine.on('connection', (raw: { on(ev: 'close', cb: (reason: string, desc?: { message?: string; description?: unknown }) => void): void }) => {
    raw.on('close', (reason, desc) => {
      const why = `${reason} ${String(desc?.message ?? '')} ${String((desc?.description as { message?: string } | undefined)?.message ?? '')}`;
      if (/max(imum)? ?(payload|buffer)|too (large|big)|1009/i.test(why)) metrics.oversizedMessages++;
    });
  });
  io.on('connection', (socket) => {
    const who = whoIs(socket, opts);
    let lastWarned = 0;
    socket.use((packet, next) => {
      const event = packet[0];
      if (typeof event !== 'string' || RESERVED_EVENTS.has(event) || socket.listeners(event).length === 0) {
        metrics.unknownEvents++;
        return; // ignored: never reaches a handler
      }
      limits.take('event', who).then((v) => {
        if (v.ok) return next();
        const now = Date.now();
        if (now - lastWarned > 1000) {
          lastWarned = now;
          socket.emit('error', { event, field: '(rate)', message: v.message });
        }
      }, (err: unknown) => {
        console.error('[limits] rate store failed; letting the event through:', err);
        next();
      });
    });
  });
}
