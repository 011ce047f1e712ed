/**
 * OrtClipEmbedder: concurrent requests share one run and each caller gets its own rows; the
 * text cache (memory and a persistent store) skips repeats; user-supplied exports with the wrong names
 * fail with a message that says what was expected; pruned vocabularies match tfjs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '../../../engine/io/safetensors';
import type { StateDict } from '../../../engine/io/host-tensor';
import { parseClipConfig, readClipConfig } from '../../../engine/models/config';
import { expectedClipShapes } from '../../../engine/models/clip-weights';
import { encodeText, loadClip } from '../../../engine/models/clip';
import { initBackend, tf } from '../../../engine/runtime/tf';
import { buildClipTextOnnx, buildClipVisionOnnx } from '../../../engine/onnx/clip-onnx';
import { OnnxGraph } from '../../../engine/onnx/graph';
import { OrtClipEmbedder, similarityLogits } from '../../../engine/onnx/embedder';
import { LruCache, type TextEmbeddingStore } from '../../../engine/onnx/text-cache';
import { fixtureDirs, maxAbsDiff } from '../../helpers/fixtures';

const dir = fixtureDirs()[0]!;
const config = readClipConfig(join(dir, 'clip_config.json'));
const tensors = readSafetensors(join(dir, 'clip.safetensors')).tensors;
const cases = readSafetensors(join(dir, 'cases.safetensors'), (k) => k.startsWith('clip.')).tensors;
const pixels = cases.get('clip.pixel_values')!.data as Float32Array;
const ids = cases.get('clip.input_ids')!;
const perImage = pixels.length / cases.get('clip.pixel_values')!.shape[0]!;
const T = ids.shape[1]!;

/** Four distinct images: the two fixture images and two variations of them. */
function images(): Float32Array[] {
  const a = pixels.slice(0, perImage);
  const b = pixels.slice(perImage, 2 * perImage);
  return [a, b, a.map((v) => -v), b.map((v, i) => v * 0.5 + (i % 7) * 0.1)];
}

test('concurrent embedImages calls run as one batch and each caller gets its own rows', async () => {
  const e = await OrtClipEmbedder.fromWeights({ config, tensors }, { windowMs: 20 });
  try {
    const imgs = images();
    const pair = new Float32Array(2 * perImage);
    pair.set(imgs[3]!, 0);
    pair.set(imgs[0]!, perImage);
    const together = await Promise.all([...imgs.map((p) => e.embedImages(p, 1)), e.embedImages(pair, 2)]);
    assert.equal(e.stats.imageRuns, 1, 'five concurrent requests should have been one run');
    assert.equal(e.stats.imageRows, 6);
    const alone: Float32Array[] = [];
    for (const p of imgs) alone.push(await e.embedImages(p, 1));
    assert.equal(e.stats.imageRuns, 5);
    const E = config.projectionDim;
    for (let i = 0; i < imgs.length; i++) {
      assert.equal(together[i]!.length, E);
      assert.ok(maxAbsDiff(together[i]!, alone[i]!) < 1e-5, `request ${i} got another request's row`);
    }
    assert.ok(maxAbsDiff(together[4]!.subarray(0, E), alone[3]!) < 1e-5);
    assert.ok(maxAbsDiff(together[4]!.subarray(E), alone[0]!) < 1e-5);
    assert.ok(maxAbsDiff(alone[0]!, alone[1]!) > 1e-3, 'different images gave the same embedding');
  } finally {
    await e.close();
  }
});

test('a batch never exceeds maxBatch rows', async () => {
  const e = await OrtClipEmbedder.fromWeights({ config, tensors }, { windowMs: 20, maxBatch: 2 });
  try {
    const imgs = images();
    await Promise.all([...imgs, imgs[0]!].map((p) => e.embedImages(p, 1)));
    assert.equal(e.stats.imageRows, 5);
    assert.equal(e.stats.imageRuns, 3);
  } finally {
    await e.close();
  }
});

test('wrong-sized input is a ShapeError, and a closed embedder refuses work', async () => {
  const e = await OrtClipEmbedder.fromWeights({ config, tensors });
  await assert.rejects(e.embedImages(new Float32Array(10), 1), /expects 1 image/);
  await assert.rejects(e.embedTexts(new Int32Array(T + 1), 1), /expects 1 row/);
  await e.close();
  await assert.rejects(e.embedImages(pixels.slice(0, perImage), 1), /closed/);
});

/** A persistent store in a Map that outlives the embedders (the server's is SQLite: test/server/text-embeddings.test.ts). */
class MapStore implements TextEmbeddingStore {
  readonly rows = new Map<string, Float32Array>();
  closed = 0;
  get(model: string, key: string) { return this.rows.get(`${model}|${key}`)?.slice(); }
  put(model: string, key: string, e: Float32Array) { this.rows.set(`${model}|${key}`, e.slice()); }
  close() { this.closed++; }
}

test('repeated texts come from the cache, in memory and from the persistent store after a restart', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'clip-text-cache-'));
  const persisted = new MapStore();
  const n = ids.shape[0]!;
  const rows = ids.data as Int32Array;
  try {
    // The same row twice in one call is encoded once.
    const doubled = new Int32Array(2 * T);
    doubled.set(rows.subarray(0, T), 0);
    doubled.set(rows.subarray(0, T), T);
    const first = await OrtClipEmbedder.fromWeights({ config, tensors, dataDir }, { textStore: persisted });
    const a = await first.embedTexts(rows, n);
    assert.equal(first.stats.textRows, n);
    const again = await first.embedTexts(rows, n);
    assert.equal(first.stats.textRuns, 1, 'the second call should not have run the text tower');
    assert.deepEqual(again, a);
    await first.embedTexts(doubled, 2);
    assert.equal(first.stats.textRuns, 1);
    await first.close();

    assert.equal(persisted.closed, 1, 'close() closes the store');
    assert.equal(persisted.rows.size, n);
    const second = await OrtClipEmbedder.fromWeights({ config, tensors, dataDir }, { textStore: persisted });
    const b = await second.embedTexts(rows, n);
    assert.equal(second.stats.textRuns, 0, 'after a restart the texts should come from the store');
    assert.equal(second.stats.textCacheHits, n);
    assert.deepEqual(b, a);
    // Padding after the end token cannot change the embedding, so a shorter row is the same entry.
    const end = rows.subarray(0, T).indexOf(Math.max(...rows.subarray(0, T)));
    const short = await second.embedTexts(rows.slice(0, end + 1), 1);
    assert.equal(second.stats.textRuns, 0);
    assert.deepEqual(short, a.subarray(0, config.projectionDim));
    await second.close();
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('the LRU forgets the least recently used entry first', () => {
  const lru = new LruCache<number>(2);
  lru.set('a', 1);
  lru.set('b', 2);
  assert.equal(lru.get('a'), 1); // a is now the most recent
  lru.set('c', 3);
  assert.equal(lru.get('b'), undefined);
  assert.equal(lru.get('a'), 1);
  assert.equal(lru.get('c'), 3);
});

test('a user-supplied pair of standard exports loads and matches the built graphs', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'clip-user-onnx-'));
  try {
    writeFileSync(join(tmp, 'vision_model.onnx'), buildClipVisionOnnx(config, tensors));
    writeFileSync(join(tmp, 'text_model.onnx'), buildClipTextOnnx(config, tensors));
    const user = await OrtClipEmbedder.fromOnnxFiles({ visionPath: join(tmp, 'vision_model.onnx'), textPath: join(tmp, 'text_model.onnx') });
    assert.equal(user.info.imageSize, config.vision.imageSize);
    assert.equal(user.info.embedDim, config.projectionDim);
    const img = await user.embedImages(pixels, 2);
    const txt = await user.embedTexts(ids.data as Int32Array, ids.shape[0]!);
    await user.close();
    assert.ok(maxAbsDiff(img, cases.get('clip.image_embeds')!.data) < 1e-4);
    assert.ok(maxAbsDiff(txt, cases.get('clip.text_embeds')!.data) < 1e-4);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('a user ONNX file with other input or output names is refused with a clear error', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'clip-user-onnx-'));
  try {
    const g = new OnnxGraph('not_clip');
    const x = g.input('images', 'float32', ['batch', 3, 8, 8]);
    g.output(g.op('ReduceMean', [x], { axes: [2, 3], keepdims: 0 }), 'features', 'float32', ['batch', 3]);
    writeFileSync(join(tmp, 'vision_model.onnx'), g.toModel());
    writeFileSync(join(tmp, 'text_model.onnx'), buildClipTextOnnx(config, tensors));
    await assert.rejects(
      OrtClipEmbedder.fromOnnxFiles({ visionPath: join(tmp, 'vision_model.onnx'), textPath: join(tmp, 'text_model.onnx') }),
      (err: Error) => {
        assert.equal(err.name, 'ModelLoadError');
        assert.match(err.message, /vision_model\.onnx is not a standard CLIP vision export/);
        assert.match(err.message, /expected input "pixel_values".*output "image_embeds"/);
        assert.match(err.message, /found inputs images \(float32 \[batch, 3, 8, 8\]\) and outputs features/);
        return true;
      },
    );
    await assert.rejects(
      OrtClipEmbedder.fromOnnxFiles({ visionPath: join(tmp, 'missing.onnx'), textPath: join(tmp, 'text_model.onnx') }),
      (err: Error) => err.name === 'ModelLoadError' && /missing\.onnx/.test(err.message),
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('similarityLogits is exp(logit_scale) times the cosine', () => {
  const out = similarityLogits(Float32Array.from([3, 4]), 1, Float32Array.from([3, 4, 0, 2, -1, 0]), 3, 10);
  assert.deepEqual([...out].map((v) => Math.round(v * 1e5) / 1e5), [10, 8, -6]);
});

/** A tiny random model with a pruned token table, as the bundled demo model has. */
function prunedModel(): { config: ReturnType<typeof parseClipConfig>; tensors: StateDict } {
  const cfg = parseClipConfig({
    projection_dim: 8,
    text_config: { hidden_size: 16, intermediate_size: 32, num_attention_heads: 2, num_hidden_layers: 2, vocab_size: 6, pruned_vocab: true, pad_token_id: 0 },
    vision_config: { hidden_size: 16, intermediate_size: 32, num_attention_heads: 2, num_hidden_layers: 1, image_size: 16, patch_size: 8 },
  });
  let s = 12345;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.4;
  const sd: StateDict = new Map();
  for (const [key, shape] of expectedClipShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (key.endsWith('token_ids')) {
      sd.set(key, { dtype: 'int32', storedAs: 'I32', shape, data: Int32Array.from([0, 320, 1000, 49406, 49407, -1]) });
    } else {
      sd.set(key, { dtype: 'float32', storedAs: 'F32', shape, data: Float32Array.from({ length: n }, () => (key.includes('norm') && key.endsWith('weight') ? 1 + rand() : rand())) });
    }
  }
  return { config: cfg, tensors: sd };
}

test('a pruned token table reads the same rows on onnxruntime as on tfjs (known and unknown ids)', async () => {
  const { config: cfg, tensors: sd } = prunedModel();
  const rows = Int32Array.from([
    49406, 320, 1000, 49407, 0, 0, 0, 0,
    49406, 555, 320, 1000, 49407, 0, 0, 0, // 555 is not in the table: it reads the unknown row
  ]);
  const e = await OrtClipEmbedder.fromWeights({ config: cfg, tensors: sd });
  const ort = await e.embedTexts(rows, 2);
  await e.close();
  await initBackend();
  const clip = await loadClip({ config: cfg, tensors: sd });
  try {
    const t = encodeText(clip, tf.tensor2d(rows, [2, 8], 'int32'));
    const ref = await t.data();
    t.dispose();
    assert.ok(maxAbsDiff(ort, ref) < 1e-5, `onnxruntime and tfjs differ by ${maxAbsDiff(ort, ref)}`);
  } finally {
    clip.dispose();
  }
});

test('fromModelDir opens a directory of exports, or of config and weights', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'clip-model-dir-'));
  try {
    // transformers.js layout: onnx/vision_model.onnx + onnx/text_model.onnx
    mkdirSync(join(tmp, 'onnx'));
    writeFileSync(join(tmp, 'onnx', 'vision_model.onnx'), buildClipVisionOnnx(config, tensors));
    writeFileSync(join(tmp, 'onnx', 'text_model.onnx'), buildClipTextOnnx(config, tensors));
    const fromExports = await OrtClipEmbedder.fromModelDir(tmp);
    assert.match(fromExports.info.modelKey, /^user-/);
    const a = await fromExports.embedImages(pixels, 2);
    await fromExports.close();
    assert.ok(maxAbsDiff(a, cases.get('clip.image_embeds')!.data) < 1e-4);
    // a fixture directory has clip_config.json + clip.safetensors
    const fromWeights = await OrtClipEmbedder.fromModelDir(dir);
    const b = await fromWeights.embedImages(pixels, 2);
    await fromWeights.close();
    assert.ok(maxAbsDiff(b, cases.get('clip.image_embeds')!.data) < 1e-4);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
