/**
 * The demo VQGAN trainer, on a tiny config: a few steps lower the loss and leak no tensors,
 * the written model loads through the real loader and reconstructs as the trained weights do,
 * and the trainable conv path's kernel gradients agree with finite differences.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf, initBackend } from '../../../engine/runtime/tf';
import {
  buildVqganWeights, disposeVqgan, loadVqgan, parseVqganConfig, vqganDecode, vqganEncode, vqganQuantize, type VqganConfig,
} from '../../../engine/models/vqgan';
import { initVqganStateDict, trainVqgan, DEMO_VQGAN_CONFIG, type TrainLogEntry } from '../../../engine/demo/train-vqgan';
import { createRng } from '../../../engine/demo/rng';

const tiny: VqganConfig = {
  embed_dim: 4, n_embed: 16,
  ddconfig: { double_z: false, z_channels: 4, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 1], num_res_blocks: 1, attn_resolutions: [], dropout: 0 },
};

test('a few training steps lower the loss, write a loadable model and leak no tensors', async () => {
  await initBackend();
  const out = mkdtempSync(join(tmpdir(), 'demo-vqgan-'));
  const before = tf.memory().numTensors;
  const log: TrainLogEntry[] = [];
  const { weights, history } = await trainVqgan({
    seed: 3, config: tiny, steps: 12, batchSize: 4, learningRate: 3e-3, warmupSteps: 2, logEvery: 1, restartEvery: 4, out, onLog: (e) => log.push(e),
  });
  assert.equal(history.length, 12);
  assert.deepEqual(log, history);
  for (const e of history) assert.ok(Number.isFinite(e.loss) && Number.isFinite(e.psnr), `step ${e.step}: loss ${e.loss}`);
  const first = (history[0]!.loss + history[1]!.loss) / 2;
  const last = (history[10]!.loss + history[11]!.loss) / 2;
  console.log(`  loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
  assert.ok(last < 0.9 * first, `loss should fall by a tenth in 12 steps: ${first} → ${last}`);

  // The directory is a model the real loader reads (float16, so close, not equal).
  const loaded = await loadVqgan(out);
  assert.deepEqual(loaded.config, parseVqganConfig(tiny));
  const x = tf.randomUniform([2, 16, 16, 3], -1, 1, 'float32', 5);
  const recon = (w: typeof weights) => tf.tidy(() => {
    const q = vqganQuantize(w, vqganEncode(w, x as tf.Tensor4D));
    return { indices: Array.from(q.indices.dataSync()), image: vqganDecode(w, q.zq).dataSync() as Float32Array };
  });
  const a = recon(weights), b = recon(loaded);
  const agree = a.indices.filter((k, i) => k === b.indices[i]).length / a.indices.length;
  assert.ok(agree > 0.9, `codes should mostly agree after the float16 round trip, ${agree}`);
  const meanDiff = a.image.reduce((acc, v, i) => acc + Math.abs(v - b.image[i]!), 0) / a.image.length;
  assert.ok(meanDiff < 0.05, `reconstructions should be close after the round trip, mean |Δ| ${meanDiff}`);
  const training = JSON.parse(readFileSync(join(out, 'training.json'), 'utf8'));
  assert.equal(training.step, 12);
  x.dispose();
  disposeVqgan(weights);
  disposeVqgan(loaded);
  assert.equal(tf.memory().numTensors, before, 'training and loading should leave no tensors behind');
});

test('the onnx engine trains as tfjs does: the same losses, codes in use and weights over 8 steps', async () => {
  await initBackend();
  const run = (engine: 'tfjs' | 'onnx') => trainVqgan({
    seed: 5, config: tiny, steps: 8, batchSize: 4, learningRate: 3e-3, warmupSteps: 2, logEvery: 1, restartEvery: 4, engine,
  });
  const a = await run('tfjs');
  const b = await run('onnx');
  a.history.forEach((e, i) => {
    const f = b.history[i]!;
    assert.ok(Math.abs(e.loss - f.loss) < 1e-4 * e.loss, `step ${e.step}: loss ${e.loss} (tfjs) vs ${f.loss} (onnx)`);
    assert.ok(Math.abs(e.codesUsed - f.codesUsed) <= 0.07, `step ${e.step}: codes used ${e.codesUsed} vs ${f.codesUsed}`);
  });
  const flat = (w: typeof a.weights) => tf.tidy(() => tf.concat([w.decoder.convOut.w, w.encoder.convIn.w].map((t) => tf.reshape(t, [-1]))).dataSync());
  const wa = flat(a.weights), wb = flat(b.weights);
  let diff = 0, norm = 0;
  wa.forEach((v, i) => { diff += (v - wb[i]!) ** 2; norm += v * v; });
  assert.ok(Math.sqrt(diff / norm) < 1e-3, `weights after 8 steps differ by ${Math.sqrt(diff / norm)} (relative)`);
  disposeVqgan(a.weights);
  disposeVqgan(b.weights);
  await assert.rejects(trainVqgan({ seed: 1, config: tiny, steps: 1, engine: 'torch' as 'onnx' }), /`engine` option must be one of tfjs, onnx, got torch/);
});

test('kernel gradients of the trainable conv path match finite differences', async () => {
  await initBackend();
  // Variables switch vqgan.ts to its trainable convs (stride 1 and the stride-2 downsample).
  const w = buildVqganWeights(tiny, initVqganStateDict(tiny, createRng(11)));
  const constants = [w.encoder.levels[0]!.resample!.w, w.decoder.convOut.w];
  const downsample = tf.variable(constants[0]!);
  const convOut = tf.variable(constants[1]!);
  w.encoder.levels[0]!.resample!.w = downsample as unknown as tf.Tensor4D;
  w.decoder.convOut.w = convOut as unknown as tf.Tensor4D;
  const x = tf.randomUniform([2, 16, 16, 3], -1, 1, 'float32', 7);
  const target = tf.randomUniform([2, 16, 16, 3], -1, 1, 'float32', 8);
  const loss = () => tf.tidy(() => tf.mean(tf.square(tf.sub(vqganDecode(w, vqganEncode(w, x as tf.Tensor4D)), target))) as tf.Scalar);
  const { grads, value } = tf.variableGrads(loss, [downsample, convOut]);
  for (const v of [downsample, convOut]) {
    const dir = tf.randomNormal(v.shape, 0, 1, 'float32', 21);
    const analytic = tf.tidy(() => tf.sum(tf.mul(grads[v.name]!, dir)).dataSync()[0]!);
    const orig = v.clone();
    const eps = 3e-4; // small: GroupNorm over few pixels makes the loss strongly curved
    v.assign(tf.tidy(() => tf.add(orig, tf.mul(dir, eps))));
    const plus = tf.tidy(() => loss().dataSync()[0]!);
    v.assign(tf.tidy(() => tf.sub(orig, tf.mul(dir, eps))));
    const minus = tf.tidy(() => loss().dataSync()[0]!);
    v.assign(orig);
    const numeric = (plus - minus) / (2 * eps);
    assert.ok(Math.abs(analytic - numeric) <= 0.02 * Math.abs(numeric) + 1e-4, `${v.name}: analytic ${analytic}, numeric ${numeric}`);
    tf.dispose([dir, orig]);
  }
  tf.dispose([value, x, target, ...Object.values(grads), ...constants]);
  disposeVqgan(w);
});

test('the bundled demo config is a valid taming config and the options are range-checked', async () => {
  assert.deepEqual(parseVqganConfig(DEMO_VQGAN_CONFIG), DEMO_VQGAN_CONFIG);
  const dd = DEMO_VQGAN_CONFIG.ddconfig;
  assert.throws(() => parseVqganConfig({ ...DEMO_VQGAN_CONFIG, ddconfig: { ...dd, num_groups: 5 } }), /multiple of 5 \(GroupNorm has 5 groups\)/);
  assert.equal(parseVqganConfig({ ...DEMO_VQGAN_CONFIG, ddconfig: { ...dd, num_groups: undefined } }).ddconfig.num_groups, undefined, 'taming configs keep 32 groups');
  await assert.rejects(trainVqgan({ seed: 1, config: tiny, steps: 0 }), /`steps` option must be an integer between 1 and 100000, got 0/);
});
