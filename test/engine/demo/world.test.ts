import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRng } from '../../../engine/demo/rng';
import { renderBatch, renderSample, renderSampleSync, worldVocabulary, type WorldSample } from '../../../engine/demo/world';

const vocabFile = JSON.parse(readFileSync(new URL('../../../prompts/demo/world.json', import.meta.url), 'utf8')) as {
  colors: Record<string, [number, number, number][]>;
  shapes: { name: string; plural: string }[];
};
const shades = Object.entries(vocabFile.colors).flatMap(([name, list]) => list.map((rgb) => ({ name, rgb })));

/** The colour name whose listed shade is nearest to pixel p. */
function colourAt(img: Uint8Array, p: number): string {
  let best = '', bestD = Infinity;
  for (const { name, rgb } of shades) {
    const d = (img[p * 3]! - rgb[0]) ** 2 + (img[p * 3 + 1]! - rgb[1]) ** 2 + (img[p * 3 + 2]! - rgb[2]) ** 2;
    if (d < bestD) { bestD = d; best = name; }
  }
  return best;
}

// One pool of samples shared by the tests: 64 px keeps it well under a second.
const SIZE = 64;
const scenes = await renderBatch(11, 400, { size: SIZE, kind: 'scene' });

test('the same seed gives the same pictures and captions; another seed does not', async () => {
  const a = await renderBatch(5, 8, { size: SIZE });
  const b = await renderBatch(5, 8, { size: SIZE });
  const c = await renderBatch(6, 8, { size: SIZE });
  for (let i = 0; i < 8; i++) {
    assert.deepEqual(a[i]!.image.data, b[i]!.image.data);
    assert.equal(a[i]!.caption, b[i]!.caption);
    assert.deepEqual(a[i]!.captions, b[i]!.captions);
  }
  const differing = a.filter((s, i) => Buffer.compare(Buffer.from(s.image.data), Buffer.from(c[i]!.image.data)) !== 0);
  assert.equal(differing.length, 8);
  // sample i does not depend on where the batch starts
  const [third] = await renderBatch(5, 1, { size: SIZE, start: 3 });
  assert.deepEqual(third!.image.data, a[3]!.image.data);
  assert.equal(third!.caption, a[3]!.caption);
  // the async form draws from the rng exactly as the sync one
  assert.deepEqual((await renderSample(createRng(9), { size: SIZE })).image.data, renderSampleSync(createRng(9), { size: SIZE }).image.data);
});

test('images have the requested size and both kinds appear when kind is left out', async () => {
  const mixed = await renderBatch(1, 40, { size: 128 });
  for (const s of mixed) {
    assert.equal(s.image.width, 128);
    assert.equal(s.image.data.length, 128 * 128 * 3);
  }
  const kinds = new Set(mixed.map((s) => s.labels.kind));
  assert.deepEqual([...kinds].sort(), ['doodle', 'scene']);
  assert.throws(() => renderSampleSync(createRng(1), { size: 8 }), /`size`/);
  assert.throws(() => renderSampleSync(createRng(1), { size: 64, subject: 'dragon' }), /`subject`/);
});

test('a single big shape of every kind shows its labelled colour and lies where its label says', () => {
  const seen = new Set<string>();
  for (const s of scenes) {
    const shapes = s.labels.shapes!;
    if (shapes.length !== 1 || shapes[0]!.size !== 'big') continue;
    const { shape, color, center, position } = shapes[0]!;
    const counts = new Map<string, number>();
    let x0 = SIZE, y0 = SIZE, x1 = -1, y1 = -1;
    for (let p = 0; p < SIZE * SIZE; p++) {
      const name = colourAt(s.image.data, p);
      if (name === s.labels.background) continue;
      counts.set(name, (counts.get(name) ?? 0) + 1);
      if (name === color) {
        const x = p % SIZE, y = Math.floor(p / SIZE);
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
    }
    const [dominant, n] = [...counts].sort((a, b) => b[1] - a[1])[0]!;
    assert.equal(dominant, color, `${s.caption}: most foreground pixels are ${dominant}`);
    // a big shape (half-extent ≥ 0.25 of the side) covers a good part of the picture even as a thin moon
    assert.ok(n > SIZE * SIZE * 0.04, `${s.caption}: only ${n} pixels of ${color}`);
    // the label's centre is the centre of the drawn pixels (to within a couple of pixels)
    assert.ok(Math.abs((x0 + x1 + 1) / 2 / SIZE - center[0]) < 0.05 && Math.abs((y0 + y1 + 1) / 2 / SIZE - center[1]) < 0.05,
      `${s.caption}: drawn around ${[(x0 + x1 + 1) / 2, (y0 + y1 + 1) / 2]}, labelled ${center.map((v) => v * SIZE)} (${position})`);
    seen.add(shape);
  }
  assert.deepEqual([...seen].sort(), worldVocabulary().shapes.sort());
});

test('scene captions name every labelled shape, and some caption names every colour and size', () => {
  const plural = Object.fromEntries(vocabFile.shapes.map((s) => [s.name, s.plural]));
  let counted = 0, placed = 0;
  for (const s of scenes) {
    const shapes = s.labels.shapes!;
    assert.ok(shapes.length >= 1 && shapes.length <= 3);
    assert.ok(s.captions.includes(s.caption));
    assert.ok(!shapes.some((x) => x.color === s.labels.background), `${s.caption}: a shape shares the background colour`);
    for (const c of s.captions) {
      for (const { shape } of shapes) assert.match(c, new RegExp(`\\b(${shape}|${plural[shape]})\\b`), `"${c}" should name the ${shape}`);
      assert.doesNotMatch(c, /\ba [aeiou]/, `"${c}": article`);
    }
    const full = s.captions.filter((c) => shapes.every((x) => c.includes(x.color) && c.includes(x.size)));
    assert.ok(full.length > 0, `no caption of ${JSON.stringify(shapes)} names all colours and sizes`);
    assert.ok(s.captions.some((c) => c.includes(`${s.labels.background} background`)));
    const twin = shapes.find((x, i) => shapes.some((y, j) => j !== i && y.shape === x.shape && y.color === x.color && y.size === x.size));
    if (twin && shapes.length === 2) {
      counted++;
      assert.ok(s.captions.includes(`two ${twin.size} ${twin.color} ${plural[twin.shape]}`), `${JSON.stringify(s.captions)}`);
    }
    if (shapes.length === 1 && s.captions.some((c) => / (in|at|on|near) the /.test(c))) placed++;
  }
  assert.ok(counted > 5, `only ${counted} scenes with two identical shapes`);
  assert.ok(placed > 20, `only ${placed} single shapes with a position caption`);
});

test('there are at least 24 doodle subjects, including the ones the demo promises', () => {
  const { subjects, shapes } = worldVocabulary();
  assert.ok(subjects.length >= 24, `${subjects.length} subjects`);
  for (const s of ['house', 'tree', 'sun', 'cloud', 'fish', 'flower', 'smiley face', 'boat', 'umbrella', 'apple', 'mountain', 'lightning bolt', ...shapes]) {
    assert.ok(subjects.includes(s), s);
  }
});

test('every doodle subject draws dark strokes on light paper, captioned with its name', () => {
  const samples: WorldSample[] = [];
  for (const [i, subject] of worldVocabulary().subjects.entries()) {
    for (let k = 0; k < 3; k++) samples.push(renderSampleSync(createRng(1000 * i + k), { size: SIZE, subject }));
  }
  for (const s of samples) {
    const subject = s.labels.subject!;
    let ink = 0, paper = 0;
    for (let p = 0; p < SIZE * SIZE; p++) {
      const lum = (s.image.data[p * 3]! + s.image.data[p * 3 + 1]! + s.image.data[p * 3 + 2]!) / 3;
      if (lum < 140) ink++;
      else if (lum > 200) paper++;
    }
    assert.ok(ink > SIZE * SIZE * 0.01, `${subject}: ${ink} ink pixels`);
    assert.ok(paper > SIZE * SIZE * 0.6, `${subject}: ${paper} paper pixels`);
    for (const c of s.captions) assert.ok(c.includes(subject), `"${c}" should name ${subject}`);
    assert.ok(s.captions.includes(s.caption));
  }
  // the same subject is not drawn the same way twice
  assert.notDeepEqual(samples[0]!.image.data, samples[1]!.image.data);
});

test('the canvas downscale is the box filter as defined: rows of samples in double, accumulated in float32', async () => {
  const { createCanvas, finishCanvas } = await import('../../../engine/demo/raster');
  let state = 7;
  const next = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (const ss of [1, 2, 3, 4]) {
    const size = 9;
    const c = createCanvas(size, ss, [0, 0, 0], true);
    for (let i = 0; i < c.data.length; i++) c.data[i] = Math.fround(next() * 255); // fractional, as soft edges leave them
    // the definition: each output pixel's ss rows, each row's ss samples summed in double, the rows in float32
    const sums = new Float32Array(size * size * 3);
    for (let y = 0; y < size; y++) for (let j = 0; j < ss; j++) for (let x = 0; x < size; x++) for (let ch = 0; ch < 3; ch++) {
      let r = 0;
      for (let i = 0; i < ss; i++) r += c.data[((y * ss + j) * c.side + x * ss + i) * 3 + ch]!;
      sums[(y * size + x) * 3 + ch] = sums[(y * size + x) * 3 + ch]! + r;
    }
    const expected = Uint8Array.from(sums, (s) => Math.min(255, Math.max(0, Math.round(s * (1 / (ss * ss))))));
    assert.deepEqual(finishCanvas(c, { blur: 0, noiseSigma: 0, noiseSeed: 1 }), expected, `ss ${ss}`);
  }
});
