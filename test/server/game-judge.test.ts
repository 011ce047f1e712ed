/**
 * The judge's parts on real data: drawings validated and re-encoded (PNG only, ≤ 512×512,
 * ≤ 300 KB, errors naming `png`), blank canvases, penalty and moderation prompts applied with
 * the demo CLIP (using what it does know: colours), scores as the softmax over the pack, the
 * pack files and the hall of fame's best-per-prompt.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClipScorer, decodeImage, encodePng, softmax } from '../../engine/index';
import { GameError } from '../../server/game/errors';
import { validateDrawing } from '../../server/game/drawing';
import { Judge, percentiles } from '../../server/game/judge';
import { loadPacks, PackError, packsForModel, parsePack, type GamePack } from '../../server/game/packs';
import { competitionRanks, rankBonus, scoreRound } from '../../server/game/scoring';
import { TokenBucket } from '../../server/game/rate-limit';
import { openDatabase } from '../../server/store/db';
import { HallOfFame } from '../../server/store/hall-of-fame';

/** A w×h RGB picture: white, with a filled rectangle of `rgb` in the middle half. */
function picture(w: number, h: number, rgb: [number, number, number] | null): Uint8Array {
  const data = new Uint8Array(w * h * 3).fill(255);
  if (rgb) {
    for (let y = Math.floor(h / 4); y < Math.floor((3 * h) / 4); y++) {
      for (let x = Math.floor(w / 4); x < Math.floor((3 * w) / 4); x++) data.set(rgb, (y * w + x) * 3);
    }
  }
  return data;
}

async function gameError(p: Promise<unknown>, field: string, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof GameError, String(err));
    assert.equal(err.code, 'BAD_DRAWING');
    assert.equal(err.field, field);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('drawings', () => {
  it('accepts a PNG up to 512×512 and re-encodes it; refuses anything else naming `png`', async () => {
    const ok = await validateDrawing(await encodePng(picture(512, 300, [200, 0, 0]), 512, 300));
    assert.deepEqual([ok.image.width, ok.image.height], [512, 300]);
    assert.ok(ok.ink > 0.2 && ok.ink < 0.3, `ink ${ok.ink}`);
    const again = await decodeImage(ok.png);
    assert.deepEqual(again.data, ok.image.data, 'the re-encoding is lossless');

    await gameError(validateDrawing(Buffer.from('GIF89a not a png at all, just some bytes to fill')), 'png', /not a PNG/);
    await gameError(validateDrawing(await encodePng(picture(513, 10, null), 513, 10)), 'png', /513×10; at most 512×512/);
    await gameError(validateDrawing(new Uint8Array(300 * 1024 + 1)), 'png', /307201 bytes, over the limit of 307200/);
    const truncated = (await encodePng(picture(64, 64, [0, 0, 0]), 64, 64)).subarray(0, 60);
    await gameError(validateDrawing(truncated), 'png', /could not be decoded|truncated|not/i);
  });

  it('a blank canvas has no ink', async () => {
    const blank = await validateDrawing(await encodePng(picture(128, 128, null), 128, 128));
    assert.equal(blank.ink, 0);
  });
});

describe('the judge with the demo CLIP', () => {
  let dataDir: string;
  let scorer: ClipScorer;
  let judge: Judge;
  const pack: GamePack = parsePack({
    id: 'test-colours', title: 'test', models: ['demo-clip'],
    prompts: [{ label: 'house', text: 'a drawing of a house' }, { label: 'tree', text: 'a drawing of a tree' }, { label: 'fish', text: 'a drawing of a fish' }],
    // Colours are what the demo CLIP knows best, so these stand in for "the written word {label}".
    penalties: { factor: 0.5, prompts: ['a red square'] },
    moderation: { prompts: ['a blue shape'] },
  }, 'test pack');

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-judge-'));
    scorer = await ClipScorer.open({ model: 'demo-clip', dataDir });
    judge = new Judge(async () => scorer);
  });
  after(async () => {
    await scorer?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('scores are CLIP\'s softmax over the pack × 100; penalty and moderation prompts apply when they outrank; blank scores nothing', async () => {
    const red = await encodePng(picture(256, 256, [230, 20, 20]), 256, 256);
    const blue = await encodePng(picture(256, 256, [20, 40, 230]), 256, 256);
    const blank = await encodePng(picture(256, 256, null), 256, 256);
    const verdicts = await judge.judgeRound(pack, pack.prompts[0]!, [{ seat: 'red', png: red }, { seat: 'blue', png: blue }, { seat: 'blank', png: blank }]);

    // The expected numbers straight from the scorer.
    const texts = [...pack.prompts.map((p) => p.text), 'a red square', 'a blue shape'];
    const rows = await scorer.rankMany([red, blue], texts);
    const logit = (row: number, text: string) => rows[row]!.find((r) => r.text === text)!.logit;
    const packLogits = (row: number) => pack.prompts.map((p) => logit(row, p.text));

    const r = verdicts.red!;
    const pRed = softmax(packLogits(0))[0]!;
    assert.ok(Math.abs(r.probability - pRed) < 1e-5, `${r.probability} vs ${pRed}`);
    assert.ok(logit(0, 'a red square') > logit(0, 'a drawing of a house'), 'the demo CLIP sees a red square as one');
    assert.deepEqual(r.penalty, { prompt: 'a red square', factor: 0.5 });
    assert.equal(r.clipScore, Math.round(pRed * 100 * 0.5 * 10) / 10);
    assert.ok(logit(0, 'a blue shape') < Math.max(...packLogits(0)), 'the demo CLIP does not see the red square as a blue shape');
    assert.equal(r.moderated, false);
    assert.deepEqual(r.guesses.map((g) => g.label).sort(), ['fish', 'house', 'tree']);

    const b = verdicts.blue!;
    assert.ok(logit(1, 'a blue shape') > Math.max(...packLogits(1)));
    assert.equal(b.moderated, true);
    assert.deepEqual(verdicts.blank, { probability: 0, clipScore: 0, guesses: [], penalty: null, moderated: false, blank: true });

    const entries = scoreRound([
      { seat: 'red', nickname: 'R', image: 'data:', verdict: r },
      { seat: 'blue', nickname: 'B', image: 'data:', verdict: b },
      { seat: 'blank', nickname: 'E', image: 'data:', verdict: verdicts.blank! },
    ]);
    assert.deepEqual(entries.map((e) => [e.nickname, e.points, e.note, e.image]), [
      ['R', Math.round(r.clipScore), null, 'data:'], ['B', 0, 'hidden by moderation', null], ['E', 0, 'empty canvas', 'data:'],
    ]);

    const guesses = await judge.guesses((await validateDrawing(red)).image, pack);
    assert.deepEqual(guesses.map((g) => g.label), r.guesses.map((g) => g.label), 'live guesses and the verdict agree');
    assert.equal(judge.latency().guesses.n, 1);
  });
});

describe('game arithmetic, packs, rate limits, hall of fame', () => {
  it('ranks with ties and spreads the bonus', () => {
    assert.deepEqual(competitionRanks([50, 80, 50, 10]), [2, 1, 2, 4]);
    assert.deepEqual([1, 2, 3].map((r) => rankBonus(r, 3)), [20, 10, 0]);
    assert.equal(rankBonus(1, 1), 0, 'no bonus for drawing alone');
    assert.deepEqual(percentiles([5, 1, 4, 2, 3]), { n: 5, p50: 3, p95: 5 });
  });

  it('the bundled packs parse; the demo pack is the demo world\'s doodle subjects', () => {
    const packs = loadPacks();
    const demo = packsForModel(packs, 'demo-clip');
    assert.equal(demo.length, 1);
    assert.equal(demo[0]!.prompts.find((p) => p.label === 'apple')!.text, 'a drawing of an apple');
    assert.equal(packsForModel(packs, 'clip-vit-base-patch32')[0]!.penalties.prompts.some((p) => p.includes('{label}')), true);
    assert.throws(() => parsePack({ id: 'x', title: 'x', models: ['m'], prompts: [{ label: 'a', text: 'a' }] }, 'f.json'),
      (e: unknown) => e instanceof PackError && e.field === 'prompts' && /at least 2/.test(e.message));
    assert.throws(() => parsePack({ id: 'x', title: 'x', models: ['m'], prompts: [{ label: 'a', text: 'a' }, { label: 'A', text: 'b' }] }, 'f.json'),
      (e: unknown) => e instanceof PackError && e.field === 'prompts.1.label');
    assert.throws(() => parsePack({ id: 'x', title: 'x', models: ['m'], prompts: [{ label: 'a', text: 'a' }, { label: 'b', text: 'b' }], penalties: { factor: 0.5, prompts: ['{nope}'] } }, 'f.json'),
      (e: unknown) => e instanceof PackError && e.field === 'penalties.prompts.0');
  });

  it('a token bucket allows a burst, then its rate', () => {
    const b = new TokenBucket(2, 1);
    assert.deepEqual([b.take(0), b.take(10), b.take(20)], [true, true, false]);
    assert.equal(b.take(500), false);
    assert.equal(b.take(1020), true);
  });

  it('the hall of fame keeps the best drawings per prompt, across restarts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'clip-studio-hof-'));
    try {
      let db = openDatabase(dir);
      const hall = new HallOfFame(db, 2);
      const png = Buffer.from('png');
      const kept = hall.add([
        { pack: 'p', prompt: 'house', nickname: 'A', score: 40, png },
        { pack: 'p', prompt: 'house', nickname: 'B', score: 90, png },
        { pack: 'p', prompt: 'house', nickname: 'C', score: 10, png },
        { pack: 'p', prompt: 'tree', nickname: 'D', score: 20, png },
        { pack: 'q', prompt: 'house', nickname: 'E', score: 99, png },
      ]);
      assert.equal(kept.length, 4, 'C did not make the top 2 of house');
      db.close();
      db = openDatabase(dir);
      const best = new HallOfFame(db, 2).best('p');
      assert.deepEqual(best.map((g) => [g.prompt, g.entries.map((e) => [e.nickname, e.score])]), [['house', [['B', 90], ['A', 40]]], ['tree', [['D', 20]]]]);
      assert.deepEqual(best[0]!.entries[0]!.png, png);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
