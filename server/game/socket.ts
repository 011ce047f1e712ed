/**
 * The game's socket.io adapter: the only part of the game that touches sockets, timers and
 * the judge. Every incoming payload is rate-limited per connection, then parsed with its
 * schema from the protocol before the room sees it; drawings are validated and re-encoded
 * before a room keeps them; the room's `nextDeadline()` is turned into one timer per room.
 * Errors go back as `play:error` naming the field.
 *
 * @example
 * const game = new GameServer({ scoring, hallOfFame });
 * game.attach(io);
 * // … later
 * game.close();
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Server, Socket } from 'socket.io';
import type { z } from 'zod';
import { InputError, type ClipScorer } from '../../engine/index';
import {
  PLAY_CODE_ALPHABET, PLAY_LIMITS, PlayClientEvent, PlayCreateSchema, PlayDrawingSchema, PlayEmptySchema, PlayHallOfFameGetSchema,
  PlayJoinSchema, PlayServerEvent, PlaySettingsSchema, parsePayload,
  type ClientToServer, type PlayError, type ServerToClient,
} from '../protocol';
import type { HallOfFame } from '../store/hall-of-fame';
import { BLANK_INK, decodeDrawing, reencode, validateDrawing } from './drawing';
import { GameError } from './errors';
import { Judge } from './judge';
import { loadPacks, packsForModel, type GamePack } from './packs';
import { TokenBucket } from './rate-limit';
import { Room, type Clock, type RoomEffects, type RoomSocket, type RoomTiming } from './room';

export interface GameServerOptions {
  /** The server's shared scorer (server/scoring.ts). */
  scoring: { get(): Promise<ClipScorer> };
  hallOfFame?: HallOfFame;
  /** Default: every pack in prompts/game/. */
  packs?: GamePack[];
  clock?: Clock;
  timing?: Partial<RoomTiming>;
  /** Per-connection rate limits: live drawings, and every other event. */
  limits?: { draw?: { capacity: number; perSecond: number }; other?: { capacity: number; perSecond: number } };
  log?: (message: string) => void;
}

type PlaySocket = Socket<ClientToServer, ServerToClient>;

interface Connection {
  code: string | null;
  seat: string | null;
  roomSocket: RoomSocket;
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
  private readonly rooms = new Map<string, { room: Room; timer?: ReturnType<typeof setTimeout> }>();
  private readonly clock: Clock;
  private readonly allPacks: GamePack[];
  private readonly log: (m: string) => void;
  private readonly limits: typeof DEFAULT_LIMITS;

  constructor(private readonly opts: GameServerOptions) {
    this.clock = opts.clock ?? { now: () => Date.now() };
    this.allPacks = opts.packs ?? loadPacks();
    this.log = opts.log ?? ((m) => console.error(m));
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.judge = new Judge(() => opts.scoring.get());
  }

  /** Rooms open now (for tests and health). */
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
    io.on('connection', (socket: PlaySocket) => this.connect(socket));
  }

  close(): void {
    for (const entry of this.rooms.values()) clearTimeout(entry.timer);
    this.rooms.clear();
  }

  private connect(socket: PlaySocket): void {
    const conn: Connection = {
      code: null, seat: null,
      roomSocket: {
        send: (event, payload) => void (socket.emit as (e: string, p: unknown) => void)(event, payload),
        close: (reason) => {
          conn.code = conn.seat = null;
          socket.emit(PlayServerEvent.left, { reason });
        },
      },
      buckets: {
        draw: new TokenBucket(this.limits.draw.capacity, this.limits.draw.perSecond),
        other: new TokenBucket(this.limits.other.capacity, this.limits.other.perSecond),
      },
    };
    const current = (): { room: Room; seat: string; code: string } => {
      const room = conn.code ? this.rooms.get(conn.code)?.room : undefined;
      if (!room || !conn.seat || !room.seat(conn.seat)) throw new GameError('NOT_IN_ROOM', 'You are not in a room; create or join one first.');
      return { room, seat: conn.seat, code: conn.code! };
    };
    const leaveCurrent = () => {
      const code = conn.code;
      const room = code ? this.rooms.get(code)?.room : undefined;
      if (room && conn.seat && room.seat(conn.seat)) room.leave(conn.seat);
      conn.code = conn.seat = null;
      if (code) this.reschedule(code);
    };

    /** Register a handler: rate limit, schema, then `fn`; errors become `play:error`. */
    const on = <S extends z.ZodType>(event: string, schema: S, bucket: 'draw' | 'other', fn: (value: z.output<S>) => unknown) => {
      (socket as unknown as Socket).on(event, async (raw: unknown) => {
        const touched = conn.code;
        try {
          if (!conn.buckets[bucket].take(this.clock.now())) {
            throw new GameError('RATE_LIMITED', bucket === 'draw'
              ? 'Drawings are taken at most once a second; this one was dropped.'
              : 'Too many requests; slow down.');
          }
          const r = parsePayload(schema, event, raw);
          if (!r.ok) throw new GameError('INVALID', r.error.message, r.error.field);
          await fn(r.value);
        } catch (err) {
          socket.emit(PlayServerEvent.error, toPlayError(event, err, this.log));
        } finally {
          if (touched) this.reschedule(touched);
          if (conn.code && conn.code !== touched) this.reschedule(conn.code);
        }
      });
    };

    on(PlayClientEvent.create, PlayCreateSchema, 'other', async ({ nickname, settings }) => {
      const packs = await this.packs();
      if (settings?.pack !== undefined && !packs.some((p) => p.id === settings.pack)) {
        throw new GameError('INVALID', `There is no prompt pack "${settings.pack}" for this model; choose one of ${packs.map((p) => p.id).join(', ')}.`, 'settings.pack');
      }
      leaveCurrent();
      const code = this.newCode();
      const room = new Room(
        Room.initialState({ code, seed: randomInt(2 ** 32), now: this.clock.now(), packs }),
        { clock: this.clock, packs, effects: this.effects(code), ...(this.opts.timing ? { timing: this.opts.timing } : {}) },
      );
      this.rooms.set(code, { room });
      const seat = room.join(conn.roomSocket, { nickname, token: newToken() });
      conn.code = code;
      conn.seat = seat.id;
      if (settings && Object.values(settings).some((v) => v !== undefined)) room.configure(seat.id, settings);
      this.log(`[play] room ${code} created (${packs.map((p) => p.id).join(', ')})`);
    });

    on(PlayClientEvent.join, PlayJoinSchema, 'other', ({ code, nickname, spectator, token }) => {
      const entry = this.rooms.get(code);
      if (!entry || entry.room.closed) {
        throw new GameError('ROOM_NOT_FOUND', `There is no room ${code} (it may have closed); check the link, or create a new room.`, 'code');
      }
      if (conn.code && conn.code !== code) leaveCurrent();
      const seat = entry.room.join(conn.roomSocket, { nickname, spectator, token: newToken(), ...(token ? { resumeToken: token } : {}) });
      conn.code = code;
      conn.seat = seat.id;
    });

    on(PlayClientEvent.leave, PlayEmptySchema, 'other', () => {
      current();
      leaveCurrent();
    });

    on(PlayClientEvent.settings, PlaySettingsSchema, 'other', (settings) => {
      const { room, seat } = current();
      room.configure(seat, settings);
    });

    on(PlayClientEvent.start, PlayEmptySchema, 'other', () => {
      const { room, seat } = current();
      room.start(seat);
    });

    on(PlayClientEvent.next, PlayEmptySchema, 'other', () => {
      const { room, seat } = current();
      room.next(seat);
    });

    on(PlayClientEvent.draw, PlayDrawingSchema, 'draw', async ({ round, png }) => {
      const { room, seat, code } = current();
      room.checkDrawing(seat, round, false); // before decoding anything
      const drawing = await decodeDrawing(png);
      // CLIP's guesses and the server's own PNG (kept, and shown to spectators) side by side.
      const t0 = performance.now();
      const [guesses, reencoded] = await Promise.all([
        drawing.ink < BLANK_INK ? Promise.resolve([]) : this.judge.guesses(drawing.image, room.pack),
        reencode(drawing.image),
      ]);
      if (this.rooms.get(code)?.room !== room) return;
      const b64 = reencoded.toString('base64');
      room.liveDrawing(seat, round, b64);
      room.liveGuesses(seat, round, guesses, Math.round((performance.now() - t0) * 10) / 10, b64);
    });

    on(PlayClientEvent.submit, PlayDrawingSchema, 'other', async ({ round, png }) => {
      const { room, seat, code } = current();
      room.checkDrawing(seat, round, true);
      const drawing = await validateDrawing(png);
      if (this.rooms.get(code)?.room !== room) return;
      room.submit(seat, round, drawing.png.toString('base64'));
    });

    on(PlayClientEvent.hallOfFameGet, PlayHallOfFameGetSchema, 'other', async (req) => {
      const packs = await this.packs();
      const inRoom = conn.code ? this.rooms.get(conn.code)?.room.pack.id : undefined;
      const pack = req?.pack ?? inRoom ?? packs[0]!.id;
      if (!this.allPacks.some((p) => p.id === pack)) throw new GameError('INVALID', `There is no prompt pack "${pack}".`, 'pack');
      const groups = this.opts.hallOfFame?.best(pack, 3) ?? [];
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

    socket.on('disconnect', () => {
      const code = conn.code;
      const room = code ? this.rooms.get(code)?.room : undefined;
      if (room && conn.seat) room.disconnect(conn.seat, conn.roomSocket);
      if (code) this.reschedule(code);
    });
  }

  /** What a room asks of the world: judging a round, keeping its best drawings. */
  private effects(code: string): RoomEffects {
    return {
      judge: (req) => {
        const room = this.rooms.get(code)?.room;
        const pack = this.allPacks.find((p) => p.id === req.pack)!;
        this.judge.judgeRound(pack, req.prompt, req.drawings.map((d) => ({ seat: d.seat, png: Buffer.from(d.png, 'base64') })))
          .then(
            (verdicts) => room?.judged(req.round, verdicts),
            (err) => {
              this.log(`[play] room ${code} round ${req.round}: judging failed: ${(err as Error)?.stack ?? err}`);
              room?.judgingFailed(req.round, `The judge failed (${(err as Error)?.message ?? err}); this round scores nothing.`);
            },
          )
          .finally(() => this.reschedule(code));
      },
      roundScored: (result) => {
        const entries = result.entries.filter((e) => e.clipScore > 0);
        if (!this.opts.hallOfFame || !entries.length) return;
        try {
          this.opts.hallOfFame.add(entries.map((e) => ({
            pack: result.pack, prompt: result.prompt.label, nickname: e.nickname, score: e.clipScore, png: Buffer.from(e.png, 'base64'),
          })));
        } catch (err) {
          this.log(`[play] room ${code}: could not save to the hall of fame: ${(err as Error)?.message ?? err}`);
        }
      },
    };
  }

  /** One timer per room, at the room's next deadline; closed rooms are dropped. */
  private reschedule(code: string): void {
    const entry = this.rooms.get(code);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    if (entry.room.closed) {
      this.rooms.delete(code);
      this.log(`[play] room ${code} closed`);
      return;
    }
    const at = entry.room.nextDeadline();
    if (at === null) return;
    entry.timer = setTimeout(() => {
      entry.room.tick();
      this.reschedule(code);
    }, Math.max(0, at - this.clock.now()));
    entry.timer.unref?.();
  }

  private newCode(): string {
    for (;;) {
      let code = '';
      for (let i = 0; i < PLAY_LIMITS.codeLength; i++) code += PLAY_CODE_ALPHABET[randomInt(PLAY_CODE_ALPHABET.length)];
      if (!this.rooms.has(code)) return code;
    }
  }
}

/** 144 random bits, URL-safe: the browser keeps it to get its seat back. */
function newToken(): string {
  return randomBytes(18).toString('base64url');
}
