/**
 * One game room as a pure state machine (in the manner of tldraw sync's room): its state is
 * plain data (`RoomState`, JSON-serialisable, so a later Redis-backed host can keep it
 * elsewhere), time comes from an injected `Clock`, clients are `RoomSocket`s with `send` and
 * `close`, and anything that needs I/O — judging drawings with CLIP, saving the best ones —
 * is asked of an injected `RoomEffects`. The room sets no timers: the adapter (socket.ts)
 * calls `tick()` at `nextDeadline()`, and tests drive it with a fake clock.
 *
 * Phases: lobby → drawing (the clock runs) → collecting (after the bell: final drawings, a
 * short grace) → judging (CLIP) → reveal → next round's drawing … → podium → (start again).
 *
 * @example
 * const room = new Room(Room.initialState({ code, seed, now: clock.now(), packs }), { clock, packs, effects });
 * room.join(socket, { nickname: 'Ada', token });
 * room.start(seatId);
 */
import {
  PLAY_LIMITS, PlayServerEvent,
  type PlayGuess, type PlayJoined, type PlayPhase, type PlayPodium, type PlayReveal, type PlayRoomView,
} from '../protocol';
import { GameError } from './errors';
import type { GamePack, GamePrompt } from './packs';
import { leaderboard, scoreRound, type DrawingVerdict } from './scoring';

export interface Clock {
  /** Milliseconds, monotonic enough for deadlines (Date.now in the server, a counter in tests). */
  now(): number;
}

/** What the room sends; the adapter maps these onto socket.io events. */
export interface RoomMessages {
  [PlayServerEvent.joined]: PlayJoined;
  [PlayServerEvent.left]: { reason: string };
  [PlayServerEvent.state]: PlayRoomView;
  [PlayServerEvent.bell]: { round: number };
  [PlayServerEvent.guesses]: import('../protocol').PlayGuesses;
  [PlayServerEvent.reveal]: PlayReveal;
  [PlayServerEvent.podium]: PlayPodium;
}

/** One client connection as the room sees it. */
export interface RoomSocket {
  send<E extends keyof RoomMessages>(event: E, payload: RoomMessages[E]): void;
  /** The room is done with this connection (its seat was taken over, or it left). */
  close(reason: string): void;
}

/** A round's drawings, to be judged; the adapter answers with `judged` or `judgingFailed`. */
export interface JudgeRequest {
  code: string;
  round: number;
  pack: string;
  prompt: GamePrompt;
  /** PNG bytes as base64, already validated and re-encoded by the server. */
  drawings: { seat: string; png: string }[];
}

/** A judged round, for the hall of fame. */
export interface ScoredRound {
  code: string;
  pack: string;
  prompt: GamePrompt;
  entries: { seat: string; nickname: string; clipScore: number; png: string }[];
}

export interface RoomEffects {
  judge(request: JudgeRequest): void;
  roundScored(result: ScoredRound): void;
}

export interface RoomTiming {
  /** After the bell, final drawings are taken this long (or until every connected player's is in). */
  collectGraceMs: number;
  /** How long the reveal shows before the next round (the host may skip it). */
  revealMs: number;
  /** A judge that has not answered by then fails the round (no points). */
  judgeTimeoutMs: number;
  /** A disconnected host keeps the role this long before it passes on. */
  hostGraceMs: number;
  /** A disconnected seat (with its score) is kept this long for its token. */
  reconnectMs: number;
}

export const DEFAULT_TIMING: RoomTiming = {
  collectGraceMs: 3_000, revealMs: 10_000, judgeTimeoutMs: 30_000, hostGraceMs: 10_000, reconnectMs: PLAY_LIMITS.reconnectMs,
};

export interface RoomDeps {
  clock: Clock;
  /** The packs this room may play (those written for the active model). */
  packs: readonly GamePack[];
  effects: RoomEffects;
  timing?: Partial<RoomTiming>;
}

export interface SeatState {
  id: string;
  token: string;
  nickname: string;
  role: 'player' | 'spectator';
  score: number;
  joinedAt: number;
  connected: boolean;
  /** When the connection dropped (null while connected). */
  droppedAt: number | null;
}

export interface DrawingState {
  /** Re-encoded PNG, base64. */
  png: string;
  at: number;
  /** Sent at or after the bell (`play:submit`) rather than a live canvas (`play:draw`). */
  final: boolean;
}

export interface RoundState {
  number: number;
  prompt: GamePrompt;
  startedAt: number;
  endsAt: number;
  drawings: Record<string, DrawingState>;
}

/** Everything about a room, as plain data. */
export interface RoomState {
  version: 1;
  code: string;
  createdAt: number;
  phase: PlayPhase;
  /** When the current phase ends by the clock (null: it waits for someone). */
  phaseEndsAt: number | null;
  settings: { rounds: number; seconds: number; pack: string };
  hostSeat: string | null;
  seats: SeatState[];
  nextSeatNumber: number;
  round: RoundState | null;
  roundsPlayed: number;
  /** Labels of the prompts this game has used, so a game does not repeat one until all are used. */
  usedPrompts: string[];
  /** The prompt picker's PRNG state (mulberry32), so picks are reproducible from the seed. */
  rng: number;
  lastReveal: PlayReveal | null;
  closed: boolean;
}

export interface JoinRequest {
  nickname: string;
  spectator?: boolean;
  /** A fresh token for a new seat (the adapter makes it unguessable). */
  token: string;
  /** A token from an earlier join: take that seat back, with its score. */
  resumeToken?: string;
}

const dataUrl = (b64: string) => `data:image/png;base64,${b64}`;

export class Room {
  readonly state: RoomState;
  private readonly sockets = new Map<string, RoomSocket>();
  private readonly timing: RoomTiming;

  constructor(state: RoomState, private readonly deps: RoomDeps) {
    this.state = state;
    this.timing = { ...DEFAULT_TIMING, ...deps.timing };
    if (!deps.packs.length) throw new GameError('NO_PACK', 'A room needs at least one prompt pack.');
  }

  /** A new room's state: in the lobby, default settings, the first pack. */
  static initialState(init: { code: string; seed: number; now: number; packs: readonly GamePack[] }): RoomState {
    const pack = init.packs[0];
    if (!pack) throw new GameError('NO_PACK', 'A room needs at least one prompt pack.');
    return {
      version: 1, code: init.code, createdAt: init.now, phase: 'lobby', phaseEndsAt: null,
      settings: { rounds: PLAY_LIMITS.rounds.default, seconds: PLAY_LIMITS.seconds.default, pack: pack.id },
      hostSeat: null, seats: [], nextSeatNumber: 1, round: null, roundsPlayed: 0, usedPrompts: [],
      rng: init.seed >>> 0, lastReveal: null, closed: false,
    };
  }

  /**
   * A room resumed from its saved state by another server (its owner stopped without closing
   * it). `attached` gives the connections that can still be reached, by seat id; every other
   * connected seat counts as dropped from now, so it gets the usual reconnect and host grace.
   * A round that was being judged is judged again (the verdicts died with the old owner).
   */
  static restore(state: RoomState, deps: RoomDeps, attached: ReadonlyMap<string, RoomSocket>): Room {
    const room = new Room(state, deps);
    const now = room.now();
    for (const seat of state.seats) {
      const socket = attached.get(seat.id);
      if (socket && seat.connected) room.sockets.set(seat.id, socket);
      else if (seat.connected) {
        seat.connected = false;
        seat.droppedAt = now;
      }
    }
    if (state.phase === 'judging' && state.round) room.beginJudging();
    else room.broadcastState();
    return room;
  }

  get code(): string {
    return this.state.code;
  }

  get closed(): boolean {
    return this.state.closed;
  }

  get pack(): GamePack {
    return this.deps.packs.find((p) => p.id === this.state.settings.pack) ?? this.deps.packs[0]!;
  }

  seat(id: string): SeatState | undefined {
    return this.state.seats.find((s) => s.id === id);
  }

  private now(): number {
    return this.deps.clock.now();
  }

  // ---- joining and leaving ------------------------------------------------------------------

  /** Seat a connection (or give it back its seat by token). Throws GameError. */
  join(socket: RoomSocket, req: JoinRequest): SeatState {
    const s = this.state;
    if (s.closed) throw new GameError('ROOM_NOT_FOUND', `Room ${s.code} has closed.`, 'code');
    const resumed = req.resumeToken ? s.seats.find((x) => x.token === req.resumeToken) : undefined;
    let seat: SeatState;
    if (resumed) {
      seat = resumed;
      const old = this.sockets.get(seat.id);
      if (old && old !== socket) old.close('This seat was opened in another window.');
      seat.connected = true;
      seat.droppedAt = null;
    } else {
      const role = req.spectator ? 'spectator' : 'player';
      const count = s.seats.filter((x) => x.role === role).length;
      const limit = role === 'player' ? PLAY_LIMITS.players : PLAY_LIMITS.spectators;
      if (count >= limit) {
        throw new GameError('ROOM_FULL', role === 'player'
          ? `Room ${s.code} already has ${limit} players; join as a spectator to watch.`
          : `Room ${s.code} already has ${limit} spectators.`, 'spectator');
      }
      const key = req.nickname.toLocaleLowerCase();
      if (s.seats.some((x) => x.nickname.toLocaleLowerCase() === key)) {
        throw new GameError('NICKNAME_TAKEN', `Someone in room ${s.code} is already called "${req.nickname}"; pick another nickname.`, 'nickname');
      }
      seat = {
        id: `s${s.nextSeatNumber++}`, token: req.token, nickname: req.nickname, role, score: 0,
        joinedAt: this.now(), connected: true, droppedAt: null,
      };
      s.seats.push(seat);
    }
    if (seat.role === 'player' && (s.hostSeat === null || !this.seat(s.hostSeat))) s.hostSeat = seat.id;
    this.sockets.set(seat.id, socket);
    socket.send(PlayServerEvent.joined, { code: s.code, seat: seat.id, token: seat.token, role: seat.role, room: this.view() });
    // Catch up on what is on screen for everyone else.
    if (s.phase === 'reveal' && s.lastReveal) socket.send(PlayServerEvent.reveal, s.lastReveal);
    if (s.phase === 'podium') socket.send(PlayServerEvent.podium, this.podium());
    this.broadcastState();
    return seat;
  }

  /** The player leaves for good: the seat and its score go, the host role passes on. */
  leave(seatId: string): void {
    const seat = this.requireSeat(seatId);
    this.sockets.get(seatId)?.send(PlayServerEvent.left, { reason: 'You left the room.' });
    this.removeSeat(seat);
    this.afterPresenceChange();
  }

  /** A connection dropped: the seat waits `reconnectMs` for its token. Stale sockets are ignored. */
  disconnect(seatId: string, socket: RoomSocket): void {
    if (this.sockets.get(seatId) !== socket) return;
    this.sockets.delete(seatId);
    const seat = this.seat(seatId);
    if (!seat) return;
    seat.connected = false;
    seat.droppedAt = this.now();
    this.afterPresenceChange();
  }

  private removeSeat(seat: SeatState): void {
    const s = this.state;
    s.seats = s.seats.filter((x) => x !== seat);
    this.sockets.delete(seat.id);
    if (s.round) delete s.round.drawings[seat.id];
    if (s.hostSeat === seat.id) this.passHost();
  }

  /** The host role goes to the longest-seated connected player (none: the next player to join). */
  private passHost(): void {
    const s = this.state;
    const next = s.seats.find((x) => x.role === 'player' && x.connected && x.id !== s.hostSeat);
    s.hostSeat = next?.id ?? null;
  }

  private afterPresenceChange(): void {
    const s = this.state;
    if (!s.seats.length) {
      s.closed = true;
      return;
    }
    if (s.phase === 'collecting' && this.allFinalIn()) this.beginJudging();
    else this.broadcastState();
  }

  // ---- the host's controls ------------------------------------------------------------------

  configure(seatId: string, patch: { rounds?: number; seconds?: number; pack?: string }): void {
    this.requireHost(seatId, 'change the settings');
    const s = this.state;
    if (s.phase !== 'lobby' && s.phase !== 'podium') throw new GameError('WRONG_PHASE', 'Settings can be changed between games only.');
    if (patch.pack !== undefined && !this.deps.packs.some((p) => p.id === patch.pack)) {
      throw new GameError('INVALID', `There is no prompt pack "${patch.pack}" for this model; choose one of ${this.deps.packs.map((p) => p.id).join(', ')}.`, 'pack');
    }
    s.settings = { ...s.settings, ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) };
    this.broadcastState();
  }

  /** Start a game (from the lobby, or again from the podium with scores reset). */
  start(seatId: string): void {
    this.requireHost(seatId, 'start the game');
    const s = this.state;
    if (s.phase !== 'lobby' && s.phase !== 'podium') throw new GameError('WRONG_PHASE', 'A game is already running.');
    if (!s.seats.some((x) => x.role === 'player' && x.connected)) throw new GameError('WRONG_PHASE', 'There is nobody to draw.');
    for (const seat of s.seats) seat.score = 0;
    s.roundsPlayed = 0;
    s.usedPrompts = [];
    s.lastReveal = null;
    this.startRound();
  }

  /** Skip the rest of the reveal. */
  next(seatId: string): void {
    this.requireHost(seatId, 'move on');
    if (this.state.phase !== 'reveal') throw new GameError('WRONG_PHASE', 'There is no reveal to skip.');
    this.afterReveal();
  }

  // ---- drawings -----------------------------------------------------------------------------

  /**
   * Throws unless `seatId` may send a drawing for `round` now: a player, in that round,
   * before the bell (live) or before judging (final). Call it before decoding anything.
   */
  checkDrawing(seatId: string, round: number, final: boolean): void {
    const seat = this.requireSeat(seatId);
    if (seat.role !== 'player') throw new GameError('NOT_A_PLAYER', 'Spectators watch; join as a player to draw.');
    const s = this.state;
    const current = s.round?.number ?? 0;
    if (round > current || (round === current && s.phase === 'lobby')) {
      throw new GameError('INVALID', `There is no round ${round} yet (the current round is ${current}).`, 'round');
    }
    const open = round === current && (s.phase === 'drawing' || (final && s.phase === 'collecting'));
    if (!open) {
      throw new GameError('LATE', final
        ? `Round ${round} is over: final drawings are taken until ${this.timing.collectGraceMs / 1000} s after the bell.`
        : `Round ${round}'s clock has run out.`, 'round');
    }
  }

  /** A live canvas (validated, re-encoded, base64): kept as the fallback final drawing. */
  liveDrawing(seatId: string, round: number, png: string): void {
    this.checkDrawing(seatId, round, false);
    const drawings = this.state.round!.drawings;
    if (drawings[seatId]?.final) return; // a final drawing is never replaced by a live one
    drawings[seatId] = { png, at: this.now(), final: false };
  }

  /** CLIP's guesses for a live canvas: to the player and to the spectators (with the picture). */
  liveGuesses(seatId: string, round: number, guesses: PlayGuess[], scoringMs: number, png: string): void {
    const s = this.state;
    const seat = this.seat(seatId);
    if (!seat || s.round?.number !== round || (s.phase !== 'drawing' && s.phase !== 'collecting')) return;
    const payload = { round, seat: seatId, nickname: seat.nickname, guesses, scoringMs };
    this.sockets.get(seatId)?.send(PlayServerEvent.guesses, payload);
    for (const spectator of s.seats.filter((x) => x.role === 'spectator')) {
      this.sockets.get(spectator.id)?.send(PlayServerEvent.guesses, { ...payload, image: dataUrl(png) });
    }
  }

  /** The final drawing (at the bell). When every connected player's is in, judging starts. */
  submit(seatId: string, round: number, png: string): void {
    this.checkDrawing(seatId, round, true);
    this.state.round!.drawings[seatId] = { png, at: this.now(), final: true };
    if (this.state.phase === 'collecting' && this.allFinalIn()) this.beginJudging();
    else this.broadcastState();
  }

  private allFinalIn(): boolean {
    const r = this.state.round;
    return !!r && this.state.seats.filter((x) => x.role === 'player' && x.connected).every((x) => r.drawings[x.id]?.final);
  }

  // ---- the clock ----------------------------------------------------------------------------

  /** When `tick` next has something to do (null: nothing is timed). */
  nextDeadline(): number | null {
    const s = this.state;
    const times: number[] = [];
    if (s.phaseEndsAt !== null) times.push(s.phaseEndsAt);
    for (const seat of s.seats) if (seat.droppedAt !== null) times.push(seat.droppedAt + this.timing.reconnectMs);
    const host = s.hostSeat ? this.seat(s.hostSeat) : undefined;
    // Only when someone could take over; otherwise the deadline would pass with nothing to do.
    const heir = s.seats.some((x) => x.role === 'player' && x.connected && x !== host);
    if (host?.droppedAt != null && heir) times.push(host.droppedAt + this.timing.hostGraceMs);
    return times.length ? Math.min(...times) : null;
  }

  /** Do whatever the clock says is due: expire seats, pass the host role, end phases. */
  tick(): void {
    const s = this.state;
    const now = this.now();
    let changed = false;
    for (const seat of [...s.seats]) {
      if (seat.droppedAt !== null && now >= seat.droppedAt + this.timing.reconnectMs) {
        this.removeSeat(seat);
        changed = true;
      }
    }
    const host = s.hostSeat ? this.seat(s.hostSeat) : undefined;
    if (host?.droppedAt != null && now >= host.droppedAt + this.timing.hostGraceMs) {
      const before = s.hostSeat;
      this.passHost();
      if (s.hostSeat === null) s.hostSeat = before; // nobody to take over: keep it until someone is
      else changed = true;
    }
    if (!s.seats.length) {
      s.closed = true;
      return;
    }
    // Phases chain (a clock that jumped may pass several deadlines); each step moves forward.
    for (let guard = 0; guard < 8 && s.phaseEndsAt !== null && now >= s.phaseEndsAt; guard++) {
      changed = false;
      if (s.phase === 'drawing') this.bell();
      else if (s.phase === 'collecting') this.beginJudging();
      else if (s.phase === 'judging') this.finishRound({}, 'The judge did not answer in time; this round scores nothing.');
      else if (s.phase === 'reveal') this.afterReveal();
      else s.phaseEndsAt = null;
    }
    if (changed) this.broadcastState();
  }

  private startRound(): void {
    const s = this.state;
    const pack = this.pack;
    let unused = pack.prompts.filter((p) => !s.usedPrompts.includes(p.label));
    if (!unused.length) {
      s.usedPrompts = [];
      unused = pack.prompts;
    }
    const prompt = unused[Math.floor(this.random() * unused.length)]!;
    s.usedPrompts.push(prompt.label);
    const now = this.now();
    s.round = { number: s.roundsPlayed + 1, prompt, startedAt: now, endsAt: now + s.settings.seconds * 1000, drawings: {} };
    s.phase = 'drawing';
    s.phaseEndsAt = s.round.endsAt;
    this.broadcastState();
  }

  private bell(): void {
    const s = this.state;
    s.phase = 'collecting';
    s.phaseEndsAt = s.round!.endsAt + this.timing.collectGraceMs;
    this.broadcast(PlayServerEvent.bell, { round: s.round!.number });
    if (this.allFinalIn()) this.beginJudging();
    else this.broadcastState();
  }

  private beginJudging(): void {
    const s = this.state;
    const r = s.round!;
    const drawings = s.seats.filter((x) => x.role === 'player' && r.drawings[x.id]).map((x) => ({ seat: x.id, png: r.drawings[x.id]!.png }));
    if (!drawings.length) return this.finishRound({});
    s.phase = 'judging';
    s.phaseEndsAt = this.now() + this.timing.judgeTimeoutMs;
    this.broadcastState();
    this.deps.effects.judge({ code: s.code, round: r.number, pack: this.pack.id, prompt: r.prompt, drawings });
  }

  /** The judge's verdicts for `round`, by seat. Stale answers (another round, timed out) are ignored. */
  judged(round: number, verdicts: Record<string, DrawingVerdict>): boolean {
    if (this.state.phase !== 'judging' || this.state.round?.number !== round) return false;
    this.finishRound(verdicts);
    return true;
  }

  judgingFailed(round: number, message: string): boolean {
    if (this.state.phase !== 'judging' || this.state.round?.number !== round) return false;
    this.finishRound({}, message);
    return true;
  }

  private finishRound(verdicts: Record<string, DrawingVerdict>, error?: string): void {
    const s = this.state;
    const r = s.round!;
    const players = s.seats.filter((x) => x.role === 'player');
    const entries = scoreRound(players.map((p) => {
      const d = r.drawings[p.id];
      return { seat: p.id, nickname: p.nickname, image: d ? dataUrl(d.png) : null, verdict: verdicts[p.id] ?? null };
    }), error);
    for (const e of entries) this.seat(e.seat)!.score += e.points;
    s.roundsPlayed = r.number;
    s.lastReveal = {
      round: r.number, rounds: s.settings.rounds, prompt: r.prompt.label, entries, leaderboard: this.leaderboard(),
      ...(error ? { error } : {}),
    };
    s.phase = 'reveal';
    s.phaseEndsAt = this.now() + this.timing.revealMs;
    this.broadcast(PlayServerEvent.reveal, s.lastReveal);
    this.broadcastState();
    const judged = entries.filter((e) => e.rank !== null && r.drawings[e.seat]);
    if (judged.length) {
      this.deps.effects.roundScored({
        code: s.code, pack: this.pack.id, prompt: r.prompt,
        entries: judged.map((e) => ({ seat: e.seat, nickname: e.nickname, clipScore: e.clipScore, png: r.drawings[e.seat]!.png })),
      });
    }
  }

  private afterReveal(): void {
    const s = this.state;
    if (s.roundsPlayed < s.settings.rounds) return this.startRound();
    s.phase = 'podium';
    s.phaseEndsAt = null;
    s.round = null;
    this.broadcast(PlayServerEvent.podium, this.podium());
    this.broadcastState();
  }

  // ---- views --------------------------------------------------------------------------------

  leaderboard() {
    return leaderboard(this.state.seats.filter((x) => x.role === 'player').map((x) => ({ seat: x.id, nickname: x.nickname, score: x.score })));
  }

  podium(): PlayPodium {
    return { leaderboard: this.leaderboard(), rounds: this.state.roundsPlayed };
  }

  /** What every client sees of the room (no tokens, no drawings). */
  view(): PlayRoomView {
    const s = this.state;
    const inRound = s.round && s.phase !== 'lobby' && s.phase !== 'podium';
    return {
      code: s.code, phase: s.phase, settings: { ...s.settings },
      packs: this.deps.packs.map((p) => ({ id: p.id, title: p.title, prompts: p.prompts.length, model: p.models.join(', ') })),
      round: s.round?.number ?? s.roundsPlayed,
      prompt: inRound ? s.round!.prompt.label : null,
      remainingMs: s.phaseEndsAt !== null ? Math.max(0, s.phaseEndsAt - this.now()) : null,
      seats: s.seats.map((x) => ({
        seat: x.id, nickname: x.nickname, role: x.role, host: x.id === s.hostSeat, score: x.score, connected: x.connected,
        submitted: !!(inRound && s.round!.drawings[x.id]?.final),
      })),
    };
  }

  private broadcast<E extends keyof RoomMessages>(event: E, payload: RoomMessages[E]): void {
    for (const socket of this.sockets.values()) socket.send(event, payload);
  }

  private broadcastState(): void {
    this.broadcast(PlayServerEvent.state, this.view());
  }

  private requireSeat(seatId: string): SeatState {
    const seat = this.seat(seatId);
    if (!seat) throw new GameError('NOT_IN_ROOM', 'You are not in this room (your seat may have expired); join again.');
    return seat;
  }

  private requireHost(seatId: string, what: string): void {
    this.requireSeat(seatId);
    if (this.state.hostSeat !== seatId) throw new GameError('NOT_HOST', `Only the host can ${what}.`);
  }

  /** mulberry32 over the state's PRNG word: reproducible picks from the room's seed. */
  private random(): number {
    let t = (this.state.rng = (this.state.rng + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}
