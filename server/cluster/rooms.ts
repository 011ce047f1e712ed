/**
 * Play across web nodes (REDIS_URL set). The design, chosen as the simplest that is correct:
 *
 * - **One owner per room.** The node that creates a room owns it: the Room object (room.ts, a
 *   pure state machine) lives in that node's memory, and only that node applies commands to it
 *   and runs its clock, so every command is serialised by one event loop and every timer (the
 *   round's bell) fires exactly once. Ownership is a lease in Redis
 *   (`clip-studio:play:room:<code>:owner` = node id, renewed while the node lives); room codes
 *   are claimed with SET NX, so two nodes never make the same room.
 * - **Commands are forwarded.** A player whose socket is on another node sends commands there;
 *   that node looks up the owner and forwards the command over Redis pub/sub (one channel per
 *   node) and awaits the owner's answer (the seat, or the GameError to show). Drawings travel
 *   as base64; the owner checks, decodes, re-encodes and asks CLIP, exactly as on one node.
 * - **Broadcasts go through socket.io.** The owner sends to each seat's socket by id
 *   (`io.to(socketId)`); the socket.io redis adapter delivers it on whichever node holds it.
 * - **State is reachable by every node.** After changes the owner writes the room's plain-JSON
 *   state and the socket of each seat to Redis (`…:state`, a SavedRoom, at most every 250 ms
 *   per room).
 * - **Take-over.** When an owner stops without closing its rooms (a crash, a lost machine), its
 *   leases lapse. A node with players in such a room notices (it checks the owner of those
 *   rooms every `watchMs`, and before forwarding any command), claims the lease with SET NX so
 *   exactly one node wins, and resumes the room from the saved state (Room.restore): seats whose
 *   sockets were on the dead node count as dropped, with the usual reconnect and host grace;
 *   a round being judged is judged again. Changes in the last ≤ 250 ms before the crash are lost.
 *
 * The game's adapter (server/game/socket.ts) uses this through `GameCluster`; without Redis the
 * adapter owns every room and never calls it.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { REDIS_PREFIX, redisConnection } from '../jobs/bullmq';

/** Which socket a command comes from: its id and the node that holds it. */
export interface SocketRef {
  socketId: string;
  node: string;
}

/** A command for a room's owner (everything but `create`, which makes the creator the owner). */
export type RoomCommand =
  | { op: 'join'; nickname: string; spectator?: boolean; resumeToken?: string }
  | { op: 'leave' }
  | { op: 'settings'; settings: { rounds?: number; seconds?: number; pack?: string } }
  | { op: 'start' }
  | { op: 'next' }
  | { op: 'draw'; round: number; png: string }
  | { op: 'submit'; round: number; png: string }
  | { op: 'disconnect' };

export interface RoomRequest {
  code: string;
  ref: SocketRef;
  seat: string | null;
  cmd: RoomCommand;
}

/** The owner's answer: a result, or the error to show (a GameError's fields). */
export type RoomReply = { ok: true; result: { seat?: string } } | { ok: false; error: { code: string; message: string; field?: string } };

type BusMessage =
  | { t: 'req'; id: string; from: string; req: RoomRequest }
  | { t: 'res'; id: string; reply: RoomReply }
  | { t: 'closed'; socketId: string; reason: string };

/** What an owner keeps in Redis for each room: enough for another node to take it over. */
export interface SavedRoom<S = unknown> {
  /** The node that wrote it (its owner then). */
  owner: string;
  /** The room's plain-JSON state (room.ts RoomState). */
  state: S;
  /** The socket of each seated connection, by seat id. */
  sockets: Record<string, SocketRef>;
}

export interface GameClusterOptions {
  url: string;
  /** This node's id (default: a fresh UUID). */
  nodeId?: string;
  /** Ownership lease (default 30 s), renewed every third of it. */
  leaseMs?: number;
  /** How long a forwarded command waits for its owner (default 10 s). */
  requestTimeoutMs?: number;
  /** How often a node checks that the rooms its players are in still have an owner (default 1 s). */
  watchMs?: number;
}

const key = (code: string, what: 'owner' | 'state') => `${REDIS_PREFIX}:play:room:${code}:${what}`;
const channel = (node: string) => `${REDIS_PREFIX}:play:node:${node}`;

/** Renew a lease only if it is still ours. */
const RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
/** Drop a lease (and the saved state) only if it is still ours. */
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[2]); return redis.call('del', KEYS[1]) else return 0 end";

export class GameCluster {
  readonly nodeId: string;
  /** How often the game adapter checks its players' rooms for a lapsed owner (GameClusterOptions.watchMs). */
  readonly watchMs: number;
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private readonly leaseMs: number;
  private readonly timeoutMs: number;
  private readonly owned = new Set<string>();
  private readonly waiting = new Map<string, { resolve(r: RoomReply): void; timer: NodeJS.Timeout }>();
  private readonly saves = new Map<string, { timer: NodeJS.Timeout; state: () => Omit<SavedRoom, 'owner'> }>();
  private readonly renewer: NodeJS.Timeout;
  private onRequest: (req: RoomRequest) => Promise<RoomReply> = async () => ({ ok: false, error: { code: 'ROOM_NOT_FOUND', message: 'This node hosts no rooms.' } });
  private onClosed: (socketId: string, reason: string) => void = () => {};
  private closed = false;

  private constructor(opts: GameClusterOptions) {
    this.nodeId = opts.nodeId ?? randomUUID();
    this.leaseMs = opts.leaseMs ?? 30_000;
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.watchMs = opts.watchMs ?? 1_000;
    this.cmd = redisConnection(opts.url);
    this.sub = redisConnection(opts.url);
    for (const c of [this.cmd, this.sub]) c.on('error', (err: Error) => console.error(`[play] redis: ${err.message}`));
    this.renewer = setInterval(() => void this.renew(), Math.max(100, this.leaseMs / 3));
    this.renewer.unref();
  }

  /** Connect and subscribe to this node's channel. */
  static async start(opts: GameClusterOptions): Promise<GameCluster> {
    const c = new GameCluster(opts);
    c.sub.on('message', (_ch: string, raw: string) => c.receive(raw));
    await c.sub.subscribe(channel(c.nodeId));
    return c;
  }

  /** Who applies commands forwarded to this node, and what to do when an owner closes a local socket's seat. */
  handle(onRequest: (req: RoomRequest) => Promise<RoomReply>, onClosed: (socketId: string, reason: string) => void): void {
    this.onRequest = onRequest;
    this.onClosed = onClosed;
  }

  /** Claim a new room code for this node; false when another node has it. */
  async claim(code: string): Promise<boolean> {
    const ok = (await this.cmd.set(key(code, 'owner'), this.nodeId, 'PX', this.leaseMs, 'NX')) === 'OK';
    if (ok) this.owned.add(code);
    return ok;
  }

  /** The node that owns `code`, or null when there is no such room. */
  ownerOf(code: string): Promise<string | null> {
    return this.cmd.get(key(code, 'owner'));
  }

  /** Send a command to the room's owner and wait for its answer. */
  forward(owner: string, req: RoomRequest): Promise<RoomReply> {
    const id = randomUUID();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve({ ok: false, error: { code: 'ROOM_NOT_FOUND', message: `Room ${req.code}'s server did not answer; it may have stopped. Create a new room.`, field: 'code' } });
      }, this.timeoutMs);
      this.waiting.set(id, { resolve, timer });
      this.publish(owner, { t: 'req', id, from: this.nodeId, req });
    });
  }

  /** Tell the node holding a socket that its seat was closed (taken over elsewhere). */
  notifyClosed(ref: SocketRef, reason: string): void {
    this.publish(ref.node, { t: 'closed', socketId: ref.socketId, reason });
  }

  /** Keep the room's state in Redis: written at most every 250 ms (the latest state wins). */
  save(code: string, state: () => Omit<SavedRoom, 'owner'>): void {
    if (this.closed || !this.owned.has(code)) return;
    const pending = this.saves.get(code);
    if (pending) {
      pending.state = state;
      return;
    }
    const timer = setTimeout(() => {
      const entry = this.saves.get(code);
      this.saves.delete(code);
      if (!entry || !this.owned.has(code)) return;
      const saved: SavedRoom = { owner: this.nodeId, ...entry.state() };
      void this.cmd.set(key(code, 'state'), JSON.stringify(saved), 'PX', 24 * 3600_000).catch(() => {});
    }, 250);
    timer.unref();
    this.saves.set(code, { timer, state });
  }

  /** The room's saved state, or null. */
  async loadState(code: string): Promise<SavedRoom | null> {
    const raw = await this.cmd.get(key(code, 'state'));
    return raw ? (JSON.parse(raw) as SavedRoom) : null;
  }

  /**
   * Take over a room whose owner's lease lapsed: claim the lease (SET NX: one node wins) and
   * return the saved state to resume from. Null when the room still has an owner, another node
   * won, or nothing was saved (the room closed).
   */
  async takeOver(code: string): Promise<SavedRoom | null> {
    if ((await this.ownerOf(code)) !== null || (await this.loadState(code)) === null) return null;
    if (!(await this.claim(code))) return null;
    const saved = await this.loadState(code); // read again: it may have closed in between
    if (!saved) this.release(code);
    return saved;
  }

  /** The room has closed: forget it here and in Redis. */
  release(code: string): void {
    this.owned.delete(code);
    const s = this.saves.get(code);
    if (s) clearTimeout(s.timer);
    this.saves.delete(code);
    void this.cmd.eval(RELEASE, 2, key(code, 'owner'), key(code, 'state'), this.nodeId).catch(() => {});
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.renewer);
    for (const s of this.saves.values()) clearTimeout(s.timer);
    for (const w of this.waiting.values()) clearTimeout(w.timer);
    await Promise.all([...this.owned].map((code) => this.cmd.eval(RELEASE, 2, key(code, 'owner'), key(code, 'state'), this.nodeId).catch(() => {})));
    this.owned.clear();
    this.sub.disconnect();
    this.cmd.disconnect();
  }

  // -------------------------------------------------------------------------------------------

  private publish(node: string, msg: BusMessage): void {
    if (this.closed) return;
    void this.cmd.publish(channel(node), JSON.stringify(msg)).catch((err: Error) => console.error(`[play] redis publish: ${err.message}`));
  }

  private receive(raw: string): void {
    let msg: BusMessage;
    try {
      msg = JSON.parse(raw) as BusMessage;
    } catch {
      return;
    }
    if (msg.t === 'res') {
      const w = this.waiting.get(msg.id);
      if (!w) return;
      clearTimeout(w.timer);
      this.waiting.delete(msg.id);
      w.resolve(msg.reply);
    } else if (msg.t === 'req') {
      const { id, from } = msg;
      this.onRequest(msg.req).then(
        (reply) => this.publish(from, { t: 'res', id, reply }),
        (err: Error) => {
          console.error('[play] forwarded command:', err);
          this.publish(from, { t: 'res', id, reply: { ok: false, error: { code: 'INTERNAL', message: 'Something went wrong on the server; try again.' } } });
        },
      );
    } else if (msg.t === 'closed') {
      this.onClosed(msg.socketId, msg.reason);
    }
  }

  private async renew(): Promise<void> {
    for (const code of this.owned) {
      const kept = await this.cmd.eval(RENEW, 1, key(code, 'owner'), this.nodeId, String(this.leaseMs)).catch(() => 1);
      if (kept === 0) this.owned.delete(code); // lost (Redis was unreachable past the lease): stop claiming it
    }
  }
}
