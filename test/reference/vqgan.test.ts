/**
 * VQGAN parity with taming-transformers: encoder + quant_conv, nearest-codebook indices,
 * z_q and decoder, over every fixture set (CLIP_STUDIO_FIXTURES). Fixtures are NCHW; our
 * VQGAN runs NHWC, so inputs and outputs are transposed at this boundary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tf, initBackend } from '../../engine/runtime/tf';
import { readSafetensors } from '../../engine/io/safetensors';
import {
  loadVqgan, disposeVqgan, vqganEncode, vqganQuantize, vqganDecode, vqganCodebookLookup, nchwToNhwc, nhwcToNchw,
} from '../../engine/models/vqgan';
import { fixtureDirs, maxAbsDiff, activationTolerance } from '../helpers/fixtures';

for (const dir of fixtureDirs()) {
  test(`VQGAN matches taming-transformers (${dir})`, async () => {
    await initBackend();
    const vqgan = await loadVqgan({ configPath: join(dir, 'vqgan_config.json'), weightsPath: join(dir, 'vqgan.safetensors') });
    const { tensors } = readSafetensors(join(dir, 'cases.safetensors'), (n) => n.startsWith('vqgan.'));
    const ref = (k: string) => tensors.get(k)!;
    const before = tf.memory().numTensors;
    const close = (name: string, ours: tf.Tensor4D) => {
      const r = ref(name);
      assert.deepEqual(nhwcToNchw(ours).shape, r.shape, `${name} shape`);
      const err = maxAbsDiff(tf.tidy(() => nhwcToNchw(ours).dataSync()), r.data);
      const tol = activationTolerance(r.data);
      console.log(`  ${name}: max|ours − ref| = ${err.toExponential(2)} (tolerance ${tol.toExponential(2)})`);
      assert.ok(err <= tol, `${name}: max abs error ${err} exceeds ${tol}`);
    };
    tf.tidy(() => {
      const x = ref('vqgan.x');
      const h = vqganEncode(vqgan, nchwToNhwc(tf.tensor4d(x.data as Float32Array, x.shape as [number, number, number, number])));
      close('vqgan.h', h);
      const { zq, indices } = vqganQuantize(vqgan, h);
      const refIdx = ref('vqgan.indices');
      assert.deepEqual(indices.shape, refIdx.shape);
      const ours = indices.dataSync();
      const wrong = refIdx.data.findIndex((v, i) => v !== ours[i]);
      assert.equal(wrong, -1, `index ${wrong} differs: ours ${ours[wrong]}, reference ${refIdx.data[wrong]}`);
      close('vqgan.z_q', zq);
      close('vqgan.z_q', vqganCodebookLookup(vqgan, indices));
      close('vqgan.decoded', vqganDecode(vqgan, zq));
    });
    assert.equal(tf.memory().numTensors, before, 'the forward passes leaked tensors');
    disposeVqgan(vqgan);
  });
}

/** Every tensor of a weight tree, in a fixed walk order. */
function leaves(v: unknown, out: tf.Tensor[] = []): tf.Tensor[] {
  if (v instanceof tf.Tensor) out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => leaves(x, out));
  else if (v && typeof v === 'object') Object.values(v).forEach((x) => leaves(x, out));
  return out;
}

for (const dir of fixtureDirs()) {
  test(`the Lightning checkpoint vqgan.ckpt loads to the safetensors weights, ignoring loss.* (${dir})`, async () => {
    await initBackend();
    const config = join(dir, 'vqgan_config.json');
    const fromSafetensors = await loadVqgan({ configPath: config, weightsPath: join(dir, 'vqgan.safetensors') });
    const fromCkpt = await loadVqgan({ configPath: config, weightsPath: join(dir, 'vqgan.ckpt') });
    assert.ok(fromCkpt.ignoredKeys.length > 0 && fromCkpt.ignoredKeys.every((k) => k.startsWith('loss.')), `ignored: ${fromCkpt.ignoredKeys.slice(0, 3)}`);
    const a = leaves({ ...fromSafetensors, config: null, ignoredKeys: null });
    const b = leaves({ ...fromCkpt, config: null, ignoredKeys: null });
    assert.equal(a.length, b.length);
    a.forEach((t, i) => assert.equal(maxAbsDiff(t.dataSync(), b[i]!.dataSync()), 0, `tensor ${i} differs`));
    disposeVqgan(fromSafetensors);
    disposeVqgan(fromCkpt);
  });
}
