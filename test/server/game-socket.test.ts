/**
 * Play over the real server: socket.io, the adapter, the judge on the bundled demo CLIP
 * (onnxruntime), the hall of fame in SQLite. Four clients — a host, two more players and a
 * spectator — play a two-round game with doodles drawn by the demo world's renderer; bad
 * payloads are refused naming the field; a dropped player gets their seat back by token.
 * Prints the scoring latency (p50/p95) measured by the server's judge.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io as connect, type Socket } from 'socket.io-client';
import { createRng, encodePng, renderSampleSync } from '../../engine/index';
import { loadConfig } from '../../server/config';
import { createStudioServer, type StudioServer } from '../../server/create';
import { percentiles } from '../../server/game/judge';
import type {
  PlayError, PlayGuesses, PlayHallOfFame, PlayJoined, PlayPodium, PlayReveal, PlayRoomView,
} from '../../server/protocol';

type Client = Socket;

/** Resolve with the next `event` payload that satisfies `pred` (events seen before the call do not count). */
function next<T>(c: Client, event: string, pred: (p: T) => boolean = () => true, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { c.off(event, on); reject(new Error(`timed out waiting for ${event}`)); }, timeoutMs);
    const on = (p: T) => {
      if (!pred(p)) return;
      clearTimeout(timer);
      c.off(event, on);
      resolve(p);
    };
    c.on(event, on);
  });
}

async function doodle(subject: string, seed: number): Promise<Buffer> {
  const { image } = renderSampleSync(createRng(seed), { size: 256, subject });
  return encodePng(image.data, image.width, image.height);
}

describe('play over socket.io with the demo CLIP', () => {
  let studio: StudioServer;
  let url: string;
  let dataDir: string;
  const clients: Client[] = [];
  const client = async (): Promise<Client> => {
    const c = connect(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    clients.push(c);
    await next(c, 'connect');
    return c;
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-play-'));
    studio = await createStudioServer({
      config: loadConfig({ NODE_ENV: 'test', CLIP_STUDIO_DATA: dataDir, CLIP_STUDIO_BACKEND: 'cpu' }),
      next: false,
      game: { timing: { revealMs: 400, collectGraceMs: 2_000 } },
    });
    url = `http://127.0.0.1:${(await studio.listen(0, '127.0.0.1')).port}`;
  });
  after(async () => {
    for (const c of clients) c.close();
    await studio?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses bad payloads with play:error naming the field', async () => {
    const c = await client();
    const err1 = next<PlayError>(c, 'play:error');
    c.emit('play:create', { nickname: '<b>Ada</b>' });
    const e1 = await err1;
    assert.deepEqual([e1.event, e1.code, e1.field], ['play:create', 'INVALID', 'nickname']);
    assert.match(e1.message, /markup/);
    const err2 = next<PlayError>(c, 'play:error');
    c.emit('play:create', { nickname: 'x'.repeat(21) });
    assert.match((await err2).message, /at most 20 characters, got 21/);
    const err3 = next<PlayError>(c, 'play:error');
    c.emit('play:join', { code: 'ZZZZZZZZZZ', nickname: 'Ada' });
    const e3 = await err3;
    assert.deepEqual([e3.code, e3.field], ['ROOM_NOT_FOUND', 'code']);
    const err4 = next<PlayError>(c, 'play:error');
    c.emit('play:create', { nickname: 'Ada', settings: { seconds: 1 } });
    const e4 = await err4;
    assert.equal(e4.field, 'settings.seconds');
    assert.match(e4.message, /between 5 and 300, got 1/);
    const err5 = next<PlayError>(c, 'play:error');
    c.emit('play:draw', { round: 1, png: Buffer.from('hi') });
    assert.equal((await err5).code, 'NOT_IN_ROOM');
  });

  it('four clients play a two-round game: live guesses, the bell, CLIP scores, leaderboard, podium, hall of fame, rejoin', { timeout: 120_000 }, async () => {
    const host = await client();
    const joined = next<PlayJoined>(host, 'play:joined');
    host.emit('play:create', { nickname: 'Ada', settings: { rounds: 2, seconds: 5 } });
    const hostJoin = await joined;
    assert.match(hostJoin.code, /^[2-9A-HJKMNP-Z]{10}$/);
    const code = hostJoin.code;

    const bo = await client(), cy = await client(), eve = await client();
    const joins = await Promise.all([
      (async () => { const j = next<PlayJoined>(bo, 'play:joined'); bo.emit('play:join', { code: code.toLowerCase(), nickname: '  Bo  ' }); return j; })(),
      (async () => { const j = next<PlayJoined>(cy, 'play:joined'); cy.emit('play:join', { code, nickname: 'Cy' }); return j; })(),
      (async () => { const j = next<PlayJoined>(eve, 'play:joined'); eve.emit('play:join', { code, nickname: 'Eve', spectator: true }); return j; })(),
    ]);
    assert.equal(joins[0]!.room.seats.find((s) => s.seat === joins[0]!.seat)!.nickname, 'Bo', 'nicknames are trimmed');
    assert.equal(joins[2]!.role, 'spectator');

    // Bad drawings are refused before any scoring: not a PNG, too large.
    const players = [
      { c: host, name: 'Ada', seat: hostJoin.seat, style: 'doodle' as const },
      { c: bo, name: 'Bo', seat: joins[0]!.seat, style: 'doodle' as const },
      { c: cy, name: 'Cy', seat: joins[1]!.seat, style: 'other' as const },
    ];
    const spectatorGuesses: PlayGuesses[] = [];
    eve.on('play:guesses', (g: PlayGuesses) => spectatorGuesses.push(g));
    const roundTrips: number[] = [];
    const reveals: PlayReveal[] = [];
    host.on('play:reveal', (r: PlayReveal) => reveals.push(r));

    // Each player, whenever a round starts: draw (live, get guesses), then the final drawing at the bell.
    const playRound = async (p: (typeof players)[number], view: PlayRoomView, k: number) => {
      const subject = p.style === 'doodle' ? view.prompt! : (view.prompt === 'fish' ? 'house' : 'fish');
      const live = await doodle(subject, 100 * view.round + k);
      const t0 = performance.now();
      const guesses = next<PlayGuesses>(p.c, 'play:guesses', (g) => g.round === view.round);
      p.c.emit('play:draw', { round: view.round, png: live });
      const g = await guesses;
      roundTrips.push(performance.now() - t0);
      assert.equal(g.seat, p.seat);
      assert.equal(g.guesses.length, 5);
      for (let i = 1; i < 5; i++) assert.ok(g.guesses[i - 1]!.probability >= g.guesses[i]!.probability, 'guesses best first');
      assert.equal(g.image, undefined);
      await next(p.c, 'play:bell', (b: { round: number }) => b.round === view.round, 15_000);
      p.c.emit('play:submit', { round: view.round, png: await doodle(subject, 100 * view.round + k + 50) });
    };
    const rounds: Promise<void>[] = [];
    for (const [k, p] of players.entries()) {
      let seen = 0;
      p.c.on('play:state', (v: PlayRoomView) => {
        if (v.phase === 'drawing' && v.round > seen) {
          seen = v.round;
          rounds.push(playRound(p, v, k));
        }
      });
    }

    // A bad drawing mid-round (a JPEG-ish blob, an oversized PNG): named, and the round goes on.
    const started = next<PlayRoomView>(bo, 'play:state', (v) => v.phase === 'drawing' && v.round === 1);
    const podium = next<PlayPodium>(eve, 'play:podium', () => true, 90_000);
    host.emit('play:start');
    const r1 = await started;
    assert.ok(r1.prompt);
    const bad = await client();
    const badJoin = next<PlayJoined>(bad, 'play:joined');
    bad.emit('play:join', { code, nickname: 'Mallory' });
    await badJoin;
    const e1 = next<PlayError>(bad, 'play:error');
    bad.emit('play:draw', { round: 1, png: Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]) });
    assert.deepEqual([(await e1).code, (await e1).field], ['BAD_DRAWING', 'png']);
    const big = renderSampleSync(createRng(1), { size: 600, subject: 'house' }).image;
    const e2 = next<PlayError>(bad, 'play:error');
    bad.emit('play:draw', { round: 1, png: await encodePng(big.data, 600, 600) });
    const big2 = await e2;
    assert.equal(big2.field, 'png');
    assert.match(big2.message, /600×600; at most 512×512/);
    const e3 = next<PlayError>(bad, 'play:error', (e) => e.code === 'RATE_LIMITED');
    const small = await doodle('house', 9);
    for (let i = 0; i < 3; i++) bad.emit('play:draw', { round: 1, png: small }); // a burst of 2 is allowed, not 3
    assert.match((await e3).message, /at most once a second/);
    const e4 = next<PlayError>(bad, 'play:error');
    bad.emit('play:start');
    assert.equal((await e4).code, 'NOT_HOST');
    const left = next(bad, 'play:left');
    bad.emit('play:leave');
    await left;

    const final = await podium;
    await Promise.all(rounds);
    assert.equal(reveals.length, 2);
    assert.notEqual(reveals[0]!.prompt, reveals[1]!.prompt);
    for (const r of reveals) {
      assert.equal(r.error, undefined);
      assert.deepEqual(r.entries.map((e) => e.nickname).sort(), ['Ada', 'Bo', 'Cy']);
      for (const e of r.entries) {
        assert.ok(e.clipScore >= 0 && e.clipScore <= 100, `${e.nickname}: ${e.clipScore}`);
        assert.equal(e.points, Math.round(e.clipScore) + e.bonus);
        assert.match(e.image!, /^data:image\/png;base64,/);
        assert.equal(e.guesses.length, 5);
      }
      const bonuses = r.entries.map((e) => e.bonus).sort((a, b) => b - a);
      assert.equal(bonuses[0], 20, 'the best drawing gets the full rank bonus');
      // Equal CLIP scores share a rank (and its bonus); otherwise the last of three gets none.
      const ranks = r.entries.map((e) => e.rank);
      if (new Set(ranks).size === 3) assert.equal(bonuses[2], 0);
      else for (const e of r.entries) assert.equal(e.bonus, r.entries.find((o) => o.rank === e.rank)!.bonus, 'tied drawings get the same bonus');
    }
    const totals = new Map<string, number>();
    for (const r of reveals) for (const e of r.entries) totals.set(e.nickname, (totals.get(e.nickname) ?? 0) + e.points);
    assert.deepEqual(final.leaderboard.map((r) => [r.nickname, r.score]), [...totals].sort((a, b) => b[1] - a[1]));
    assert.deepEqual(reveals[1]!.leaderboard, final.leaderboard, 'the cumulative leaderboard after the last round is the podium');

    // The spectator saw every player's live guesses, with the picture.
    for (const p of players) {
      const seen = spectatorGuesses.filter((g) => g.seat === p.seat);
      assert.equal(seen.length, 2, `${p.name}: one live canvas per round`);
      for (const g of seen) assert.match(g.image!, /^data:image\/png;base64,/);
    }

    // The hall of fame kept the judged drawings of both prompts.
    const hofReply = next<PlayHallOfFame>(eve, 'play:hall-of-fame');
    eve.emit('play:hall-of-fame:get', {});
    const hof = await hofReply;
    assert.equal(hof.pack, 'demo-doodles');
    assert.deepEqual(hof.prompts.map((p) => p.prompt).sort(), reveals.map((r) => r.prompt).sort());
    for (const p of hof.prompts) {
      const scored = reveals.find((r) => r.prompt === p.prompt)!.entries.filter((e) => e.clipScore > 0);
      assert.deepEqual(p.entries.map((e) => [e.nickname, e.score]), scored.sort((a, b) => b.clipScore - a.clipScore).map((e) => [e.nickname, e.clipScore]));
    }

    // Bo drops and comes back with the token: same seat, same score.
    const boScore = final.leaderboard.find((r) => r.nickname === 'Bo')!.score;
    const dropped = next<PlayRoomView>(host, 'play:state', (v) => v.seats.some((s) => s.nickname === 'Bo' && !s.connected));
    bo.close();
    await dropped;
    const bo2 = await client();
    const back = next<PlayJoined>(bo2, 'play:joined');
    bo2.emit('play:join', { code, nickname: 'Bo', token: joins[0]!.token });
    const rejoined = await back;
    assert.equal(rejoined.seat, joins[0]!.seat);
    assert.equal(rejoined.room.seats.find((s) => s.seat === rejoined.seat)!.score, boScore);
    assert.equal(rejoined.room.phase, 'podium');

    // The host leaves: the role passes to Bo, the longest-seated connected player.
    const handed = next<PlayRoomView>(bo2, 'play:state', (v) => !v.seats.some((s) => s.nickname === 'Ada'));
    host.emit('play:leave');
    assert.ok((await handed).seats.find((s) => s.nickname === 'Bo')!.host);

    const lat = studio.game.judge.latency();
    const rt = percentiles(roundTrips);
    console.log(`scoring latency (demo CLIP, this machine): live guesses p50 ${lat.guesses.p50.toFixed(1)} ms, p95 ${lat.guesses.p95.toFixed(1)} ms (n=${lat.guesses.n}); `
      + `a round's judging p50 ${lat.rounds.p50.toFixed(1)} ms, p95 ${lat.rounds.p95.toFixed(1)} ms (n=${lat.rounds.n}); `
      + `client draw→guesses round trip p50 ${rt.p50.toFixed(1)} ms, p95 ${rt.p95.toFixed(1)} ms`);
  });
});
