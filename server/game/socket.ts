/**
 * The game's socket.io adapter: the only part of the game that touches sockets, timers and
 * the judge. Every incoming payload is rate-limited per connection, then parsed with its
 * schema from the protocol before the room sees it; drawings are validated and re-encoded
 * before a room keeps them; the room's `nextDeadline()` is turned into one timer per room.
 * Errors go back as `play:error` naming the field; a client that passes an acknowledgement
 * callback also gets `{ ok: true }` or `{ ok: false, error }` once its event is handled.
 *
 * Commands for a room go through `command()`: applied here when this node owns the room (always,
 * on one node), else forwarded to the owner (server/cluster/rooms.ts, REDIS_URL set). Rooms
 * talk to a seat's socket by id, so a seat's socket may be on another node. Live guesses are
 * latest-wins per seat and bounded per node (see `guess`), so a flood of drawings cannot queue up
 * behind the scorer.
 *
 * @example
 * const game = new GameServer({ scoring, hallOfFame });
 * game.attach(io);
 * // … later
 * game.close();
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Server, Socket } from 'socket.io';
import type { GameCluster, RoomCommand, RoomReply, RoomRequest, SavedRoom, SocketRef } from '../cluster/rooms';
import type { z } from 'zod';
import { InputError, type ClipScorer } from '../../engine/index';
import {
  PLAY_CODE_ALPHABET, PLAY_LIMITS, PlayClientEvent, PlayCreateSchema, PlayDrawingSchema, PlayEmptySchema, PlayHallOfFameGetSchema,
  PlayJoinSchema, PlayServerEvent, PlaySettingsSchema, parsePayload,
  type ClientToServer, type PlayError, type ServerToClient,
} from '../protocol';
import type { HallOfFameStore } from '../store/hall-of-fame';
import { BLANK_INK, checkDrawingHeader, decodeDrawing, reencode, validateDrawing } from './drawing';
import { GameError } from './errors';
import { Judge } from './judge';
import { loadPacks, packsForModel, type GamePack } from './packs';
import { TokenBucket } from './rate-limit';
import { Room, type Clock, type RoomEffects, type RoomSocket, type RoomState, type RoomTiming } from './room';

export interface GameServerOptions {
  /** The server's shared scorer (server/scoring.ts). */
  scoring: { get(): Promise<ClipScorer> };
  hallOfFame?: HallOfFameStore;
  /** Default: every pack in prompts/game/. */
  packs?: GamePack[];
  clock?: Clock;
  timing?: Partial<RoomTiming>;
  /** Per-connection rate limits: live drawings, and every other event. */
  limits?: { draw?: { capacity: number; perSecond: number }; other?: { capacity: number; perSecond: number } };
  log?: (message: string) => void;
  /** Rooms across web nodes (REDIS_URL); without it this node owns every room. */
  cluster?: GameCluster;
  /** Live drawings scored by CLIP at once on this node (default 2); the rest wait, latest-wins per seat. */
  liveGuessConcurrency?: number;
}

type PlaySocket = Socket<ClientToServer, ServerToClient>;

interface Connection {
  code: string | null;
  seat: string | null;
  ref: SocketRef;
  /** The connection's events are handled one after another (see `on`). */
  busy: Promise<void>;
  buckets: { draw: TokenBucket; other: TokenBucket };
}

const DEFAULT_LIMITS = { draw: { capacity: 2, perSecond: 1 }, other: { capacity: 10, perSecond: 5 } };

/** A GameError for the client, or a generic message for anything unexpected (logged, never leaked). */
function toPlayError(event: string, err: unknown, log: (m: string) => void): PlayError {
  if (err instanceof GameError) return { event, code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) };
  if (err instanceof InputError) return { event, code: 'INVALID', field: err.field, message: err.message };
  log(`[play] ${event}: ${(err as Error)?.stack ?? String(err)}`);
  return { event, code: 'INTERNAL', message: 'Something went wrong on the server; try again.' };
}

export class GameServer {
  readonly judge: Judge;
  /** Rooms this node owns: the room, its clock, and each seat's socket (saved with the state, for a take-over). */
  private readonly rooms = new Map<string, { room: Room; refs: Map<string, SocketRef>; timer?: ReturnType<typeof setTimeout> }>();
  private readonly clock: Clock;
  private readonly allPacks: GamePack[];
  private readonly log: (m: string) => void;
  private readonly limits: typeof DEFAULT_LIMITS;
  private readonly cluster: GameCluster | undefined;
  private readonly nodeId: string;
  private io: Server<ClientToServer, ServerToClient> | undefined;
  /** This node's connections by socket id (an owner closing a seat clears the connection's room). */
  private readonly conns = new Map<string, Connection>();
  /** One RoomSocket per socket id, on the owner: rooms compare them by identity. */
  private readonly proxies = new Map<string, RoomSocket>();
  /** Live guesses: the newest drawing waiting per room and seat (in order of waiting), and the seats being scored. */
  private readonly guessWaiting = new Map<string, () => Promise<void>>();
  private readonly guessRunning = new Set<string>();
  private readonly liveGuessConcurrency: number;
  /** Live drawings whose guesses were skipped for a newer one (for tests and the load report). */
  droppedGuesses = 0;
  /** With a cluster: the check for rooms whose owner stopped (see takeOver). */
  private readonly watcher: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly opts: GameServerOptions) {
    this.clock = opts.clock ?? { now: () => Date.now() };
    this.allPacks = opts.packs ?? loadPacks();
    this.log = opts.log ?? ((m) => console.error(m));
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.judge = new Judge(() => opts.scoring.get());
    this.cluster = opts.cluster;
    this.liveGuessConcurrency = opts.liveGuessConcurrency ?? 2;
    this.nodeId = opts.cluster?.nodeId ?? 'local';
    this.cluster?.handle(
      (req) => this.applyReply(req),
      (socketId, reason) => this.closeConnection(socketId, reason),
    );
    if (this.cluster) {
      this.watcher = setInterval(() => void this.watchOwners(), this.cluster.watchMs);
      this.watcher.unref();
    }
  }

  /** Rooms this node owns now (for tests and health). */
  get roomCount(): number {
    return this.rooms.size;
  }

  room(code: string): Room | undefined {
    return this.rooms.get(code)?.room;
  }

  /** The packs for the active CLIP model (opening the scorer, which the game needs anyway). */
  async packs(): Promise<GamePack[]> {
    const scorer = await this.opts.scoring.get();
    const packs = packsForModel(this.allPacks, scorer.model.id);
    if (!packs.length) {
      throw new GameError('NO_PACK', `There is no prompt pack for the model ${scorer.model.id}: add one to prompts/game/ that lists it in \`models\`.`);
    }
    return packs;
  }

  attach(io: Server<ClientToServer, ServerToClient>): void {
    this.io = io;
    io.on('connection', (socket: PlaySocket) => this.connect(socket));
  }

  close(): void {
    clearInterval(this.watcher);
    for (const [code, entry] of this.rooms) {
      clearTimeout(entry.timer);
      this.cluster?.release(code);
    }
    this.rooms.clear();
  }

  private connect(socket: PlaySocket): void {
    const conn: Connection = {
      code: null, seat: null, busy: Promise.resolve(),
      ref: { socketId: socket.id, node: this.nodeId },
      buckets: {
        draw: new TokenBucket(this.limits.draw.capacity, this.limits.draw.perSecond),
        other: new TokenBucket(this.limits.other.capacity, this.limits.other.perSecond),
      },
    };
    this.conns.set(socket.id, conn);
    const current = (): { seat: string; code: string } => {
      if (!conn.code || !conn.seat) throw new GameError('NOT_IN_ROOM', 'You are not in a room; create or join one first.');
      return { seat: conn.seat, code: conn.code };
    };
    const leaveCurrent = async () => {
      const { code, seat } = conn;
      conn.code = conn.seat = null;
      if (code && seat) await this.command(code, conn.ref, seat, { op: 'leave' }).catch(() => {}); // already gone: nothing to leave
    };

    /** Register a handler: rate limit, schema, then `fn`; errors become `play:error` (and the ack's answer). */
    const on = <S extends z.ZodType>(event: string, schema: S, bucket: 'draw' | 'other', fn: (value: z.output<S>) => unknown) => {
      (socket as unknown as Socket).on(event, (raw: unknown, ack?: unknown) => {
        const answer = (err?: unknown) => {
          if (err === undefined) return void (typeof ack === 'function' && ack({ ok: true }));
          const error = toPlayError(event, err, this.log);
          socket.emit(PlayServerEvent.error, error);
          if (typeof ack === 'function') ack({ ok: false, error });
        };
        if (!conn.buckets[bucket].take(this.clock.now())) {
          return answer(new GameError('RATE_LIMITED', bucket === 'draw'
            ? 'Drawings are taken at most once a second; this one was dropped.'
            : 'Too many requests; slow down.'));
        }
        // One event at a time per connection, in order: a command sent right after `play:joined`
        // waits for the join's answer (which may come from another node) to seat this connection.
        conn.busy = conn.busy.then(async () => {
          try {
            const r = parsePayload(schema, event, raw);
            if (!r.ok) throw new GameError('INVALID', r.error.message, r.error.field);
            await fn(r.value);
            answer();
          } catch (err) {
            answer(err);
          }
        });
      });
    };

    on(PlayClientEvent.create, PlayCreateSchema, 'other', async ({ nickname, settings }) => {
      const packs = await this.packs();
      if (settings?.pack !== undefined && !packs.some((p) => p.id === settings.pack)) {
        throw new GameError('INVALID', `There is no prompt pack "${settings.pack}" for this model; choose one of ${packs.map((p) => p.id).join(', ')}.`, 'settings.pack');
      }
      await leaveCurrent();
      const code = await this.newCode();
      const room = new Room(
        Room.initialState({ code, seed: randomInt(2 ** 32), now: this.clock.now(), packs }),
        { clock: this.clock, packs, effects: this.effects(code), ...(this.opts.timing ? { timing: this.opts.timing } : {}) },
      );
      const refs = new Map<string, SocketRef>();
      this.rooms.set(code, { room, refs });
      try {
        const seat = room.join(this.proxy(conn.ref), { nickname, token: newToken() });
        refs.set(seat.id, conn.ref);
        conn.code = code;
        conn.seat = seat.id;
        if (settings && Object.values(settings).some((v) => v !== undefined)) room.configure(seat.id, settings);
      } finally {
        this.changed(code);
      }
      this.log(`[play] room ${code} created (${packs.map((p) => p.id).join(', ')})`);
    });

    on(PlayClientEvent.join, PlayJoinSchema, 'other', async ({ code, nickname, spectator, token }) => {
      if (conn.code && conn.code !== code) {
        if (!(await this.exists(code))) throw this.notFound(code); // stay where you are
        await leaveCurrent();
      }
      const { seat } = await this.command(code, conn.ref, null, { op: 'join', nickname, spectator, ...(token ? { resumeToken: token } : {}) });
      conn.code = code;
      conn.seat = seat!;
    });

    on(PlayClientEvent.leave, PlayEmptySchema, 'other', async () => {
      current();
      await leaveCurrent();
    });

    on(PlayClientEvent.settings, PlaySettingsSchema, 'other', async (settings) => {
      const { code, seat } = current();
      await this.command(code, conn.ref, seat, { op: 'settings', settings });
    });

    on(PlayClientEvent.start, PlayEmptySchema, 'other', async () => {
      const { code, seat } = current();
      await this.command(code, conn.ref, seat, { op: 'start' });
    });

    on(PlayClientEvent.next, PlayEmptySchema, 'other', async () => {
      const { code, seat } = current();
      await this.command(code, conn.ref, seat, { op: 'next' });
    });

    on(PlayClientEvent.draw, PlayDrawingSchema, 'draw', async ({ round, png }) => {
      const { code, seat } = current();
      await this.command(code, conn.ref, seat, { op: 'draw', round, png: Buffer.from(png).toString('base64') });
    });

    on(PlayClientEvent.submit, PlayDrawingSchema, 'other', async ({ round, png }) => {
      const { code, seat } = current();
      await this.command(code, conn.ref, seat, { op: 'submit', round, png: Buffer.from(png).toString('base64') });
    });

    on(PlayClientEvent.hallOfFameGet, PlayHallOfFameGetSchema, 'other', async (req) => {
      const packs = await this.packs();
      const inRoom = conn.code ? this.rooms.get(conn.code)?.room.pack.id : undefined;
      const pack = req?.pack ?? inRoom ?? packs[0]!.id;
      if (!this.allPacks.some((p) => p.id === pack)) throw new GameError('INVALID', `There is no prompt pack "${pack}".`, 'pack');
      const groups = (await this.opts.hallOfFame?.best(pack, 3)) ?? [];
      socket.emit(PlayServerEvent.hallOfFame, {
        pack,
        prompts: groups.map((g) => ({
          prompt: g.prompt,
          entries: g.entries.map((e) => ({
            id: e.id, prompt: e.prompt, nickname: e.nickname, score: e.score, createdAt: e.createdAt,
            image: `data:image/png;base64,${e.png.toString('base64')}`,
          })),
        })),
      });
    });

    socket.on('disconnect', () => void conn.busy.then(() => {
      this.conns.delete(socket.id);
      const { code, seat } = conn;
      if (code && seat) {
        this.command(code, conn.ref, seat, { op: 'disconnect' }).catch(() => {}).finally(() => this.proxies.delete(socket.id));
      } else {
        this.proxies.delete(socket.id);
      }
    }));
  }

  // ---- commands: applied by the room's owner ------------------------------------------------

  private notFound(code: string): GameError {
    return new GameError('ROOM_NOT_FOUND', `There is no room ${code} (it may have closed); check the link, or create a new room.`, 'code');
  }

  private async exists(code: string): Promise<boolean> {
    const local = this.rooms.get(code)?.room;
    if (local) return !local.closed;
    return !!this.cluster && (await this.cluster.ownerOf(code)) !== null;
  }

  /** Apply a command to room `code`, here if this node owns it, else at its owner. Throws GameError. */
  private async command(code: string, ref: SocketRef, seat: string | null, cmd: RoomCommand): Promise<{ seat?: string }> {
    if (this.rooms.has(code)) return this.apply({ code, ref, seat, cmd });
    const owner = this.cluster ? await this.cluster.ownerOf(code) : null;
    if (!owner && (await this.takeOver(code))) return this.apply({ code, ref, seat, cmd });
    if (!owner || owner === this.nodeId) throw this.notFound(code);
    const reply = await this.cluster!.forward(owner, { code, ref, seat, cmd });
    if (!reply.ok) throw new GameError(reply.error.code as GameError['code'], reply.error.message, reply.error.field);
    return reply.result;
  }

  /** A forwarded command, answered as data for the bus. */
  private async applyReply(req: RoomRequest): Promise<RoomReply> {
    try {
      return { ok: true, result: await this.apply(req) };
    } catch (err) {
      const e = toPlayError(`play:${req.cmd.op}`, err, this.log);
      return { ok: false, error: { code: e.code, message: e.message, ...(e.field ? { field: e.field } : {}) } };
    }
  }

  private async apply({ code, ref, seat, cmd }: RoomRequest): Promise<{ seat?: string }> {
    const entry = this.rooms.get(code);
    const room = entry?.room;
    if (!entry || !room || room.closed) throw this.notFound(code);
    const mine = () => this.rooms.get(code)?.room === room;
    const who = seat ?? '';
    try {
      switch (cmd.op) {
        case 'join': {
          const s = room.join(this.proxy(ref), {
            nickname: cmd.nickname, spectator: cmd.spectator, token: newToken(), ...(cmd.resumeToken ? { resumeToken: cmd.resumeToken } : {}),
          });
          entry.refs.set(s.id, ref);
          return { seat: s.id };
        }
        case 'leave': room.leave(who); entry.refs.delete(who); return {};
        case 'settings': room.configure(who, cmd.settings); return {};
        case 'start': room.start(who); return {};
        case 'next': room.next(who); return {};
        case 'disconnect':
          room.disconnect(who, this.proxy(ref));
          if (entry.refs.get(who)?.socketId === ref.socketId) entry.refs.delete(who);
          if (ref.node !== this.nodeId) this.proxies.delete(ref.socketId);
          return {};
        case 'submit': {
          room.checkDrawing(who, cmd.round, true);
          const drawing = await validateDrawing(Buffer.from(cmd.png, 'base64'));
          if (mine()) room.submit(who, cmd.round, drawing.png.toString('base64'));
          return {};
        }
        case 'draw': {
          // Accepted once the round is open and the PNG's header passes; decoding, keeping it
          // and CLIP's guesses follow in `guess`, latest-wins, so this answers at once.
          room.checkDrawing(who, cmd.round, false);
          const bytes = Buffer.from(cmd.png, 'base64');
          checkDrawingHeader(bytes);
          this.guess(code, room, ref, who, cmd.round, bytes);
          return {};
        }
      }
    } finally {
      this.changed(code);
    }
  }

  /**
   * A live drawing decoded, kept and shown to CLIP, latest-wins per seat and bounded overall: at
   * most `liveGuessConcurrency` drawings are handled at once (seats take turns, oldest waiting first),
   * one per seat at a time; a seat's newer drawing replaces the one it had waiting (counted in
   * `droppedGuesses`). So a flood of drawings never queues up behind CLIP, and the CPU left over
   * keeps acknowledging events quickly.
   */
  private guess(code: string, room: Room, ref: SocketRef, seat: string, round: number, png: Buffer): void {
    const key = `${code}:${seat}`;
    const run = async () => {
      try {
        const drawing = await decodeDrawing(png);
        const t0 = performance.now();
        // CLIP's guesses and the server's own PNG (kept, and shown to spectators) side by side.
        const [guesses, reencoded] = await Promise.all([
          drawing.ink < BLANK_INK ? Promise.resolve([]) : this.judge.guesses(drawing.image, room.pack),
          reencode(drawing.image),
        ]);
        if (this.rooms.get(code)?.room !== room) return;
        const b64 = reencoded.toString('base64');
        room.liveDrawing(seat, round, b64);
        room.liveGuesses(seat, round, guesses, Math.round((performance.now() - t0) * 10) / 10, b64);
        this.changed(code);
      } catch (err) {
        if (err instanceof GameError && err.code === 'LATE') return; // the bell rang while it waited: the final drawing counts
        this.emitTo(ref.socketId, PlayServerEvent.error, toPlayError(PlayClientEvent.draw, err, this.log));
      }
    };
    if (this.guessWaiting.has(key)) this.droppedGuesses++;
    this.guessWaiting.set(key, run); // an existing key keeps its place in line
    this.pumpGuesses();
  }

  private pumpGuesses(): void {
    for (const [key, run] of this.guessWaiting) {
      if (this.guessRunning.size >= this.liveGuessConcurrency) return;
      if (this.guessRunning.has(key)) continue; // this seat's previous drawing is still being scored
      this.guessWaiting.delete(key);
      this.guessRunning.add(key);
      void run().finally(() => {
        this.guessRunning.delete(key);
        this.pumpGuesses();
      });
    }
  }

  /** The RoomSocket for a socket id: sends by id (any node, through the adapter). */
  private proxy(ref: SocketRef): RoomSocket {
    let p = this.proxies.get(ref.socketId);
    if (!p) {
      p = {
        send: (event, payload) => this.emitTo(ref.socketId, event, payload),
        close: (reason) => {
          if (ref.node === this.nodeId) this.closeConnection(ref.socketId, reason);
          else this.cluster?.notifyClosed(ref, reason);
        },
      };
      this.proxies.set(ref.socketId, p);
    }
    return p;
  }

  private emitTo(socketId: string, event: string, payload: unknown): void {
    const local = this.io?.sockets.sockets.get(socketId);
    if (local) return void (local.emit as (e: string, p: unknown) => void)(event, payload);
    // On another node: the redis adapter delivers it there.
    if (this.cluster) (this.io as unknown as Server | undefined)?.to(socketId).emit(event, payload);
  }

  /** The room is done with this node's connection (its seat was opened elsewhere). */
  private closeConnection(socketId: string, reason: string): void {
    const conn = this.conns.get(socketId);
    if (conn) conn.code = conn.seat = null;
    this.emitTo(socketId, PlayServerEvent.left, { reason });
  }

  /** After any change to an owned room: its timer, its saved state, or its end. */
  private changed(code: string): void {
    this.reschedule(code);
    const entry = this.rooms.get(code);
    if (entry) this.cluster?.save(code, () => ({ state: entry.room.state, sockets: Object.fromEntries(entry.refs) }));
  }

  /** Rooms this node's players are in whose owner has stopped: take them over (see GameCluster.takeOver). */
  private async watchOwners(): Promise<void> {
    const codes = new Set<string>();
    for (const conn of this.conns.values()) if (conn.code && !this.rooms.has(conn.code)) codes.add(conn.code);
    for (const code of codes) {
      try {
        if ((await this.cluster!.ownerOf(code)) === null) await this.takeOver(code);
      } catch (err) {
        this.log(`[play] room ${code}: take-over check failed: ${(err as Error)?.message ?? err}`);
      }
    }
  }

  /**
   * Resume a room whose owner stopped, from the state it saved in Redis: this node claims it
   * (one node wins), reattaches the seats whose sockets are on other live nodes, and runs its
   * clock from here. True when this node owns the room afterwards.
   */
  private async takeOver(code: string): Promise<boolean> {
    if (this.rooms.has(code)) return true;
    if (!this.cluster) return false;
    const saved = (await this.cluster.takeOver(code)) as SavedRoom<RoomState> | null;
    if (!saved) return false;
    if (this.rooms.has(code)) return true;
    try {
      const packs = await this.packs();
      const refs = new Map<string, SocketRef>();
      const attached = new Map<string, RoomSocket>();
      for (const [seat, ref] of Object.entries(saved.sockets)) {
        if (ref.node === saved.owner) continue; // died with the old owner
        refs.set(seat, ref);
        attached.set(seat, this.proxy(ref));
      }
      const room = Room.restore(saved.state, { clock: this.clock, packs, effects: this.effects(code), ...(this.opts.timing ? { timing: this.opts.timing } : {}) }, attached);
      this.rooms.set(code, { room, refs });
      this.changed(code);
      this.log(`[play] room ${code} taken over from node ${saved.owner}`);
      return true;
    } catch (err) {
      this.cluster.release(code);
      this.log(`[play] room ${code}: could not take it over: ${(err as Error)?.stack ?? err}`);
      return false;
    }
  }

  /** What a room asks of the world: judging a round, keeping its best drawings. */
  private effects(code: string): RoomEffects {
    return {
      judge: (req) => {
        // The room is looked up when the verdicts come: a room being restored asks before it is registered.
        const room = () => this.rooms.get(code)?.room;
        const pack = this.allPacks.find((p) => p.id === req.pack)!;
        this.judge.judgeRound(pack, req.prompt, req.drawings.map((d) => ({ seat: d.seat, png: Buffer.from(d.png, 'base64') })))
          .then(
            (verdicts) => room()?.judged(req.round, verdicts),
            (err) => {
              this.log(`[play] room ${code} round ${req.round}: judging failed: ${(err as Error)?.stack ?? err}`);
              room()?.judgingFailed(req.round, `The judge failed (${(err as Error)?.message ?? err}); this round scores nothing.`);
            },
          )
          .finally(() => this.changed(code));
      },
      roundScored: (result) => {
        const entries = result.entries.filter((e) => e.clipScore > 0);
        if (!this.opts.hallOfFame || !entries.length) return;
        const failed = (err: unknown) => this.log(`[play] room ${code}: could not save to the hall of fame: ${(err as Error)?.message ?? err}`);
        try {
          void Promise.resolve(this.opts.hallOfFame.add(entries.map((e) => ({
            pack: result.pack, prompt: result.prompt.label, nickname: e.nickname, score: e.clipScore, png: Buffer.from(e.png, 'base64'),
          })))).catch(failed);
        } catch (err) {
          failed(err);
        }
      },
    };
  }

  /** One timer per room (on its owner only), at the room's next deadline; closed rooms are dropped. */
  private reschedule(code: string): void {
    const entry = this.rooms.get(code);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    if (entry.room.closed) {
      this.rooms.delete(code);
      this.cluster?.release(code);
      this.log(`[play] room ${code} closed`);
      return;
    }
    const at = entry.room.nextDeadline();
    if (at === null) return;
    entry.timer = setTimeout(() => {
      entry.room.tick();
      this.changed(code);
    }, Math.max(0, at - this.clock.now()));
    entry.timer.unref?.();
  }

  /** A code no room has, here or (with a cluster) on any node; claimed for this node. */
  private async newCode(): Promise<string> {
    for (;;) {
      let code = '';
      for (let i = 0; i < PLAY_LIMITS.codeLength; i++) code += PLAY_CODE_ALPHABET[randomInt(PLAY_CODE_ALPHABET.length)];
      if (this.rooms.has(code)) continue;
      if (!this.cluster || (await this.cluster.claim(code))) return code;
    }
  }
}

/** 144 random bits, URL-safe: the browser keeps it to get its seat back. */
function newToken(): string {
  return randomBytes(18).toString('base64url');
}
