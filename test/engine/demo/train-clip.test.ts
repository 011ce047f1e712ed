/**
 * The demo CLIP trainer on a tiny config: a few steps run, the loss is finite and falls, no
 * tensor leaks, a checkpoint resumes, and the saved model loads with the real tokenizer's ids
 * (unknown words read the unknown row; padding to 77 changes nothing); the opt-in recipe
 * options (a background label group, a per-tower learning rate, contrast twins) work.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main, saveDemoClip, trainClip, type DemoClipSizes } from '../../../engine/demo/train-clip';
import { clipBatch, contrastTwin, demoTokenIds, labelPrompts, labelTargets } from '../../../engine/demo/clip-data';
import { AdamW } from '../../../engine/demo/train-common';
import { BatchPrefetcher } from '../../../engine/demo/batch-worker';
import { createRng } from '../../../engine/demo/rng';
import { renderSampleSync, worldVocabulary } from '../../../engine/demo/world';
import { readSafetensors } from '../../../engine/io/safetensors';
import { toClipPixels, type RgbImage } from '../../../engine/io/images';
import { encodeText, loadClip } from '../../../engine/models/clip';
import { clipWeightsToStateDict, weightTensors } from '../../../engine/models/clip-weights';
import { ClipTokenizer } from '../../../engine/models/tokenizer';
import { initBackend, tf } from '../../../engine/runtime/tf';

const TINY: DemoClipSizes = {
  imageSize: 32, patchSize: 16, visionWidth: 32, visionLayers: 1, visionHeads: 2,
  textWidth: 32, textLayers: 1, textHeads: 2, projection: 16,
};
const base = { batchSize: 8, peakLr: 3e-3, warmup: 1, weightDecay: 0.1, seed: 5, sizes: TINY, readEvery: 1 };

test('a few steps on one batch: the loss is finite and falls, and no tensor leaks', async () => {
  await initBackend();
  const before = tf.memory().numTensors;
  const trained = await trainClip({ ...base, steps: 6, fixedBatch: true });
  const losses = trained.losses.map((l) => l.loss);
  assert.equal(losses.length, 6);
  assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
  assert.ok(losses.at(-1)! < losses[0]! - 0.05, `the loss should fall: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  for (const t of weightTensors(trained.weights)) t.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('training resumes from its checkpoint and the saved model loads through the real tokenizer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'demo-clip-'));
  try {
    const ckpt = join(dir, 'ckpt');
    const first = await trainClip({ ...base, steps: 2, checkpointDir: ckpt, checkpointEvery: 1 });
    for (const t of weightTensors(first.weights)) t.dispose();
    // Step 3 also adds the label-caption term, as the bundled model's later steps do.
    const resumed = await trainClip({ ...base, steps: 3, checkpointDir: ckpt, checkpointEvery: 1, resume: true, labelsFrom: 2 });
    assert.ok(resumed.losses.every((l) => Number.isFinite(l.loss)));
    assert.deepEqual(resumed.losses.map((l) => l.step), [1, 2, 3], 'steps 1–2 come from the checkpoint, 3 is new');
    const out = join(dir, 'model');
    await saveDemoClip(out, resumed, TINY);
    for (const t of weightTensors(resumed.weights)) t.dispose();
    assert.ok(statSync(join(out, 'model.safetensors')).size < 200_000);

    const clip = await loadClip(out);
    const tok = await ClipTokenizer.load();
    assert.equal(clip.config.text.vocabSize, demoTokenIds(tok).length);
    const embed = async (texts: string[], context: number) => {
      const ids = tf.tensor2d(tok.tokenize(texts, context).ids, [texts.length, context], 'int32');
      const e = encodeText(clip, ids);
      const v = (await e.array()) as number[][];
      tf.dispose([ids, e]);
      return v;
    };
    // 'zebra' and 'giraffe' are not in the pruned table: both read the unknown row.
    const [zebra, giraffe, circle] = await embed(['a red zebra', 'a red giraffe', 'a red circle'], 77);
    zebra!.forEach((x, i) => assert.ok(Math.abs(x - giraffe![i]!) < 1e-5, 'unknown words share one row'));
    assert.ok(zebra!.some((x, i) => Math.abs(x - circle![i]!) > 1e-4), 'a known word has its own row');
    // Zero padding after the end token changes nothing (causal attention, end-token pooling).
    const [short] = await embed(['a red circle'], 6);
    short!.forEach((x, i) => assert.ok(Math.abs(x - circle![i]!) < 1e-4, `padding changed dim ${i}`));
    clip.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('auxiliary heads train beside the label term, a run stops at `until`, resumes with its heads, and leaves no tensors behind', async () => {
  await initBackend();
  const dir = mkdtempSync(join(tmpdir(), 'demo-clip-aux-'));
  try {
    const before = tf.memory().numTensors;
    const opts = { ...base, steps: 4, labelsFrom: 0, auxHeads: true, checkpointDir: dir, checkpointEvery: 10 };
    const first = await trainClip({ ...opts, until: 2 });
    assert.equal(first.steps, 2, 'stopped at step 2 of a 4-step schedule');
    const headsFile = join(dir, 'aux-heads.safetensors');
    assert.ok(existsSync(headsFile), 'the stop checkpoints the heads');
    const headsAt2 = readSafetensors(headsFile).tensors.get('head.0')!.data as Float32Array;
    for (const t of weightTensors(first.weights)) t.dispose();
    assert.equal(tf.memory().numTensors, before, 'heads and their optimiser are disposed');

    const resumed = await trainClip({ ...opts, resume: true });
    assert.equal(resumed.startedAt, 2);
    assert.deepEqual(resumed.losses.map((l) => l.step), [1, 2, 3, 4]);
    assert.ok(resumed.losses.every((l) => Number.isFinite(l.loss)));
    const headsAt4 = readSafetensors(headsFile).tensors.get('head.0')!.data as Float32Array;
    assert.equal(headsAt4.length, headsAt2.length);
    assert.ok(headsAt4.some((x, i) => Math.abs(x - headsAt2[i]!) > 1e-6), 'the heads kept training after the resume');
    for (const t of weightTensors(resumed.weights)) t.dispose();
    assert.equal(tf.memory().numTensors, before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two data-parallel workers (worker threads) step with the mean gradient and stay identical; shard 0 saves the model', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'clip-studio-dp-'));
  try {
    const out = join(dir, 'model'), ckpt = join(dir, 'ckpt');
    const summaries = await main(['--workers', '2', '--steps', '3', '--batch', '8', '--out', out, '--checkpoints', ckpt]);
    assert.equal(summaries.length, 2);
    assert.deepEqual(summaries.map((s) => s.steps), [3, 3]);
    assert.equal(summaries[0]!.checksum, summaries[1]!.checksum, 'the replicas hold the same weights');
    assert.ok(summaries.every((s) => Number.isFinite(s.lastLoss)));
    assert.notEqual(summaries[0]!.lastLoss, summaries[1]!.lastLoss, 'each worker trained on its own shard');
    assert.ok(existsSync(join(out, 'model.safetensors')) && existsSync(join(out, 'training.json')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the background label group: "a shape on a gray background" for every scene, none for a doodle', () => {
  const plain = labelPrompts();
  const withBg = labelPrompts({ background: true });
  assert.deepEqual(plain.groups.map((g) => g.name), ['shape', 'color', 'subject'], 'off unless asked: the bundled recipe is unchanged');
  const bg = withBg.groups.at(-1)!;
  assert.equal(bg.name, 'background');
  assert.equal(bg.start, plain.texts.length);
  const names = worldVocabulary().backgroundColors;
  assert.deepEqual(withBg.texts.slice(bg.start), names.map((c) => `a shape on ${/^[aeiou]/.test(c) ? 'an' : 'a'} ${c} background`));
  for (let i = 0; i < 20; i++) {
    const scene = renderSampleSync(createRng(900 + i), { size: 32, kind: 'scene' });
    assert.equal(names[labelTargets(scene).background], scene.labels.background);
    assert.equal(labelTargets(renderSampleSync(createRng(900 + i), { size: 32, kind: 'doodle' })).background, -1);
  }
});

test('AdamW lrScale: a variable steps at its own multiple of the learning rate', () => {
  const a = tf.variable(tf.zeros([3])), b = tf.variable(tf.zeros([3])), c = tf.variable(tf.zeros([3]));
  const opt = new AdamW([a, b, c], new Set(), { weightDecay: 0, lrScale: new Map([[b, 0.5], [c, 0]]) });
  const g = tf.tensor1d([1, -2, 3]);
  opt.step({ [a.name]: g, [b.name]: g, [c.name]: g }, 0.1);
  // Adam's first step moves every coordinate by lr·sign(g) (up to eps).
  const [va, vb, vc] = [a, b, c].map((v) => Array.from(v.dataSync()));
  va!.forEach((x, i) => assert.ok(Math.abs(x + 0.1 * Math.sign([1, -2, 3][i]!)) < 1e-5, `a ${va}`));
  vb!.forEach((x, i) => assert.ok(Math.abs(x + 0.05 * Math.sign([1, -2, 3][i]!)) < 1e-5, `b ${vb}`));
  assert.deepEqual(vc, [0, 0, 0]);
  opt.dispose();
  tf.dispose([a, b, c, g]);
});

test('a slower image tower and the background labels train together; the CLI rejects a bad --vision-lr-scale', async () => {
  await initBackend();
  const before = tf.memory().numTensors;
  const trained = await trainClip({ ...base, steps: 3, labelsFrom: 0, auxHeads: true, backgroundLabels: true, visionLrScale: 0.2 });
  assert.ok(trained.losses.every((l) => Number.isFinite(l.loss)), `losses ${trained.losses.map((l) => l.loss)}`);
  for (const t of weightTensors(trained.weights)) t.dispose();
  assert.equal(tf.memory().numTensors, before);
  await assert.rejects(main(['--workers', '1', '--steps', '1', '--vision-lr-scale', 'fast']), /--vision-lr-scale must be a number/);
  await assert.rejects(main(['--workers', '1', '--steps', '1', '--twin-curriculum', '5']), /--twin-curriculum must be a whole number of steps from 0 to --steps \(1\), got 5/);
});

test('a contrast twin draws the shape dark on white whatever its colours, and a batch twins only its single-shape scenes', async () => {
  await initBackend();
  // A scene of one light shape on a dark background: the twin's background is near white and its shape near black.
  let sample;
  for (let seed = 1; ; seed++) {
    sample = renderSampleSync(createRng(seed), { size: 64, kind: 'scene' });
    const one = sample.labels.shapes!;
    if (one.length === 1 && one[0]!.color === 'yellow' && ['black', 'blue', 'purple'].includes(sample.labels.background!)) break;
  }
  const { width, data } = sample.image;
  const [cx, cy] = sample.labels.shapes![0]!.center.map((v) => Math.round(v * width));
  const twin = contrastTwin(sample.image);
  assert.equal(twin.data.length, data.length);
  const at = (x: number, y: number) => twin.data[(y * width + x) * 3]!;
  assert.ok(at(1, 1) > 220 && at(width - 2, width - 2) > 220, `background corners are near white: ${at(1, 1)}, ${at(width - 2, width - 2)}`);
  assert.ok(at(cx!, cy!) < 40, `the shape's centre is near black: ${at(cx!, cy!)}`);
  for (let o = 0; o < twin.data.length; o += 3) assert.ok(twin.data[o] === twin.data[o + 1] && twin.data[o] === twin.data[o + 2], 'gray');

  const tok = await ClipTokenizer.load();
  const pre = { size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  const b = clipBatch(3, 0, { batchSize: 16, pre, tok, labelMix: true, contrastTwins: true });
  const single = b.samples.flatMap((s, i) => (s.labels.shapes?.length === 1 ? [i] : []));
  assert.ok(single.length > 0, 'the label mix draws single-shape scenes');
  assert.deepEqual([...b.twins!.of], single);
  assert.equal(b.twins!.pixels.length, single.length * 3 * 32 * 32);
  assert.equal(clipBatch(3, 0, { batchSize: 16, pre, tok, labelMix: true }).twins, undefined, 'no twins unless asked');
});

test('a twin blend mixes every scene with its contrast twin and leaves doodles as drawn', async () => {
  await initBackend();
  const tok = await ClipTokenizer.load();
  const pre = { size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  const at = (twinBlend?: number) => clipBatch(5, 1, { batchSize: 12, pre, tok, labelMix: true, ...(twinBlend === undefined ? {} : { twinBlend }) });
  const [drawn, half, twins] = [at(), at(0.5), at(1)];
  const one = 3 * 32 * 32;
  const kinds = drawn.samples.map((s) => (s.labels.shapes ? 'scene' : 'doodle'));
  assert.ok(kinds.includes('scene') && kinds.includes('doodle'), `the batch has both kinds: ${kinds}`);
  drawn.samples.forEach((s, i) => {
    const slice = (b: typeof drawn) => b.pixels.subarray(i * one, (i + 1) * one);
    if (!s.labels.shapes) {
      assert.deepEqual(slice(twins), slice(drawn), `doodle ${i} is left as drawn`);
      return;
    }
    assert.deepEqual(slice(twins), toClipPixels(contrastTwin(s.image), pre), `scene ${i} at blend 1 is its twin`);
    let worst = 0;
    slice(half).forEach((v, j) => { worst = Math.max(worst, Math.abs(v - (slice(drawn)[j]! + slice(twins)[j]!) / 2)); });
    assert.ok(worst < 1e-5, `scene ${i} at blend 0.5 is halfway (worst ${worst})`);
    assert.notDeepEqual(slice(twins), slice(drawn), `scene ${i} changed`);
  });
  assert.deepEqual(at(0).pixels, drawn.pixels, 'blend 0 is the picture as drawn');
  assert.throws(() => at(1.5), /twinBlend must be in \[0, 1\], got 1.5/);
});

test('contrast twins (and a twin curriculum) train with the heads and their predictor, resume, leak no tensor; without the heads they are refused', async () => {
  await initBackend();
  const dir = mkdtempSync(join(tmpdir(), 'demo-clip-twins-'));
  try {
    const before = tf.memory().numTensors;
    const opts = { ...base, batchSize: 16, steps: 3, labelsFrom: 0, auxHeads: true, contrastTwins: true, twinCurriculum: 2, checkpointDir: dir, checkpointEvery: 10 };
    const first = await trainClip({ ...opts, until: 2 });
    assert.ok(first.losses.every((l) => Number.isFinite(l.loss)), `losses ${first.losses.map((l) => l.loss)}`);
    const saved = readSafetensors(join(dir, 'aux-heads.safetensors')).tensors.get('predictor');
    assert.deepEqual(saved?.shape, [TINY.projection, TINY.projection], 'the predictor is checkpointed with the heads');
    const eye = (saved!.data as Float32Array).map((x, i) => x - (i % (TINY.projection + 1) === 0 ? 1 : 0));
    assert.ok(eye.some((x) => Math.abs(x) > 1e-6), 'the predictor trained away from the identity');
    for (const t of weightTensors(first.weights)) t.dispose();
    const resumed = await trainClip({ ...opts, resume: true });
    assert.equal(resumed.startedAt, 2);
    for (const t of weightTensors(resumed.weights)) t.dispose();
    assert.equal(tf.memory().numTensors, before);
    await assert.rejects(trainClip({ ...opts, auxHeads: false, checkpointDir: undefined }), /--no-aux/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the onnx engine (towers on onnxruntime, batches drawn in a worker) trains the same model as tfjs, step for step', { timeout: 120_000 }, async () => {
  await initBackend();
  const before = tf.memory().numTensors;
  // The full recipe's terms: labels with backgrounds, auxiliary heads, contrast twins, a twin blend, a slower image tower.
  const recipe = { ...base, steps: 4, labelsFrom: 0, auxHeads: true, backgroundLabels: true, contrastTwins: true, twinCurriculum: 2, visionLrScale: 0.2 };
  const viaTfjs = await trainClip({ ...recipe, engine: 'tfjs' });
  const viaOnnx = await trainClip({ ...recipe, engine: 'onnx' });
  viaOnnx.losses.forEach((l, i) => {
    const want = viaTfjs.losses[i]!.loss;
    assert.ok(Math.abs(l.loss - want) < 1e-4 * Math.abs(want), `step ${l.step}: onnx loss ${l.loss}, tfjs ${want}`);
  });
  const [a, b] = [await clipWeightsToStateDict(viaTfjs.weights), await clipWeightsToStateDict(viaOnnx.weights)];
  for (const [key, t] of a) {
    // The k bias's true gradient is 0: Adam turns either side's rounding noise into steps.
    if (t.dtype !== 'float32' || key.endsWith('k_proj.bias')) continue;
    const x = t.data as Float32Array, y = b.get(key)!.data as Float32Array;
    let err = 0, scale = 0;
    x.forEach((v, i) => { err = Math.max(err, Math.abs(v - y[i]!)); scale = Math.max(scale, Math.abs(v)); });
    assert.ok(err <= 1e-4 * scale, `${key}: the engines' weights differ by ${err} after 4 steps`);
  }
  for (const t of [...weightTensors(viaTfjs.weights), ...weightTensors(viaOnnx.weights)]) t.dispose();
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks through the onnx engine');
  await assert.rejects(main(['--steps', '1', '--engine', 'torch']), /--engine must be one of tfjs, onnx, got torch/);
  await assert.rejects(main(['--workers', '2', '--steps', '1', '--engine', 'onnx']), /The onnx engine trains in one process \(onnxruntime uses every core\); use --workers 1/);
});

test('the batch worker draws the same batch as clipBatch, and a bad request is an error naming it', { timeout: 60_000 }, async () => {
  const tok = await ClipTokenizer.load();
  const pre = { size: 32, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
  const prefetch = await BatchPrefetcher.start(pre);
  try {
    prefetch.request(7, { seed: 5, index: 7, batchSize: 6, labelMix: true, contrastTwins: true, twinBlend: 0.5 });
    prefetch.request(8, { seed: 5, index: 8, batchSize: 6, twinBlend: 2 });
    const got = await prefetch.take(7);
    const want = clipBatch(5, 7, { batchSize: 6, pre, tok, labelMix: true, contrastTwins: true, twinBlend: 0.5 });
    assert.deepEqual(got.captions, want.captions);
    assert.deepEqual(Array.from(got.pixels), Array.from(want.pixels));
    assert.deepEqual(Array.from(got.twins!.of), Array.from(want.twins!.of));
    await assert.rejects(prefetch.take(8), /batch 8: twinBlend must be in \[0, 1\], got 2/);
  } finally {
    await prefetch.close();
  }
});

test('the contrast twin is its definition, byte for byte: border median, 255 − 2·RGB distance, clamped', () => {
  // The definition, as plainly as it reads; contrastTwin takes a histogram and an ink table.
  const reference = ({ width: w, height: h, data }: RgbImage): Uint8Array => {
    const border: number[][] = [[], [], []];
    const take = (x: number, y: number) => { for (let c = 0; c < 3; c++) border[c]!.push(data[(y * w + x) * 3 + c]!); };
    for (let x = 0; x < w; x++) { take(x, 0); take(x, h - 1); }
    for (let y = 1; y < h - 1; y++) { take(0, y); take(w - 1, y); }
    const bg = border.map((b) => b.sort((p, q) => p - q)[b.length >> 1]!);
    const out = new Uint8ClampedArray(data.length);
    for (let o = 0; o < data.length; o += 3) out[o] = out[o + 1] = out[o + 2] = 255 - 2 * Math.hypot(data[o]! - bg[0]!, data[o + 1]! - bg[1]!, data[o + 2]! - bg[2]!);
    return new Uint8Array(out.buffer);
  };
  const pictures: RgbImage[] = [];
  for (let i = 0; i < 24; i++) pictures.push(renderSampleSync(createRng(500 + i), { size: i % 2 ? 128 : 64, kind: 'scene' }).image);
  let state = 99;
  const byte = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 24);
  for (const [w, h] of [[7, 5], [40, 3], [33, 64], [9, 1], [1, 6], [2, 2]] as const) pictures.push({ width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, byte) });
  for (const p of pictures) assert.deepEqual(contrastTwin(p).data, reference(p), `${p.width}×${p.height}`);
});
