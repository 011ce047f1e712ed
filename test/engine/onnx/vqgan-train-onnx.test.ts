/**
 * The VQGAN training graphs (vqgan-train-onnx.ts) against vqgan.ts on tfjs: h and the nearest
 * codes, the reconstruction loss, and the gradient of every weight and of zq, on the bundled
 * demo config and on a config with what the demo lacks (a channel change, so nin_shortcut, and
 * attention inside a level).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEMO_VQGAN_CONFIG, initVqganStateDict, toVariables } from '../../../engine/demo/train-vqgan';
import { createRng } from '../../../engine/demo/rng';
import { buildVqganWeights, disposeVqgan, parseVqganConfig, vqganDecode, vqganEncode, vqganQuantize, type VqganConfig } from '../../../engine/models/vqgan';
import { OrtVqganTrainer, vqganPartShapes, vqganPartTensors, vqganPartValues, type VqganPart } from '../../../engine/onnx/vqgan-train-onnx';
import { initBackend, tf } from '../../../engine/runtime/tf';
import { maxAbsDiff } from '../../helpers/fixtures';

await initBackend();

const L1_WEIGHT = 0.5;

const SMALL: VqganConfig = {
  embed_dim: 4, n_embed: 16,
  ddconfig: { double_z: false, z_channels: 4, resolution: 16, in_channels: 3, out_ch: 3, ch: 8, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [8], dropout: 0, num_groups: 4 },
};

/** max |a − b| over max(1, max |b|). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 1;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
  return maxAbsDiff(a, b) / scale;
}

async function compare(name: string, raw: VqganConfig, n: number) {
  const config = parseVqganConfig(raw);
  // PyTorch's default initialisation, residual branches included (zeroResiduals would starve half the gradients)
  const { weights } = toVariables(buildVqganWeights(config, initVqganStateDict(config, createRng(3), { zeroResiduals: false })));
  const S = config.ddconfig.resolution;
  const x = tf.randomUniform([n, S, S, 3], -1, 1, 'float32', 5) as tf.Tensor4D;
  const pixels = x.dataSync() as Float32Array;
  const codebook = tf.randomNormal([config.n_embed, config.embed_dim], 0, 0.3, 'float32', 9) as tf.Tensor2D;
  tf.dispose(weights.codebook);
  weights.codebook = codebook;

  const ort = await OrtVqganTrainer.create(config, vqganPartShapes(weights), L1_WEIGHT, { provider: 'cpu' });
  try {
    const values = await vqganPartValues(weights);
    // encode: h and the nearest codes
    const { h, indices } = await ort.encode(values.encoder, pixels, n, codebook.dataSync() as Float32Array);
    const hRef = vqganEncode(weights, x);
    const q = vqganQuantize(weights, hRef);
    assert.ok(relErr(h, hRef.dataSync()) < 1e-4, `${name}: h differs by ${relErr(h, hRef.dataSync())}`);
    const refIdx = q.indices.dataSync();
    const agree = indices.filter((k, i) => k === refIdx[i]).length / indices.length;
    assert.ok(agree > 0.99, `${name}: nearest codes agree at only ${(100 * agree).toFixed(1)} % of positions`);

    // decode: loss, d zq and every decoder weight's gradient
    const zq = q.zq;
    const dec = await ort.decode(values.decoder, zq.dataSync() as Float32Array, pixels, n);
    const loss = (z: tf.Tensor4D) => {
      const diff = tf.sub(vqganDecode(weights, z), x);
      return { mse: tf.mean(tf.square(diff)), l1: tf.mean(tf.abs(diff)), total: tf.add(tf.mean(tf.square(diff)), tf.mul(L1_WEIGHT, tf.mean(tf.abs(diff)))) as tf.Scalar };
    };
    const ref = tf.tidy(() => loss(zq));
    assert.ok(Math.abs(dec.mse - ref.mse.dataSync()[0]!) < 1e-5 * Math.max(1, ref.mse.dataSync()[0]!), `${name}: mse ${dec.mse} vs ${ref.mse.dataSync()[0]}`);
    assert.ok(Math.abs(dec.l1 - ref.l1.dataSync()[0]!) < 1e-5, `${name}: l1 ${dec.l1} vs ${ref.l1.dataSync()[0]}`);
    const dZqRef = tf.grad((z: tf.Tensor) => loss(z as tf.Tensor4D).total)(zq);
    assert.ok(relErr(dec.dZq, dZqRef.dataSync()) < 1e-3, `${name}: d zq differs by ${relErr(dec.dZq, dZqRef.dataSync())}`);
    const checkGrads = (part: VqganPart, got: Map<string, Float32Array>, f: () => tf.Scalar) => {
      const tensors = vqganPartTensors(weights, part);
      const { grads } = tf.variableGrads(f, [...tensors.values()] as tf.Variable[]);
      let worst = { path: '', err: 0 };
      for (const [path, t] of tensors) {
        const err = relErr(got.get(path)!, grads[(t as tf.Variable).name]!.dataSync());
        if (err > worst.err) worst = { path, err };
      }
      tf.dispose(Object.values(grads));
      assert.ok(worst.err < 1e-3, `${name}: the gradient of ${worst.path} differs by ${worst.err}`);
      return worst;
    };
    checkGrads('decoder', dec.grads, () => loss(zq).total);

    // the encoder's gradients for an upstream dh
    const dh = tf.randomNormal(hRef.shape, 0, 1, 'float32', 13);
    const enc = await ort.encoderGradients(values.encoder, pixels, n, dh.dataSync() as Float32Array);
    checkGrads('encoder', enc, () => tf.sum(tf.mul(vqganEncode(weights, x), dh)) as tf.Scalar);
    tf.dispose([hRef, q.indices, zq, ref.mse, ref.l1, ref.total, dZqRef, dh, x]);
  } finally {
    await ort.release();
    disposeVqgan(weights);
  }
}

test('the demo VQGAN: h, nearest codes, loss and every gradient as on tfjs', async () => {
  await compare('demo', DEMO_VQGAN_CONFIG, 2);
});

test('a VQGAN with a channel change (nin_shortcut) and attention inside a level', async () => {
  await compare('small', SMALL, 3);
});
