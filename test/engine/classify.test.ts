/**
 * Zero-shot classification with the bundled demo CLIP: pictures drawn here (flat SVG, not the
 * world's renderer) in PNG, JPEG and WebP at odd sizes are ranked against text labels.
 * classify runs on onnxruntime; its scores are held to the tfjs model's (labelProbabilities).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp'; // only to write a JPEG fixture; the engine decodes it through io/images
import { classify, labelLogits, labelProbabilities, textIds } from '../../engine/classify';
import { InputError } from '../../engine/errors';
import { encodePng, preprocessForClip, rasterizeSvg, toClipPixels } from '../../engine/io/images';
import { encodeText, loadClip } from '../../engine/models/clip';
import { ClipTokenizer } from '../../engine/models/tokenizer';
import { initBackend, tf } from '../../engine/runtime/tf';
import { ClipScorer } from '../../engine/scorer';
import { renderBatch } from '../../engine/demo/world';

const DEMO = new URL('../../models/demo-clip', import.meta.url).pathname;

const svg = (w: number, h: number, body: string, bg = '#ffffff') =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><rect width="${w}" height="${h}" fill="${bg}"/>${body}</svg>`;
const star = (cx: number, cy: number, r: number) => Array.from({ length: 10 }, (_, i) => {
  const rr = i % 2 ? 0.42 * r : r, a = -Math.PI / 2 + (i * Math.PI) / 5;
  return `${(cx + rr * Math.cos(a)).toFixed(1)},${(cy + rr * Math.sin(a)).toFixed(1)}`;
}).join(' ');

async function raster(w: number, h: number, body: string, bg?: string) {
  // rasterizeSvg makes squares; draw on a square canvas and crop for other aspect ratios
  const side = Math.max(w, h);
  const img = await rasterizeSvg(svg(side, side, body, bg), side);
  return sharp(img.data, { raw: { width: side, height: side, channels: 3 } }).extract({ left: 0, top: 0, width: w, height: h });
}

const LABELS = ['a red circle', 'a blue star', 'a yellow triangle'];

test('pictures in PNG, JPEG and WebP of any size are ranked against the labels, best first', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'classify-'));
  try {
    const files = {
      circle: join(dir, 'circle.png'), star: join(dir, 'star.jpg'), triangle: join(dir, 'triangle.webp'),
    };
    const c = await raster(128, 128, '<circle cx="64" cy="64" r="40" fill="#e53935"/>');
    writeFileSync(files.circle, await c.png().toBuffer());
    const s = await raster(300, 200, `<polygon points="${star(150, 105, 80)}" fill="#1e88e5"/>`, '#eeeeee');
    writeFileSync(files.star, await s.jpeg({ quality: 85 }).toBuffer());
    const t = await raster(97, 97, '<polygon points="48,12 88,82 8,82" fill="#fdd835"/>', '#263238');
    writeFileSync(files.triangle, await t.webp({ quality: 80 }).toBuffer());

    await initBackend();
    const before = tf.memory().numTensors;
    const results = await classify([files.circle, files.star, files.triangle], LABELS, { model: DEMO });
    assert.equal(tf.memory().numTensors, before, 'classify frees every tensor');
    assert.deepEqual(results.map((r) => r.file), [files.circle, files.star, files.triangle]);
    assert.deepEqual(results.map((r) => r.ranking[0]!.label), LABELS);
    for (const r of results) {
      assert.equal(r.ranking.length, LABELS.length);
      assert.ok(Math.abs(r.ranking.reduce((a, x) => a + x.score, 0) - 1) < 1e-5, 'scores are probabilities');
      r.ranking.forEach((x, i) => i && assert.ok(x.score <= r.ranking[i - 1]!.score, 'sorted best first'));
    }
    // Bytes with a name work as files do.
    const [fromBytes] = await classify([{ name: 'upload.png', data: await encodePng((await rasterizeSvg(svg(128, 128, '<circle cx="64" cy="64" r="40" fill="#e53935"/>'), 128)).data, 128, 128) }], LABELS, { model: DEMO });
    assert.equal(fromBytes!.file, 'upload.png');
    assert.equal(fromBytes!.ranking[0]!.label, 'a red circle');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad labels and unreadable images are InputErrors that name the problem', async () => {
  await assert.rejects(classify(['x.png'], [], { model: DEMO }), (e) => e instanceof InputError && /at least one label/.test(e.message));
  await assert.rejects(classify(['x.png'], ['a', 'a'], { model: DEMO }), (e) => e instanceof InputError && /differ/.test(e.message));
  await assert.rejects(classify(['/nonexistent/missing.png'], LABELS, { model: DEMO }), (e) => e instanceof InputError && /missing\.png: file not found/.test(e.message));
  const svgBytes = Buffer.from(svg(8, 8, ''));
  await assert.rejects(classify([{ name: 'drawing.svg', data: svgBytes }], LABELS, { model: DEMO }), (e) => e instanceof InputError && /drawing\.svg/.test(e.message));
});

test('label rows cut to the longest label give the logits of the full 77-token context', async () => {
  await initBackend();
  const clip = await loadClip(DEMO);
  const tok = await ClipTokenizer.load();
  try {
    const labels = ['a red circle', 'two small blue stars in the top left corner on a plain green background'];
    const cut = textIds(tok, labels, 77);
    assert.equal(cut.shape[1], tok.encode(labels[1]!).length + 2);
    const full = tf.tensor2d(tok.tokenize(labels, 77).ids, [2, 77], 'int32');
    const [a, b] = [encodeText(clip, cut), encodeText(clip, full)];
    const [x, y] = [await a.data(), await b.data()];
    x.forEach((v, i) => assert.ok(Math.abs(v - y[i]!) < 1e-4));
    tf.dispose([cut, full, a, b]);
    const img = await rasterizeSvg(svg(128, 128, '<circle cx="64" cy="64" r="40" fill="#e53935"/>'), 128);
    const logits = await labelLogits(clip, tok, toClipPixels(img, clip.config.preprocess), 1, labels);
    assert.ok(logits[0]!.every(Number.isFinite));
  } finally {
    clip.dispose();
  }
});

test('classify on onnxruntime gives the scores of the tfjs model, image by image and label by label', async () => {
  await initBackend();
  const clip = await loadClip(DEMO);
  const tok = await ClipTokenizer.load();
  const scorer = await ClipScorer.open({ model: DEMO });
  try {
    // Drawn pictures and the synthetic world's own: scores away from 0 and 1, where a wrong
    // logit scale or a mismatched preprocessing would show.
    const drawn = await Promise.all([
      '<circle cx="64" cy="64" r="40" fill="#e53935"/>',
      `<polygon points="${star(64, 64, 50)}" fill="#1e88e5"/>`,
      '<polygon points="64,14 116,110 12,110" fill="#fdd835"/>',
      '<rect x="20" y="30" width="80" height="60" fill="#43a047"/><circle cx="90" cy="40" r="20" fill="#8e24aa"/>',
    ].map(async (body, i) => ({ name: `drawn-${i}.png`, data: await encodePng((await rasterizeSvg(svg(128, 128, body, i === 2 ? '#263238' : '#ffffff'), 128)).data, 128, 128) })));
    const world = await Promise.all((await renderBatch(1234, 4, { size: 64 })).map(async (s, i) => ({ name: `world-${i}.png`, data: await encodePng(s.image.data, s.image.width, s.image.height) })));
    const images = [...drawn, ...world];
    const labels = ['a red circle', 'a blue star', 'a yellow triangle', 'a green square', 'a purple circle', 'a picture of a house'];
    const ort = await classify(images, labels, { scorer, batchSize: 3 });
    const S = clip.config.vision.imageSize;
    const pixels = new Float32Array(images.length * 3 * S * S);
    for (const [i, img] of images.entries()) pixels.set(await preprocessForClip(img.data, clip.config.preprocess), i * 3 * S * S);
    const tfjs = await labelProbabilities(clip, tok, pixels, images.length, labels);
    let worst = 0;
    let spread = 0;
    ort.forEach((r, i) => {
      assert.equal(r.file, images[i]!.name);
      for (const { label, score } of r.ranking) {
        const ref = tfjs[i]![labels.indexOf(label)]!;
        worst = Math.max(worst, Math.abs(score - ref));
        spread = Math.max(spread, Math.min(ref, 1 - ref));
      }
      const refBest = labels[tfjs[i]!.indexOf(Math.max(...tfjs[i]!))];
      assert.equal(r.ranking[0]!.label, refBest, `${r.file}: ORT and tfjs disagree on the best label`);
    });
    assert.ok(spread > 0.05, 'every score was near 0 or 1: the comparison would not see a difference');
    assert.ok(worst < 1e-4, `ORT and tfjs probabilities differ by up to ${worst}`);
  } finally {
    clip.dispose();
    await scorer.close();
  }
});
