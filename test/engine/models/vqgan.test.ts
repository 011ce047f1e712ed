/**
 * VQGAN loading and structure: config forms and validation, the key/shape check, and a
 * config unlike the fixture's (four levels, two blocks per level, attention at 8) running
 * with the shapes that config implies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf, initBackend } from '../../../engine/runtime/tf';
import { ModelLoadError, ShapeError } from '../../../engine/errors';
import { writeSafetensors } from '../../../engine/io/safetensors';
import type { HostTensor } from '../../../engine/io/host-tensor';
import {
  loadVqgan, disposeVqgan, parseVqganConfig, expectedVqganKeys, vqganEncode, vqganQuantize, vqganDecode,
  type VqganConfig,
} from '../../../engine/models/vqgan';

const config: VqganConfig = {
  embed_dim: 8, n_embed: 10,
  ddconfig: {
    double_z: false, z_channels: 4, resolution: 32, in_channels: 3, out_ch: 3, ch: 32,
    ch_mult: [1, 1, 2, 2], num_res_blocks: 2, attn_resolutions: [8], dropout: 0,
  },
};

/** A random state dict for `cfg`, with small values so activations stay tame. */
function randomStateDict(cfg: VqganConfig, extra: Record<string, number[]> = {}): Map<string, HostTensor> {
  let seed = 1;
  const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 0.2;
  const sd = new Map<string, HostTensor>();
  for (const [k, shape] of [...expectedVqganKeys(cfg), ...Object.entries(extra)]) {
    const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, rand);
    sd.set(k, { dtype: 'float32', storedAs: 'F32', shape, data });
  }
  return sd;
}

function writeModel(cfg: unknown, sd: Map<string, HostTensor>): string {
  const dir = mkdtempSync(join(tmpdir(), 'vqgan-test-'));
  writeFileSync(join(dir, 'vqgan_config.json'), JSON.stringify(cfg));
  writeSafetensors(join(dir, 'vqgan.safetensors'), sd);
  return dir;
}

test('the config is accepted flat or in taming yaml nesting, and bad values name the option', () => {
  assert.deepEqual(parseVqganConfig({ model: { params: config } }), config);
  assert.deepEqual(parseVqganConfig({ params: config }), config);
  assert.throws(() => parseVqganConfig({ ...config, n_embed: 0 }), (e: Error) => e instanceof ModelLoadError && /`n_embed`/.test(e.message));
  assert.throws(() => parseVqganConfig({ ...config, ddconfig: { ...config.ddconfig, ch_mult: [] } }), /`ddconfig.ch_mult`/);
  assert.throws(() => parseVqganConfig({ ...config, ddconfig: { ...config.ddconfig, ch: 48 } }), /32 groups/);
});

test('the expected keys follow the config: levels, blocks, attention and shortcuts', () => {
  const keys = expectedVqganKeys(config);
  assert.deepEqual(keys.get('encoder.down.2.block.0.nin_shortcut.weight'), [64, 32, 1, 1]);
  assert.ok(keys.has('encoder.down.2.attn.1.q.weight'), 'attention at resolution 8 = level 2 of a 32px encoder');
  assert.ok(!keys.has('encoder.down.3.downsample.conv.weight'), 'the last encoder level does not downsample');
  assert.ok(keys.has('decoder.up.2.block.2.conv1.weight'), 'the decoder has num_res_blocks + 1 blocks per level');
  assert.ok(keys.has('decoder.up.2.attn.2.k.weight') && !keys.has('decoder.up.1.attn.0.k.weight'), 'the decoder meets resolution 8 at level 2 too');
  assert.ok(!keys.has('decoder.up.0.upsample.conv.weight') && keys.has('decoder.up.3.upsample.conv.weight'));
  assert.deepEqual(keys.get('quantize.embedding.weight'), [10, 8]);
});

test('a model of another shape loads and runs with the shapes its config implies', async () => {
  await initBackend();
  const dir = writeModel({ model: { params: config } }, randomStateDict(config, { 'loss.discriminator.main.0.weight': [2, 3, 4, 4] }));
  const vqgan = await loadVqgan(dir);
  assert.deepEqual(vqgan.ignoredKeys, ['loss.discriminator.main.0.weight']);
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    const x = tf.randomUniform([2, 16, 24, 3], -1, 1) as tf.Tensor4D; // not square, not the config resolution
    const h = vqganEncode(vqgan, x);
    assert.deepEqual(h.shape, [2, 2, 3, 8]);
    const { zq, indices } = vqganQuantize(vqgan, h);
    assert.deepEqual(indices.shape, [2, 2, 3]);
    assert.ok([...indices.dataSync()].every((i) => i >= 0 && i < 10));
    const y = vqganDecode(vqgan, zq);
    assert.deepEqual(y.shape, [2, 16, 24, 3]);
    assert.ok([...y.dataSync()].every(Number.isFinite));
    assert.throws(() => vqganEncode(vqgan, tf.zeros([1, 3, 16, 16]) as tf.Tensor4D), ShapeError, 'NCHW input is rejected');
    assert.throws(() => vqganEncode(vqgan, tf.zeros([1, 12, 12, 3]) as tf.Tensor4D), /multiples of 8/);
  });
  assert.equal(tf.memory().numTensors, before);
  disposeVqgan(vqgan);
});

test('the weight check names the first missing key, a wrong shape and unknown keys', async () => {
  await initBackend();
  const missing = randomStateDict(config);
  missing.delete('decoder.up.2.attn.0.proj_out.bias');
  await assert.rejects(loadVqgan(writeModel(config, missing)), (e: Error) => e instanceof ModelLoadError && /lack decoder\.up\.2\.attn\.0\.proj_out\.bias/.test(e.message));

  const wrong = randomStateDict(config);
  wrong.set('quantize.embedding.weight', { dtype: 'float32', storedAs: 'F32', shape: [10, 9], data: new Float32Array(90) });
  await assert.rejects(loadVqgan(writeModel(config, wrong)), /quantize\.embedding\.weight: expected \[10,8\], got \[10,9\]/);

  const unknown = randomStateDict(config, { 'quantize.proj.weight': [4, 4] });
  await assert.rejects(loadVqgan(writeModel(config, unknown)), /quantize\.proj\.weight/);
});
