/**
 * The game room as a state machine, driven with a fake clock, fake sockets and a stand-in
 * for the judge's answers (the real judge is exercised in game-socket.test.ts): whole games,
 * the bell and late drawings, leaving, dropping and rejoining by token, host hand-over, and a
 * room whose state went through JSON carrying on.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PLAY_LIMITS, type PlayError, type PlayGuesses, type PlayPodium, type PlayReveal, type PlayRoomView } from '../../server/protocol';
import { GameError } from '../../server/game/errors';
import { loadPacks, packsForModel } from '../../server/game/packs';
import { Room, type JudgeRequest, type RoomMessages, type RoomSocket, type RoomState, type ScoredRound } from '../../server/game/room';
import type { DrawingVerdict } from '../../server/game/scoring';

const PACKS = packsForModel(loadPacks(), 'demo-clip');
const TIMING = { collectGraceMs: 3_000, revealMs: 5_000, judgeTimeoutMs: 20_000, hostGraceMs: 10_000, reconnectMs: 60_000 };

class FakeClock {
  t = 1_700_000_000_000;
  now = () => this.t;
}

class FakeSocket implements RoomSocket {
  messages: { event: string; payload: unknown }[] = [];
  closedWith: string | null = null;
  constructor(readonly name: string) {}
  send<E extends keyof RoomMessages>(event: E, payload: RoomMessages[E]): void {
    this.messages.push({ event, payload: structuredClone(payload) });
  }
  close(reason: string): void {
    this.closedWith = reason;
  }
  all<T>(event: string): T[] {
    return this.messages.filter((m) => m.event === event).map((m) => m.payload as T);
  }
  last<T>(event: string): T {
    const list = this.all<T>(event);
    assert.ok(list.length, `${this.name} got no ${event}`);
    return list.at(-1)!;
  }
  get state(): PlayRoomView {
    return this.last<PlayRoomView>('play:state');
  }
}

class FakeEffects {
  judgeRequests: JudgeRequest[] = [];
  scored: ScoredRound[] = [];
  judge = (r: JudgeRequest) => void this.judgeRequests.push(structuredClone(r));
  roundScored = (r: ScoredRound) => void this.scored.push(structuredClone(r));
}

const verdict = (clipScore: number, extra: Partial<DrawingVerdict> = {}): DrawingVerdict => ({
  probability: clipScore / 100, clipScore, guesses: [{ label: 'house', probability: clipScore / 100 }], penalty: null, moderated: false, blank: false, ...extra,
});

let tokens = 0;
const token = () => `token-${String(++tokens).padStart(16, '0')}`;
const png = (name: string) => Buffer.from(`png of ${name}`).toString('base64');

function setup(seed = 42) {
  const clock = new FakeClock();
  const effects = new FakeEffects();
  const state = Room.initialState({ code: 'ABCDEFGHJK', seed, now: clock.now(), packs: PACKS });
  const room = new Room(state, { clock, packs: PACKS, effects, timing: TIMING });
  /** Advance the clock as the adapter's timer would: tick at each deadline on the way. */
  const run = (ms: number) => {
    const target = clock.t + ms;
    for (let d = room.nextDeadline(); d !== null && d <= target; d = room.nextDeadline()) {
      clock.t = Math.max(clock.t, d);
      room.tick();
      if (room.closed) break;
    }
    clock.t = target;
  };
  const join = (name: string, opts: { spectator?: boolean; resumeToken?: string } = {}) => {
    const socket = new FakeSocket(name);
    const seat = room.join(socket, { nickname: name, token: token(), ...opts });
    return { socket, seat };
  };
  return { clock, effects, room, run, join };
}

function expectGameError(fn: () => unknown, code: string, field?: string): GameError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof GameError, `expected a GameError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (field !== undefined) assert.equal(err.field, field);
    return err;
  }
  assert.fail(`expected GameError ${code}`);
}

describe('game room', () => {
  it('plays a whole two-round game: prompts, live guesses, the bell, judging, reveal, leaderboard, podium', () => {
    const { room, effects, run, join, clock } = setup();
    const ada = join('Ada'), bo = join('Bo'), cy = join('Cy'), eve = join('Eve', { spectator: true });
    assert.equal(ada.socket.last<{ role: string; token: string }>('play:joined').role, 'player');
    assert.equal(eve.socket.last<{ role: string }>('play:joined').role, 'spectator');
    assert.ok(ada.socket.state.seats.find((s) => s.nickname === 'Ada')!.host, 'the first player is the host');
    assert.equal(ada.socket.state.seats.length, 4);

    expectGameError(() => room.start(bo.seat.id), 'NOT_HOST');
    expectGameError(() => room.configure(ada.seat.id, { pack: 'no-such-pack' }), 'INVALID', 'pack');
    room.configure(ada.seat.id, { rounds: 2, seconds: 30 });
    assert.deepEqual(bo.socket.state.settings, { rounds: 2, seconds: 30, pack: 'demo-doodles' });
    room.start(ada.seat.id);
    expectGameError(() => room.configure(ada.seat.id, { rounds: 3 }), 'WRONG_PHASE');

    const s1 = bo.socket.state;
    assert.equal(s1.phase, 'drawing');
    assert.equal(s1.round, 1);
    assert.ok(PACKS[0]!.prompts.some((p) => p.label === s1.prompt), `prompt ${s1.prompt} is from the pack`);
    assert.equal(s1.remainingMs, 30_000);
    assert.equal(eve.socket.state.prompt, s1.prompt, 'spectators see the prompt too');

    // Live drawing and guesses: the player gets its guesses, spectators get them with the picture.
    expectGameError(() => room.liveDrawing(eve.seat.id, 1, png('eve')), 'NOT_A_PLAYER');
    expectGameError(() => room.liveDrawing(ada.seat.id, 2, png('ada')), 'INVALID', 'round');
    room.liveDrawing(ada.seat.id, 1, png('ada live'));
    room.liveGuesses(ada.seat.id, 1, [{ label: 'house', probability: 0.5 }], 12, png('ada live'));
    const mine = ada.socket.last<PlayGuesses>('play:guesses');
    assert.equal(mine.seat, ada.seat.id);
    assert.equal(mine.image, undefined, 'a player is not sent their own picture back');
    const watched = eve.socket.last<PlayGuesses>('play:guesses');
    assert.equal(watched.nickname, 'Ada');
    assert.equal(watched.image, `data:image/png;base64,${png('ada live')}`);
    assert.equal(bo.socket.all('play:guesses').length, 0, 'other players do not see Ada\'s guesses');

    // The bell: everyone hears it; final drawings come in; the last one starts judging.
    run(29_999);
    assert.equal(room.state.phase, 'drawing');
    run(1);
    assert.equal(room.state.phase, 'collecting');
    for (const p of [ada, bo, cy, eve]) assert.deepEqual(p.socket.last('play:bell'), { round: 1 });
    expectGameError(() => room.liveDrawing(bo.seat.id, 1, png('bo')), 'LATE', 'round');
    room.submit(ada.seat.id, 1, png('ada final'));
    room.submit(bo.seat.id, 1, png('bo final'));
    assert.equal(room.state.phase, 'collecting');
    assert.ok(ada.socket.state.seats.find((s) => s.nickname === 'Bo')!.submitted);
    room.submit(cy.seat.id, 1, png('cy final'));
    assert.equal(room.state.phase, 'judging', 'every connected player is in: no need to wait for the grace');
    assert.equal(effects.judgeRequests.length, 1);
    const req = effects.judgeRequests[0]!;
    assert.equal(req.round, 1);
    assert.equal(req.prompt.label, s1.prompt);
    assert.deepEqual(req.drawings.map((d) => d.png), [png('ada final'), png('bo final'), png('cy final')], 'final drawings replace live ones');

    // A drawing after judging began is late.
    expectGameError(() => room.submit(cy.seat.id, 1, png('cy again')), 'LATE', 'round');

    assert.equal(room.judged(1, { [ada.seat.id]: verdict(80), [bo.seat.id]: verdict(40), [cy.seat.id]: verdict(10) }), true);
    assert.equal(room.judged(1, {}), false, 'a second answer for the same round is ignored');
    const reveal = bo.socket.last<PlayReveal>('play:reveal');
    assert.equal(reveal.prompt, s1.prompt);
    assert.deepEqual(reveal.entries.map((e) => [e.nickname, e.clipScore, e.bonus, e.points, e.rank]), [
      ['Ada', 80, 20, 100, 1], ['Bo', 40, 10, 50, 2], ['Cy', 10, 0, 10, 3],
    ]);
    assert.equal(reveal.entries[0]!.image, `data:image/png;base64,${png('ada final')}`);
    assert.deepEqual(reveal.leaderboard.map((r) => [r.nickname, r.score, r.rank]), [['Ada', 100, 1], ['Bo', 50, 2], ['Cy', 10, 3]]);
    assert.deepEqual(eve.socket.last<PlayReveal>('play:reveal'), reveal, 'spectators see the reveal');
    assert.equal(effects.scored.length, 1);
    assert.deepEqual(effects.scored[0]!.entries.map((e) => [e.nickname, e.clipScore]), [['Ada', 80], ['Bo', 40], ['Cy', 10]]);

    // Round 2 after the reveal, with another prompt. Cy sends only a live canvas, Bo nothing.
    run(TIMING.revealMs);
    const s2 = ada.socket.state;
    assert.equal(s2.phase, 'drawing');
    assert.equal(s2.round, 2);
    assert.notEqual(s2.prompt, s1.prompt, 'a game does not repeat a prompt');
    room.liveDrawing(cy.seat.id, 2, png('cy live 2'));
    clock.t += 5_000;
    room.submit(ada.seat.id, 2, png('ada 2'));
    run(25_000);
    assert.equal(room.state.phase, 'collecting');
    run(TIMING.collectGraceMs);
    assert.equal(room.state.phase, 'judging', 'the grace ended without Bo');
    const req2 = effects.judgeRequests[1]!;
    assert.deepEqual(req2.drawings.map((d) => [d.seat, d.png]), [[ada.seat.id, png('ada 2')], [cy.seat.id, png('cy live 2')]],
      'a missing final drawing falls back to the last live canvas; no drawing, no entry');
    room.judged(2, { [ada.seat.id]: verdict(30), [cy.seat.id]: verdict(60) });
    const reveal2 = ada.socket.last<PlayReveal>('play:reveal');
    const bo2 = reveal2.entries.find((e) => e.nickname === 'Bo')!;
    assert.deepEqual([bo2.points, bo2.note, bo2.image], [0, 'no drawing', null]);
    assert.deepEqual(reveal2.leaderboard.map((r) => [r.nickname, r.score]), [['Ada', 130], ['Cy', 90], ['Bo', 50]]);

    // Podium after the last reveal; the host may start again with scores reset.
    run(TIMING.revealMs);
    assert.equal(room.state.phase, 'podium');
    const podium = cy.socket.last<PlayPodium>('play:podium');
    assert.deepEqual(podium.leaderboard.map((r) => [r.nickname, r.score, r.rank]), [['Ada', 130, 1], ['Cy', 90, 2], ['Bo', 50, 3]]);
    assert.equal(podium.rounds, 2);
    assert.equal(room.nextDeadline(), null, 'nothing is timed on the podium');
    room.start(ada.seat.id);
    assert.equal(room.state.phase, 'drawing');
    assert.equal(room.state.round!.number, 1);
    assert.ok(ada.socket.state.seats.every((s) => s.score === 0));
  });

  it('a late joiner sees the reveal; the host may skip it; the judge timing out scores the round as nothing', () => {
    const { room, effects, run, join } = setup(7);
    const ada = join('Ada');
    room.configure(ada.seat.id, { rounds: 2, seconds: 10 });
    room.start(ada.seat.id);
    room.liveDrawing(ada.seat.id, 1, png('a'));
    run(10_000 + TIMING.collectGraceMs);
    assert.equal(room.state.phase, 'judging');
    assert.equal(effects.judgeRequests.length, 1);
    run(TIMING.judgeTimeoutMs);
    const reveal = ada.socket.last<PlayReveal>('play:reveal');
    assert.match(reveal.error ?? '', /did not answer/);
    assert.deepEqual(reveal.entries.map((e) => [e.points, e.note]), [[0, 'not judged']]);
    assert.equal(room.judged(1, { [ada.seat.id]: verdict(90) }), false, 'a judge answering after the timeout is ignored');
    const late = join('Late');
    assert.deepEqual(late.socket.last<PlayReveal>('play:reveal').round, 1, 'a joiner during the reveal is shown it');
    expectGameError(() => room.next(late.seat.id), 'NOT_HOST');
    room.next(ada.seat.id);
    assert.equal(room.state.phase, 'drawing');
    assert.equal(room.state.round!.number, 2);
    assert.ok(late.socket.state.seats.some((s) => s.nickname === 'Late' && s.role === 'player'), 'a late joiner plays from now on');
  });

  it('refuses a duplicate nickname, a thirteenth player, and spectators drawing', () => {
    const { room, join } = setup();
    join('Ada');
    expectGameError(() => join('ADA'), 'NICKNAME_TAKEN', 'nickname');
    for (let i = 2; i <= PLAY_LIMITS.players; i++) join(`P${i}`);
    expectGameError(() => join('Thirteen'), 'ROOM_FULL', 'spectator');
    const eve = join('Eve', { spectator: true });
    assert.equal(eve.seat.role, 'spectator');
    expectGameError(() => room.submit(eve.seat.id, 1, png('x')), 'NOT_A_PLAYER');
  });

  it('a dropped player rejoins within 60 s into the same seat with the same score; after that the seat is gone', () => {
    const { room, run, join, effects } = setup(3);
    const ada = join('Ada'), bo = join('Bo');
    room.configure(ada.seat.id, { rounds: 3, seconds: 20 });
    room.start(ada.seat.id);
    room.submit(bo.seat.id, 1, png('bo'));
    room.submit(ada.seat.id, 1, png('ada'));
    run(20_000);
    room.judged(1, { [ada.seat.id]: verdict(50), [bo.seat.id]: verdict(70) });
    const boScore = room.seat(bo.seat.id)!.score;
    assert.equal(boScore, 90);

    // Bo's connection drops (a reload) during the reveal; the seat waits for the token.
    room.disconnect(bo.seat.id, bo.socket);
    assert.equal(ada.socket.state.seats.find((s) => s.nickname === 'Bo')!.connected, false);
    run(59_000);
    const again = new FakeSocket('Bo again');
    const seat = room.join(again, { nickname: 'ignored', token: token(), resumeToken: bo.seat.token });
    assert.equal(seat.id, bo.seat.id);
    assert.equal(seat.nickname, 'Bo');
    assert.equal(seat.score, boScore);
    assert.equal(again.last<{ seat: string }>('play:joined').seat, bo.seat.id);
    assert.equal(again.state.phase, room.state.phase, 'the rejoined client is told where the game is');
    assert.ok(again.state.seats.find((s) => s.seat === bo.seat.id)!.connected);

    // The old connection's late disconnect does not unseat the new one.
    room.disconnect(bo.seat.id, bo.socket);
    assert.ok(room.seat(bo.seat.id)!.connected);

    // Opening the seat in a second window closes the first.
    const third = new FakeSocket('Bo third');
    room.join(third, { nickname: 'Bo', token: token(), resumeToken: bo.seat.token });
    assert.match(again.closedWith ?? '', /another window/);

    // Gone for longer than 60 s: the seat and score are dropped; the token then gets a fresh seat.
    room.disconnect(bo.seat.id, third);
    run(60_000);
    assert.equal(room.seat(bo.seat.id), undefined);
    assert.ok(!ada.socket.state.seats.some((s) => s.nickname === 'Bo'));
    const fresh = room.join(new FakeSocket('Bo fresh'), { nickname: 'Bo', token: token(), resumeToken: bo.seat.token });
    assert.notEqual(fresh.id, bo.seat.id);
    assert.equal(fresh.score, 0);
    assert.ok(effects.judgeRequests.length >= 1);
  });

  it('waits for a dropped player only while they are away: the rest finishing ends collecting early', () => {
    const { room, run, join } = setup(5);
    const ada = join('Ada'), bo = join('Bo');
    room.configure(ada.seat.id, { rounds: 1, seconds: 10 });
    room.start(ada.seat.id);
    run(10_000);
    room.submit(ada.seat.id, 1, png('ada'));
    assert.equal(room.state.phase, 'collecting', 'Bo is still connected and may send a final drawing');
    room.disconnect(bo.seat.id, bo.socket);
    assert.equal(room.state.phase, 'judging', 'Bo dropped: nobody connected is missing');
  });

  it('passes the host role on when the host leaves, or stays away past the grace', () => {
    const { room, run, join } = setup();
    const ada = join('Ada'), bo = join('Bo'), cy = join('Cy');
    room.leave(ada.seat.id);
    assert.deepEqual(ada.socket.last('play:left'), { reason: 'You left the room.' });
    assert.equal(room.state.hostSeat, bo.seat.id);
    assert.ok(cy.socket.state.seats.find((s) => s.nickname === 'Bo')!.host);
    assert.ok(!room.seat(ada.seat.id), 'leaving gives the seat up at once');

    room.disconnect(bo.seat.id, bo.socket);
    run(TIMING.hostGraceMs - 1);
    assert.equal(room.state.hostSeat, bo.seat.id, 'a reload does not cost the host role');
    run(1);
    assert.equal(room.state.hostSeat, cy.seat.id);
    room.configure(cy.seat.id, { rounds: 1 });
    expectGameError(() => room.configure(bo.seat.id, { rounds: 2 }), 'NOT_HOST');

    // The last player leaving closes the room.
    room.leave(cy.seat.id);
    run(60_000);
    assert.equal(room.closed, true);
    expectGameError(() => join('Dan'), 'ROOM_NOT_FOUND', 'code');
  });

  it('a host alone who drops keeps the role (nobody to take it) and the room does not spin on a passed deadline', () => {
    const { room, join, clock } = setup();
    const ada = join('Ada');
    join('Eve', { spectator: true });
    room.disconnect(ada.seat.id, ada.socket);
    clock.t += TIMING.hostGraceMs;
    assert.equal(room.nextDeadline(), ada.seat.droppedAt! + TIMING.reconnectMs, 'only the seat expiry is timed');
    room.tick();
    assert.equal(room.state.hostSeat, ada.seat.id);
  });

  it('state is plain data: a room rebuilt from its JSON carries the game on', () => {
    const { room, join, effects, clock } = setup(11);
    const ada = join('Ada'), bo = join('Bo');
    room.configure(ada.seat.id, { rounds: 2, seconds: 15 });
    room.start(ada.seat.id);
    room.liveDrawing(bo.seat.id, 1, png('bo'));
    const copy = JSON.parse(JSON.stringify(room.state)) as RoomState;
    assert.deepEqual(copy, room.state);
    const rebuilt = new Room(copy, { clock, packs: PACKS, effects, timing: TIMING });
    const bo2 = new FakeSocket('Bo');
    rebuilt.join(bo2, { nickname: 'Bo', token: token(), resumeToken: bo.seat.token });
    assert.equal(rebuilt.nextDeadline(), room.nextDeadline());
    clock.t = rebuilt.nextDeadline()!;
    rebuilt.tick();
    assert.equal(rebuilt.state.phase, 'collecting');
    assert.deepEqual(bo2.last('play:bell'), { round: 1 });
    const seeded = setup(11);
    const a2 = seeded.join('Ada');
    seeded.room.configure(a2.seat.id, { rounds: 2, seconds: 15 });
    seeded.room.start(a2.seat.id);
    assert.equal(seeded.room.state.round!.prompt.label, room.state.round!.prompt.label, 'the same seed picks the same prompt');
  });

  it('a room restored by another server (take-over): reachable seats carry on, the others drop, the host role passes, a round being judged is judged again', () => {
    const { room, join, effects, clock } = setup(12);
    const ada = join('Ada'), bo = join('Bo'), cy = join('Cy');
    room.configure(ada.seat.id, { rounds: 2, seconds: 15 });
    room.start(ada.seat.id);
    const saved = JSON.parse(JSON.stringify(room.state)) as RoomState;

    // Ada's socket died with the old owner; Bo's and Cy's are reachable from the new one.
    clock.t += 2_000;
    const bo2 = new FakeSocket('Bo'), cy2 = new FakeSocket('Cy');
    const restored = Room.restore(saved, { clock, packs: PACKS, effects, timing: TIMING }, new Map([[bo.seat.id, bo2], [cy.seat.id, cy2]]));
    const view = bo2.state; // everyone reachable is told the room's state at once
    assert.equal(view.phase, 'drawing');
    assert.deepEqual(view.seats.map((s) => [s.nickname, s.connected]), [['Ada', false], ['Bo', true], ['Cy', true]]);
    assert.equal(restored.seat(ada.seat.id)!.droppedAt, clock.t, 'the host dropped when the old owner did');
    assert.equal(restored.state.hostSeat, ada.seat.id, 'a reload does not cost the host role…');

    // The round's clock runs on: live drawings and the bell reach the reattached sockets.
    restored.liveDrawing(cy.seat.id, 1, png('cy'));
    clock.t = restored.nextDeadline()!;
    restored.tick();
    assert.equal(restored.state.hostSeat, bo.seat.id, '…but its grace does (10 s)');
    for (let guard = 0; guard < 4 && restored.state.phase === 'drawing'; guard++) { clock.t = restored.nextDeadline()!; restored.tick(); }
    assert.deepEqual(cy2.last('play:bell'), { round: 1 });
    expectGameError(() => restored.configure(ada.seat.id, { rounds: 1 }), 'NOT_HOST');

    // A room saved while judging asks the judge again, and takes its answer.
    restored.submit(bo.seat.id, 1, png('bo final'));
    restored.submit(cy.seat.id, 1, png('cy final'));
    assert.equal(restored.state.phase, 'judging');
    const asked = effects.judgeRequests.length;
    const judging = JSON.parse(JSON.stringify(restored.state)) as RoomState;
    const bo3 = new FakeSocket('Bo');
    const again = Room.restore(judging, { clock, packs: PACKS, effects, timing: TIMING }, new Map([[bo.seat.id, bo3]]));
    assert.equal(effects.judgeRequests.length, asked + 1, 'judged again');
    assert.deepEqual(effects.judgeRequests.at(-1)!.drawings.map((d) => d.seat).sort(), [bo.seat.id, cy.seat.id].sort());
    assert.equal(again.judged(1, { [bo.seat.id]: verdict(80), [cy.seat.id]: verdict(40) }), true);
    assert.equal(bo3.last<PlayReveal>('play:reveal').round, 1);
  });

  it('errors carry a code and name the field (for play:error)', () => {
    const { room, join } = setup();
    const ada = join('Ada');
    const err = expectGameError(() => room.submit(ada.seat.id, 1, png('x')), 'INVALID', 'round');
    assert.match(err.message, /no round 1 yet/);
    const e: PlayError = { event: 'play:submit', code: err.code, field: err.field!, message: err.message };
    assert.equal(e.field, 'round');
  });
});
