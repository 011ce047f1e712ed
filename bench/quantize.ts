/**
 * The int8 vision tower (clip-onnx.ts, `visionPrecision: 'int8'`) against fp32: speed at one
 * batch on this machine, and how far its embeddings and rankings move.
 *
 * Speed: the two sessions' runs interleaved, best of `runs` each, so load from other work
 * falls on both alike. Faithfulness, two ways: on random weights at the real size (random
 * inputs; every layer's quantisation error still adds up through the depth), and on the demo
 * CLIP's trained weights with the synthetic world's pictures ranked against its labels (real
 * weights, real inputs, but a small model). Trained ViT-B/32 weights are not measured here
 * (none on this machine); trained transformers often have outlier activation channels, which
 * per-tensor activation quantisation handles less well than these random ones.
 */
import { OrtClipEmbedder, renderBatch, toClipPixels, worldVocabulary, ClipTokenizer, type ClipConfig, type StateDict } from '../engine/index';
import { progress } from './measure';

export interface Int8Speed { fp32_ms: number; int8_ms: number; speedup: number; batch: number }
export interface Int8Agreement { cosine_min: number; cosine_mean: number; top1_agreement: number; images: number; labels: number }

function cosine(a: Float32Array, b: Float32Array): number {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { d += a[i]! * b[i]!; na += a[i]! * a[i]!; nb += b[i]! * b[i]!; }
  return d / Math.sqrt(na * nb);
}

async function pair(config: ClipConfig, tensors: StateDict, batch: number): Promise<[OrtClipEmbedder, OrtClipEmbedder]> {
  const opts = { maxBatch: batch, windowMs: 0, textCacheSize: 0 };
  const fp32 = await OrtClipEmbedder.fromWeights({ config, tensors }, { ...opts, visionPrecision: 'fp32' });
  const int8 = await OrtClipEmbedder.fromWeights({ config, tensors }, { ...opts, visionPrecision: 'int8' }).catch(async (e: unknown) => { await fp32.close(); throw e; });
  return [fp32, int8];
}

/** Batch-`batch` image encode, fp32 and int8, interleaved, best of `runs` each. */
export async function int8Speed(config: ClipConfig, tensors: StateDict, batch = 8, runs = 5): Promise<Int8Speed> {
  const [fp32, int8] = await pair(config, tensors, batch);
  try {
    const R = config.vision.imageSize;
    const px = new Float32Array(batch * config.vision.numChannels * R * R).map((_, i) => Math.sin(i * 0.37) * 1.5);
    await fp32.embedImages(px, batch);
    await int8.embedImages(px, batch);
    let f = Infinity, q = Infinity;
    progress(`int8 vs fp32: image encode, batch ${batch}, ${runs} runs each, interleaved`);
    for (let i = 0; i < runs; i++) {
      let t = performance.now();
      await fp32.embedImages(px, batch);
      f = Math.min(f, performance.now() - t);
      t = performance.now();
      await int8.embedImages(px, batch);
      q = Math.min(q, performance.now() - t);
    }
    return { fp32_ms: f, int8_ms: q, speedup: f / q, batch };
  } finally {
    await fp32.close();
    await int8.close();
  }
}

/**
 * fp32 vs int8 on `images` [n] (preprocessed, NCHW) ranked against `labels` (text embeddings
 * [m, E], from the fp32 text tower both share): per-image cosine of the image embeddings, and
 * how often both rank the same label first.
 */
async function agreement(config: ClipConfig, tensors: StateDict, pixels: Float32Array, n: number, text: (e: OrtClipEmbedder) => Promise<{ embeds: Float32Array; m: number }>): Promise<Int8Agreement> {
  const [fp32, int8] = await pair(config, tensors, 32);
  try {
    const [a, b] = [await fp32.embedImages(pixels, n), await int8.embedImages(pixels, n)];
    const { embeds, m } = await text(fp32);
    const la = fp32.logits(a, n, embeds, m);
    const lb = fp32.logits(b, n, embeds, m);
    const E = a.length / n;
    let min = 1, sum = 0, same = 0;
    for (let i = 0; i < n; i++) {
      const c = cosine(a.subarray(i * E, (i + 1) * E), b.subarray(i * E, (i + 1) * E));
      min = Math.min(min, c);
      sum += c;
      const rowA = Array.from(la.subarray(i * m, (i + 1) * m));
      const rowB = Array.from(lb.subarray(i * m, (i + 1) * m));
      if (rowA.indexOf(Math.max(...rowA)) === rowB.indexOf(Math.max(...rowB))) same++;
    }
    return { cosine_min: min, cosine_mean: sum / n, top1_agreement: same / n, images: n, labels: m };
  } finally {
    await fp32.close();
    await int8.close();
  }
}

/** Random weights at `config`'s size: `n` smooth random images against `m` random token rows. */
export async function int8AgreementRandom(config: ClipConfig, tensors: StateDict, ids: Int32Array, m: number, n = 32): Promise<Int8Agreement> {
  progress(`int8 vs fp32: agreement on random weights (width ${config.vision.hiddenSize}), ${n} images × ${m} texts`);
  const R = config.vision.imageSize;
  const one = config.vision.numChannels * R * R;
  const px = new Float32Array(n * one);
  for (let i = 0; i < n; i++) for (let j = 0; j < one; j++) px[i * one + j] = Math.sin(j * 0.013 * (1 + i) + i) * 1.2 + Math.cos(j * 0.0007 * (i + 3));
  return agreement(config, tensors, px, n, async (e) => ({ embeds: await e.embedTexts(ids, m), m }));
}

/** The demo CLIP's trained weights: `n` pictures of the synthetic world against every shape and doodle label. */
export async function int8AgreementDemo(config: ClipConfig, tensors: StateDict, n = 256): Promise<Int8Agreement> {
  const vocab = worldVocabulary();
  const labels = [...vocab.shapes.map((s) => `a ${s}`), ...vocab.colors.map((c) => `a ${c} shape`), ...vocab.subjects.map((s) => `a drawing of a ${s}`)];
  progress(`int8 vs fp32: agreement on the demo CLIP's weights, ${n} world pictures × ${labels.length} labels`);
  const samples = await renderBatch(7777, n, { size: 128 });
  const R = config.vision.imageSize;
  const one = 3 * R * R;
  const px = new Float32Array(n * one);
  samples.forEach((s, i) => px.set(toClipPixels(s.image, config.preprocess), i * one));
  const tok = await ClipTokenizer.load();
  const { ids } = tok.tokenize(labels, config.text.maxPositionEmbeddings);
  return agreement(config, tensors, px, n, async (e) => ({ embeds: await e.embedTexts(ids, labels.length), m: labels.length }));
}
