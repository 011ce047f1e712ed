/**
 * CLIP parity with the reference PyTorch implementation, over every fixture set in
 * CLIP_STUDIO_FIXTURES: image and text embeddings, logits, the pixel normalisation, plus the
 * properties generation relies on (no tensor leaks, a gradient w.r.t. the pixels).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tf, initBackend } from '../../engine/runtime/tf';
import { readSafetensors } from '../../engine/io/safetensors';
import { encodeImage, encodeText, loadClip, logitsPerImage, normalizePixels, type Clip } from '../../engine/models/clip';
import { activationTolerance, fixtureDirs, maxAbs, maxAbsDiff } from '../helpers/fixtures';

async function loadCase(dir: string) {
  await initBackend();
  const clip = await loadClip({ configPath: join(dir, 'clip_config.json'), weightsPath: join(dir, 'clip.safetensors') });
  const cases = readSafetensors(join(dir, 'cases.safetensors'), (k) => k.startsWith('clip.')).tensors;
  const get = (k: string) => {
    const t = cases.get(k);
    assert.ok(t, `${dir}/cases.safetensors lacks ${k}`);
    return t;
  };
  const tensor = <R extends tf.Rank>(k: string) => tf.tensor(get(k).data, get(k).shape, get(k).dtype === 'int32' ? 'int32' : 'float32') as unknown as tf.Tensor<R>;
  return { clip, get, tensor };
}

function expectClose(name: string, ours: ArrayLike<number>, ref: ArrayLike<number>, diagnostic: (m: string) => void) {
  const err = maxAbsDiff(ours, ref);
  const tol = activationTolerance(ref);
  diagnostic(`${name}: max|ours - ref| = ${err.toExponential(2)} (tolerance ${tol.toExponential(2)}, max|ref| = ${maxAbs(ref).toFixed(3)})`);
  assert.ok(err <= tol, `${name}: max|ours - ref| = ${err} exceeds ${tol}`);
}

for (const dir of fixtureDirs()) {
  test(`CLIP matches the reference outputs (${dir})`, async (t) => {
    const { clip, get, tensor } = await loadCase(dir);
    t.diagnostic(`backend ${tf.getBackend()}; ignored keys: ${clip.ignoredKeys.join(', ') || 'none'}`);
    try {
      const normalised = normalizePixels(clip.config, tensor<tf.Rank.R4>('clip.pixels_0_1'));
      expectClose('normalizePixels(pixels_0_1) vs pixel_values', await normalised.data(), get('clip.pixel_values').data, (m) => t.diagnostic(m));
      normalised.dispose();

      const pixels = tensor<tf.Rank.R4>('clip.pixel_values');
      const ids = tensor<tf.Rank.R2>('clip.input_ids');
      const image = encodeImage(clip, pixels);
      const text = encodeText(clip, ids);
      const logits = logitsPerImage(clip, image, text);
      assert.deepEqual(image.shape, get('clip.image_embeds').shape);
      assert.deepEqual(text.shape, get('clip.text_embeds').shape);
      assert.deepEqual(logits.shape, get('clip.logits_per_image').shape);
      expectClose('image_embeds', await image.data(), get('clip.image_embeds').data, (m) => t.diagnostic(m));
      expectClose('text_embeds', await text.data(), get('clip.text_embeds').data, (m) => t.diagnostic(m));
      expectClose('logits_per_image', await logits.data(), get('clip.logits_per_image').data, (m) => t.diagnostic(m));
      tf.dispose([pixels, ids, image, text, logits]);
    } finally {
      clip.dispose();
    }
  });

  test(`CLIP leaks no tensors across repeated calls, load and dispose (${dir})`, async () => {
    await initBackend();
    const before = tf.memory().numTensors;
    const { clip, tensor } = await loadCase(dir);
    const pixels = tensor<tf.Rank.R4>('clip.pixel_values');
    const ids = tensor<tf.Rank.R2>('clip.input_ids');
    const during = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const image = encodeImage(clip, pixels);
      const text = encodeText(clip, ids);
      const logits = logitsPerImage(clip, image, text);
      await logits.data();
      tf.dispose([image, text, logits]);
      assert.equal(tf.memory().numTensors, during, `call ${i + 1} left tensors behind`);
    }
    tf.dispose([pixels, ids]);
    clip.dispose();
    assert.equal(tf.memory().numTensors, before, 'loadClip + dispose left tensors behind');
  });

  test(`encodeImage is differentiable w.r.t. the pixels (${dir})`, async (t) => {
    const { clip, tensor } = await loadCase(dir);
    t.diagnostic(`backend ${tf.getBackend()}`);
    const pixels = tensor<tf.Rank.R4>('clip.pixel_values');
    try {
      const f = (x: tf.Tensor) => tf.sum(encodeImage(clip, x as tf.Tensor4D));
      const grad = tf.grad(f)(pixels);
      const g = await grad.data();
      assert.deepEqual(grad.shape, pixels.shape);
      assert.ok(g.every(Number.isFinite), 'gradient has non-finite values');
      assert.ok(maxAbs(g) > 0, 'gradient is zero everywhere');
      // The gradient must be the right one, not just some numbers: compare its directional
      // derivative along the gradient itself with a central finite difference.
      const eps = 1e-2;
      const unit = tf.div(grad, tf.norm(grad));
      const [plus, minus] = [1, -1].map((s) => tf.tidy(() => f(tf.add(pixels, tf.mul(unit, s * eps))).dataSync()[0]!));
      const numeric = (plus! - minus!) / (2 * eps);
      const analytic = (await tf.norm(grad).data())[0]!;
      t.diagnostic(`directional derivative: analytic ${analytic.toFixed(5)}, finite difference ${numeric.toFixed(5)}`);
      assert.ok(Math.abs(numeric - analytic) <= 2e-2 * analytic, `gradient disagrees with finite differences: ${analytic} vs ${numeric}`);
      tf.dispose([grad, unit]);
    } finally {
      pixels.dispose();
      clip.dispose();
    }
  });
}
