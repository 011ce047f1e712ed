/**
 * CLIP loading and configuration: what a user sees when a checkpoint or config is wrong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf, initBackend } from '../../../engine/runtime/tf';
import { ModelLoadError, ShapeError } from '../../../engine/errors';
import { readSafetensors } from '../../../engine/io/safetensors';
import type { StateDict } from '../../../engine/io/host-tensor';
import { encodeImage, encodeText, loadClip } from '../../../engine/models/clip';
import { CLIP_IMAGE_MEAN, parseClipConfig, readClipConfig } from '../../../engine/models/config';
import { fixtureDirs } from '../../helpers/fixtures';

const dir = fixtureDirs()[0]!;
const rawConfig = JSON.parse(readFileSync(join(dir, 'clip_config.json'), 'utf8')) as Record<string, any>;
const tensors = (): StateDict => new Map(readSafetensors(join(dir, 'clip.safetensors')).tensors);

function assertLoadError(err: unknown, ...mustName: string[]): true {
  assert.ok(err instanceof ModelLoadError, `expected a ModelLoadError, got ${err}`);
  for (const s of mustName) assert.ok(err.message.includes(s), `message should name ${s}: ${err.message}`);
  return true;
}

test('a missing tensor is a ModelLoadError naming it', async () => {
  const t = tensors();
  t.delete('vision_model.encoder.layers.1.mlp.fc2.bias');
  await assert.rejects(loadClip({ config: rawConfig, tensors: t }), (e) => assertLoadError(e, 'vision_model.encoder.layers.1.mlp.fc2.bias'));
});

test('a tensor of the wrong shape is a ModelLoadError naming it and both shapes', async () => {
  const t = tensors();
  const key = 'text_model.encoder.layers.0.self_attn.k_proj.weight';
  const old = t.get(key)!;
  const [out, inp] = old.shape as [number, number];
  t.set(key, { ...old, shape: [inp, out + 1], data: new Float32Array(inp * (out + 1)) });
  await assert.rejects(loadClip({ config: rawConfig, tensors: t }), (e) => assertLoadError(e, key, `[${inp},${out + 1}]`, `[${out},${inp}]`));
});

test('a tensor the config does not describe is an error; position_ids buffers are ignored and listed', async () => {
  await initBackend();
  const fewer = { ...rawConfig, vision_config: { ...rawConfig.vision_config, num_hidden_layers: rawConfig.vision_config.num_hidden_layers - 1 } };
  await assert.rejects(loadClip({ config: fewer, tensors: tensors() }), (e) => assertLoadError(e, `vision_model.encoder.layers.${fewer.vision_config.num_hidden_layers}.`));

  const t = tensors();
  t.set('text_model.embeddings.position_ids', { dtype: 'int32', storedAs: 'I64', shape: [1, 77], data: new Int32Array(77) });
  const clip = await loadClip({ config: rawConfig, tensors: t });
  assert.deepEqual(clip.ignoredKeys, ['text_model.embeddings.position_ids']);
  clip.dispose();
});

test('config validation names the option and the allowed values', () => {
  const bad = (patch: Record<string, any>) => () => parseClipConfig({ ...rawConfig, ...patch });
  assert.throws(bad({ vision_config: { ...rawConfig.vision_config, num_attention_heads: 3 } }), /vision_config\.hidden_size.*divisible.*num_attention_heads/);
  assert.throws(bad({ text_config: { ...rawConfig.text_config, hidden_act: 'relu' } }), /text_config\.hidden_act.*quick_gelu, gelu.*"relu"/);
  assert.throws(bad({ vision_config: { ...rawConfig.vision_config, patch_size: 0 } }), /vision_config\.patch_size.*between 1/);
  assert.throws(bad({ vision_config: { ...rawConfig.vision_config, image_size: rawConfig.vision_config.patch_size * 2 + 1 } }), /multiple of.*patch_size/);
  assert.throws(() => parseClipConfig(rawConfig, { image_mean: [0.5, 0.5] }), /image_mean.*3/);
  assert.throws(() => parseClipConfig(rawConfig, { crop_size: rawConfig.vision_config.image_size * 2 }), /crop_size.*must equal/);
});

test('config defaults are those of openai/clip-vit-base-patch32', () => {
  const c = parseClipConfig({});
  assert.equal(c.projectionDim, 512);
  assert.deepEqual([c.vision.hiddenSize, c.vision.patchSize, c.vision.imageSize, c.vision.numHiddenLayers], [768, 32, 224, 12]);
  assert.deepEqual([c.text.hiddenSize, c.text.maxPositionEmbeddings, c.text.hiddenAct, c.text.layerNormEps], [512, 77, 'quick_gelu', 1e-5]);
  assert.deepEqual(c.preprocess, { mean: [...CLIP_IMAGE_MEAN], std: c.preprocess.std, size: 224 });
});

test('preprocessor_config.json next to the config sets mean, std and size', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'clip-config-'));
  try {
    writeFileSync(join(tmp, 'config.json'), JSON.stringify(rawConfig));
    const size = rawConfig.vision_config.image_size;
    writeFileSync(join(tmp, 'preprocessor_config.json'), JSON.stringify({ image_mean: [0.5, 0.5, 0.5], image_std: 0.25, crop_size: { height: size, width: size } }));
    assert.deepEqual(readClipConfig(join(tmp, 'config.json')).preprocess, { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], size });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('loadClip finds the config and weights of a directory; wrong inputs are ShapeErrors', async () => {
  await initBackend();
  const clip = await loadClip(dir); // clip_config.json + clip.safetensors among other fixture files
  try {
    const { imageSize, numChannels } = clip.config.vision;
    const wrongSize = tf.zeros([1, numChannels, imageSize + clip.config.vision.patchSize, imageSize]) as tf.Tensor4D;
    assert.throws(() => encodeImage(clip, wrongSize), ShapeError);
    const tooLong = tf.zeros([1, clip.config.text.maxPositionEmbeddings + 1], 'int32') as tf.Tensor2D;
    assert.throws(() => encodeText(clip, tooLong), ShapeError);
    const floats = tf.zeros([1, 4]) as tf.Tensor2D;
    assert.throws(() => encodeText(clip, floats), /int32/);
    tf.dispose([wrongSize, tooLong, floats]);
  } finally {
    clip.dispose();
  }
  await assert.rejects(loadClip(join(dir, 'no-such-dir')), ModelLoadError);
});

test('loadClip reads a torch checkpoint (clip.pt) to the same model as the safetensors', async () => {
  await initBackend();
  const configPath = join(dir, 'clip_config.json');
  const fromSafetensors = await loadClip({ configPath, weightsPath: join(dir, 'clip.safetensors') });
  const fromTorch = await loadClip({ configPath, weightsPath: join(dir, 'clip.pt') });
  const { imageSize, numChannels } = fromTorch.config.vision;
  const pixels = tf.randomNormal([1, numChannels, imageSize, imageSize], 0, 1, 'float32', 7) as tf.Tensor4D;
  try {
    const a = encodeImage(fromSafetensors, pixels);
    const b = encodeImage(fromTorch, pixels);
    assert.deepEqual(await b.data(), await a.data());
    tf.dispose([a, b]);
  } finally {
    tf.dispose(pixels);
    fromSafetensors.dispose();
    fromTorch.dispose();
  }
});
