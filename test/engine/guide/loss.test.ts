/**
 * The pieces of the guided loss, on hand-computed cases: prompt parsing, the clamp's
 * backward rule, the straight-through quantiser's identity gradient, the spherical distance.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, initBackend } from '../../../engine/runtime/tf';
import { InputError, ShapeError } from '../../../engine/errors';
import type { HostTensor } from '../../../engine/io/host-tensor';
import { buildVqganWeights, expectedVqganKeys, type VqganConfig } from '../../../engine/models/vqgan-weights';
import { vqganQuantize } from '../../../engine/models/vqgan';
import type { ClipWeights } from '../../../engine/models/clip';
import { parsePrompts, clampWithGrad, straightThroughQuantize, sphericalDistance, guidedLoss } from '../../../engine/guide/loss';

test('parsePrompts reads text:weight parts, negatives, and leaves colons in text alone', () => {
  assert.deepEqual(parsePrompts('a red circle:1 | a blue square:-0.5'), [
    { text: 'a red circle', weight: 1 }, { text: 'a blue square', weight: -0.5 },
  ]);
  assert.deepEqual(parsePrompts('a cat'), [{ text: 'a cat', weight: 1 }]);
  assert.deepEqual(parsePrompts('a photo: sunset'), [{ text: 'a photo: sunset', weight: 1 }]);
  assert.deepEqual(parsePrompts('a cat:abc'), [{ text: 'a cat:abc', weight: 1 }], 'a word after the colon is text');
  assert.deepEqual(parsePrompts('time 12:30 pm:2.5e-1'), [{ text: 'time 12:30 pm', weight: 0.25 }], 'only the last colon');
  assert.deepEqual(parsePrompts('  x : +.5 |y:3'), [{ text: 'x', weight: 0.5 }, { text: 'y', weight: 3 }]);
});

test('parsePrompts rejects empty parts and weights that are not finite numbers, naming the prompt field', () => {
  for (const bad of ['', 'a | | b', 'a cat:2x', 'a cat:1e999', 'a cat:nan', 'a cat:-inf', 'a cat:', ':0.5', 'a |']) {
    assert.throws(() => parsePrompts(bad), (e: Error) => e instanceof InputError && e.field === 'prompt', `"${bad}" should be rejected`);
  }
  assert.throws(() => parsePrompts('a cat:2x'), /finite number.*"2x"/);
});

test('clampWithGrad clamps forward and passes g only where g·(x − clamp(x)) ≥ 0', async () => {
  await initBackend();
  const x = tf.tensor1d([-0.5, 0.5, 1.5, 2, -1]);
  const g = tf.tensor1d([1, 1, 1, -1, -2]); // upstream gradient
  assert.deepEqual([...clampWithGrad(x, 0, 1).dataSync()], [0, 0.5, 1, 1, 0]);
  const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(clampWithGrad(v, 0, 1), g)))(x);
  // -0.5: g·(x−c) = −0.5 < 0 → 0;  0.5: inside → 1;  1.5: 0.5 ≥ 0 → 1;  2: −1 < 0 → 0;  −1: (−2)(−1) = 2 ≥ 0 → −2
  assert.deepEqual([...dx.dataSync()].map((v) => v + 0), [0, 1, 1, 0, -2]); // + 0 folds −0 (= −1·0) into 0
  tf.dispose([x, g, dx]);
});

function tinyVqgan() {
  const config: VqganConfig = {
    embed_dim: 4, n_embed: 6,
    ddconfig: { double_z: false, z_channels: 4, resolution: 8, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1], num_res_blocks: 1, attn_resolutions: [], dropout: 0 },
  };
  let seed = 7;
  const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5;
  const sd = new Map<string, HostTensor>();
  for (const [k, shape] of expectedVqganKeys(config)) {
    sd.set(k, { dtype: 'float32', storedAs: 'F32', shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, rand) });
  }
  return buildVqganWeights(config, sd);
}

test('straightThroughQuantize returns codebook vectors forward and the identity gradient backward', async () => {
  await initBackend();
  const vqgan = tinyVqgan();
  tf.tidy(() => {
    const z = tf.randomNormal([1, 2, 3, 4], 0, 0.3, 'float32', 1) as tf.Tensor4D;
    const { zq } = vqganQuantize(vqgan, z);
    assert.deepEqual([...straightThroughQuantize(vqgan, z).dataSync()], [...zq.dataSync()]);
    const c = tf.randomNormal([1, 2, 3, 4], 0, 1, 'float32', 2);
    const dz = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(straightThroughQuantize(vqgan, v as tf.Tensor4D), c)))(z);
    assert.deepEqual([...dz.dataSync()], [...c.dataSync()]);
  });
});

test('sphericalDistance: 0 for one direction, π²/8 orthogonal, π²/2 opposite; broadcasts', async () => {
  await initBackend();
  tf.tidy(() => {
    const a = tf.tensor2d([[3, 4, 0], [1, 0, 0], [0, 2, 0]]);
    const b = tf.tensor2d([[6, 8, 0], [0, 5, 0], [0, -1, 0]]);
    const d = sphericalDistance(a, b).dataSync();
    const expected = [0, Math.PI ** 2 / 8, Math.PI ** 2 / 2];
    expected.forEach((v, i) => assert.ok(Math.abs(d[i]! - v) < 1e-5, `pair ${i}: ${d[i]} vs ${v}`));
    const grid = sphericalDistance(tf.reshape(a, [3, 1, 3]), tf.reshape(b, [1, 3, 3])); // [3,1,3] vs [1,3,3]
    assert.deepEqual(grid.shape, [3, 3]);
    assert.ok(Math.abs((grid.arraySync() as number[][])[1]![1]! - Math.PI ** 2 / 8) < 1e-5);
  });
});

test('guidedLoss refuses a weight count that does not match the text embeddings', async () => {
  await initBackend();
  const vqgan = tinyVqgan();
  tf.tidy(() => {
    const args = { vqgan, clip: {} as ClipWeights, z: tf.zeros([1, 2, 2, 4]) as tf.Tensor4D, textEmbeds: tf.zeros([2, 8]) as tf.Tensor2D, mean: [0, 0, 0], std: [1, 1, 1] };
    assert.throws(() => guidedLoss({ ...args, weights: [1] }), ShapeError);
    assert.throws(() => guidedLoss({ ...args, weights: [1, NaN] }), InputError);
  });
});
