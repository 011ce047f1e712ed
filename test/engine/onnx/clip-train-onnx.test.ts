/**
 * The CLIP towers' ONNX training graphs against clip.ts (itself checked against Hugging Face's
 * CLIPModel in test/reference): embeddings and every weight's gradient, on the demo CLIP's
 * sizes from a fresh seeded initialisation, through the real tokenizer's ids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { demoTokenIds } from '../../../engine/demo/clip-data';
import { DEMO_CLIP_SIZES, demoClipConfigJson, demoPreprocessorJson, initClipStateDict } from '../../../engine/demo/train-clip';
import { encodeImage, encodeText } from '../../../engine/models/clip';
import { clipWeightsFromStateDict, tokenRowTable, towerTensors, weightTensors } from '../../../engine/models/clip-weights';
import { parseClipConfig } from '../../../engine/models/config';
import { ClipTokenizer } from '../../../engine/models/tokenizer';
import { OrtClipTowers, patchRows, textInputs } from '../../../engine/onnx/clip-train-onnx';
import { initBackend, tf } from '../../../engine/runtime/tf';

await initBackend();
const tok = await ClipTokenizer.load();
const tokenIds = demoTokenIds(tok);
const config = parseClipConfig(demoClipConfigJson(DEMO_CLIP_SIZES, tokenIds.length), demoPreprocessorJson(DEMO_CLIP_SIZES));

/** max |a − b| / max |b| */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0, scale = 0;
  for (let i = 0; i < b.length; i++) { err = Math.max(err, Math.abs(a[i]! - b[i]!)); scale = Math.max(scale, Math.abs(b[i]!)); }
  return err / scale;
}

test('both towers: embeddings and the gradient of every weight match clip.ts', { timeout: 120_000 }, async () => {
  const w = clipWeightsFromStateDict(initClipStateDict(config, 3, tokenIds), config, 'demo CLIP', { trainable: true });
  const shapes = { vision: new Map([...towerTensors(w, 'vision')].map(([k, t]) => [k, t.shape])), text: new Map([...towerTensors(w, 'text')].map(([k, t]) => [k, t.shape])) };
  const values = (tower: 'vision' | 'text') => new Map([...towerTensors(w, tower)].map(([k, t]) => [k, t.dataSync() as Float32Array]));
  const towers = await OrtClipTowers.create(config, shapes, { threads: 1 });
  const N = 4;
  const S = config.vision.imageSize;
  const pixels = tf.randomNormal([N, 3, S, S], 0, 1, 'float32', 1) as tf.Tensor4D;
  const dEmbeds = tf.randomNormal([N, config.projectionDim], 0, 1, 'float32', 2);
  const texts = ['a red circle', 'a drawing of a cat on a plain gray background', 'two zebras', 'a'];
  const rows = texts.map((s) => tok.tokenize([s], 77).ids).map((ids) => Array.from(ids.slice(0, ids.indexOf(49407) + 1)));
  const T = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(N * T);
  rows.forEach((r, i) => ids.set(r, i * T)); // 0-padded after the end token
  const idTensor = tf.tensor2d(ids, [N, T], 'int32');
  try {
    const cases = [
      { tower: 'vision' as const, input: { n: N, patches: patchRows(pixels.dataSync() as Float32Array, N, config.vision) }, f: () => encodeImage(w, pixels) },
      { tower: 'text' as const, input: { n: N, t: T, ...textInputs(ids, N, T, tokenRowTable(tokenIds), config.text.vocabSize, config.text.maxPositionEmbeddings) }, f: () => encodeText(w, idTensor) },
    ];
    for (const c of cases) {
      const want = tf.tidy(c.f);
      const got = await towers.embed(c.tower, values(c.tower), c.input);
      const e = relErr(got, want.dataSync());
      assert.ok(e < 1e-5, `${c.tower} embeddings off by ${e} (relative)`);
      want.dispose();
      const tensors = towerTensors(w, c.tower);
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(c.f(), dEmbeds)) as tf.Scalar, [...tensors.values()] as tf.Variable[]);
      const ours = await towers.gradients(c.tower, values(c.tower), c.input, dEmbeds.dataSync() as Float32Array);
      for (const [path, t] of tensors) {
        // The k bias's true gradient is 0 (softmax ignores a constant per query): both sides are rounding noise.
        if (path.endsWith('qkv.b')) {
          const W = t.shape[0]! / 3;
          const q = (a: ArrayLike<number>) => Array.from(a).filter((_, i) => i < W || i >= 2 * W);
          const eq = relErr(q(ours.get(path)!), q(grads[(t as tf.Variable).name]!.dataSync()));
          assert.ok(eq < 1e-4, `${c.tower} ${path} (q and v rows): off by ${eq}`);
          continue;
        }
        const eg = relErr(ours.get(path)!, grads[(t as tf.Variable).name]!.dataSync());
        assert.ok(eg < 1e-4, `${c.tower} ${path}: gradient off by ${eg} (relative)`);
      }
      tf.dispose([value, ...Object.values(grads)]);
    }
  } finally {
    await towers.release();
    tf.dispose([pixels, dEmbeds, idTensor, ...weightTensors(w)]);
  }
});

test('patch rows put the class token first and each patch in (channel, row, column) order', () => {
  const c = { ...config.vision, imageSize: 4, patchSize: 2, numChannels: 2 };
  const pixels = Float32Array.from({ length: 2 * 4 * 4 }, (_, i) => i); // one picture, values = flat NCHW index
  const rows = patchRows(pixels, 1, c);
  const width = 2 * 2 * 2 + 1;
  assert.deepEqual(Array.from(rows.subarray(0, width)), [0, 0, 0, 0, 0, 0, 0, 0, 1]);
  // patch (0, 1): channel 0 rows 0–1, columns 2–3, then channel 1
  assert.deepEqual(Array.from(rows.subarray(2 * width, 3 * width)), [2, 3, 6, 7, 18, 19, 22, 23, 0]);
  assert.throws(() => patchRows(pixels, 2, c), /32 values for 2 pictures/);
});

test('text inputs: one-hot table rows, the end token found by its id, a causal mask', () => {
  const rowOf = Int32Array.from([0, 1, 2, 3, 4]); // ids 0..4, id 4 plays <|endoftext|>
  const x = textInputs(Int32Array.from([3, 1, 4, 0, 3, 4, 0, 0]), 2, 4, rowOf, 5, 6);
  assert.deepEqual(Array.from(x.ends), [0, 0, 1, 0, 0, 1, 0, 0]);
  assert.equal(x.tokens[(0 * 4 + 1) * 5 + 1], 1); // sequence 0, position 1 reads row 1
  assert.equal(x.mask[0 * 4 + 1], -1e9);
  assert.equal(x.mask[1 * 4 + 0], 0);
  assert.equal(x.positions[2 * 6 + 2], 1);
  assert.throws(() => textInputs(new Int32Array(8), 2, 4, rowOf, 5, 3), /exceed the context/);
});
