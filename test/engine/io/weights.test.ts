// readStateDict's format detection and checkStateDict's messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readStateDict, checkStateDict } from '../../../engine/io/weights';
import { writeSafetensors } from '../../../engine/io/safetensors';
import { ModelLoadError } from '../../../engine/errors';
import type { HostTensor, StateDict } from '../../../engine/io/host-tensor';
import { stateDictPickle, zipArchive, le } from './torch-zip';

const dir = mkdtempSync(join(tmpdir(), 'weights-test-'));
const f32 = (shape: number[]): HostTensor => ({ dtype: 'float32', storedAs: 'F32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });

test('readStateDict tells torch zips from safetensors by content, not extension', async () => {
  const torchPath = join(dir, 'model.safetensors'); // a misleading name on purpose
  writeFileSync(torchPath, zipArchive([
    { name: 'archive/data.pkl', data: stateDictPickle([{ name: 'w', key: '0', storage: 'FloatStorage', storageNumel: 2, offset: 0, size: [2], stride: [1] }]) },
    { name: 'archive/data/0', data: le(Float32Array.from([1, 2])) },
  ]));
  const fromTorch = await readStateDict(torchPath);
  assert.equal(fromTorch.format, 'torch');
  assert.deepEqual([...fromTorch.tensors.get('w')!.data], [1, 2]);

  const stPath = join(dir, 'pytorch_model.bin');
  writeSafetensors(stPath, [['w', { dtype: 'float32', storedAs: 'F32', shape: [2], data: Float32Array.from([3, 4]) }]]);
  const fromSt = await readStateDict(stPath);
  assert.equal(fromSt.format, 'safetensors');
  assert.deepEqual([...fromSt.tensors.get('w')!.data], [3, 4]);
});

test('readStateDict names the legacy torch format instead of misreading it', async () => {
  const path = join(dir, 'legacy.pt');
  writeFileSync(path, Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]));
  await assert.rejects(readStateDict(path), (err: Error) => err instanceof ModelLoadError && /legacy/.test(err.message));
  await assert.rejects(readStateDict(join(dir, 'nope.bin')), /Cannot open/);
});

const expected = new Map([
  ['vision_model.embeddings.patch_embedding.weight', [64, 3, 16, 16]],
  ['logit_scale', [1]],
]);

test('checkStateDict accepts a complete dict and lists training-only keys', () => {
  const tensors: StateDict = new Map([
    ['vision_model.embeddings.patch_embedding.weight', f32([64, 3, 16, 16])],
    ['logit_scale', f32([])], // 0-d in torch checkpoints, [1] in some exports: the same scalar
    ['text_model.embeddings.position_ids', { dtype: 'int32', storedAs: 'I64', shape: [1, 77], data: new Int32Array(77) }],
    ['loss.discriminator.main.0.weight', f32([4])],
    ['extra_head.weight', f32([2])],
  ]);
  const { ignored } = checkStateDict(tensors, expected, { modelName: 'tiny CLIP', ignorePrefixes: ['extra_head.'] });
  assert.deepEqual(ignored, ['text_model.embeddings.position_ids', 'loss.discriminator.main.0.weight', 'extra_head.weight']);
});

test('checkStateDict names the first missing key', () => {
  const tensors: StateDict = new Map([['logit_scale', f32([1])]]);
  assert.throws(() => checkStateDict(tensors, expected, { modelName: 'tiny CLIP' }),
    (err: Error) => err instanceof ModelLoadError && /^tiny CLIP: the weights lack vision_model\.embeddings\.patch_embedding\.weight/.test(err.message));
});

test('checkStateDict names the first wrong shape with both shapes', () => {
  const tensors: StateDict = new Map([
    ['vision_model.embeddings.patch_embedding.weight', f32([64, 3, 32, 32])],
    ['logit_scale', f32([2])],
  ]);
  assert.throws(() => checkStateDict(tensors, expected, { modelName: 'tiny CLIP' }), {
    name: 'ModelLoadError',
    message: 'tiny CLIP: vision_model.embeddings.patch_embedding.weight: expected [64,3,16,16], got [64,3,32,32]',
  });
});

test('checkStateDict rejects unexpected keys unless told not to be strict', () => {
  const tensors: StateDict = new Map([
    ['vision_model.embeddings.patch_embedding.weight', f32([64, 3, 16, 16])],
    ['logit_scale', f32([1])],
    ['decoder.conv_in.weight', f32([1])],
  ]);
  assert.throws(() => checkStateDict(tensors, expected, { modelName: 'tiny CLIP' }), /decoder\.conv_in\.weight, which the model does not use/);
  assert.deepEqual(checkStateDict(tensors, expected, { modelName: 'tiny CLIP', strict: false }).ignored, ['decoder.conv_in.weight']);
});
