// The reference fixtures' torch.save checkpoints load to the very tensors of their safetensors
// twins: clip.pt (q/k/v as views of one storage) and the Lightning-style vqgan.ckpt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fixtureDirs } from '../helpers/fixtures';
import { readTorchCheckpoint } from '../../engine/io/torch';
import { readSafetensors } from '../../engine/io/safetensors';
import { readStateDict, checkStateDict } from '../../engine/io/weights';
import type { HostTensor, StateDict } from '../../engine/io/host-tensor';

const bytesOf = (t: HostTensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/**
 * Same names, dtypes and bit-identical values; shapes equal, except that a 0-d scalar matches a
 * [1] one (the fixture's clip.pt stores logit_scale 0-d, as torch does; its safetensors [1]).
 */
function assertSameTensors(ours: StateDict, ref: StateDict, what: string) {
  assert.deepEqual([...ours.keys()].sort(), [...ref.keys()].sort(), `${what}: tensor names`);
  for (const [name, r] of ref) {
    const t = ours.get(name)!;
    const scalar = (s: number[]) => s.length <= 1 && (s[0] ?? 1) === 1;
    if (!(scalar(t.shape) && scalar(r.shape))) assert.deepEqual(t.shape, r.shape, `${what}: ${name} shape`);
    assert.equal(t.dtype, r.dtype, `${what}: ${name} dtype`);
    assert.ok(bytesOf(t).equals(bytesOf(r)), `${what}: ${name} values differ`);
  }
}

for (const dir of fixtureDirs()) {
  test(`clip.pt loads to exactly the tensors of clip.safetensors (${dir})`, async () => {
    const ref = readSafetensors(join(dir, 'clip.safetensors')).tensors;
    const { tensors, ignored, extra } = await readTorchCheckpoint(join(dir, 'clip.pt'));
    assertSameTensors(tensors, ref, 'clip.pt');
    assert.deepEqual(ignored, []);
    assert.deepEqual(extra, {});
    const viaDetect = await readStateDict(join(dir, 'clip.pt'));
    assert.equal(viaDetect.format, 'torch');
    assert.equal(viaDetect.tensors.size, ref.size);
  });

  test(`vqgan.ckpt loads to the tensors of vqgan.safetensors, loss.* ignored (${dir})`, async () => {
    const ref = readSafetensors(join(dir, 'vqgan.safetensors')).tensors;
    const { tensors, extra } = await readTorchCheckpoint(join(dir, 'vqgan.ckpt'));
    const expected = new Map([...ref].map(([name, t]) => [name, t.shape]));
    const { ignored } = checkStateDict(tensors, expected, { modelName: 'VQGAN fixture', ignorePrefixes: ['loss.'] });
    const trainingOnly = [...tensors.keys()].filter((k) => !ref.has(k));
    assert.ok(trainingOnly.length > 0, 'the Lightning checkpoint should carry loss.* keys');
    assert.ok(trainingOnly.every((k) => k.startsWith('loss.')), `unexpected extra keys: ${trainingOnly.filter((k) => !k.startsWith('loss.'))}`);
    assert.deepEqual(ignored, trainingOnly);
    const model = new Map([...tensors].filter(([k]) => ref.has(k)));
    assertSameTensors(model, ref, 'vqgan.ckpt');
    assert.ok(Number.isInteger(extra.epoch), `epoch should be an integer, got ${String(extra.epoch)}`);
    assert.ok(Number.isInteger(extra.global_step), `global_step should be an integer, got ${String(extra.global_step)}`);
    assert.ok(!('state_dict' in extra));
  });
}
