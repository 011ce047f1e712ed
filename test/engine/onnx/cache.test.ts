/** The on-disk graph cache: a hit builds nothing, and different weights never share an entry. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '../../../engine/io/safetensors';
import { readClipConfig } from '../../../engine/models/config';
import { clipOnnxFiles, clipOnnxKey } from '../../../engine/onnx/cache';
import { fixtureDirs } from '../../helpers/fixtures';

const dir = fixtureDirs()[0]!;
const config = readClipConfig(join(dir, 'clip_config.json'));
const tensors = () => readSafetensors(join(dir, 'clip.safetensors')).tensors;

test('a second request for the same weights is a cache hit that rebuilds nothing', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'clip-onnx-cache-'));
  try {
    const first = clipOnnxFiles({ dataDir, config, tensors: tensors() });
    assert.equal(first.built, true);
    assert.ok(first.visionPath.startsWith(join(dataDir, 'onnx')));
    const mtimes = [statSync(first.visionPath).mtimeMs, statSync(first.textPath).mtimeMs];
    const second = clipOnnxFiles({ dataDir, config, tensors: tensors() });
    assert.equal(second.built, false);
    assert.equal(second.key, first.key);
    assert.deepEqual([statSync(second.visionPath).mtimeMs, statSync(second.textPath).mtimeMs], mtimes, 'the cached files were rewritten');
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('changing one weight, or the config, changes the key', () => {
  const a = tensors();
  const b = tensors();
  (b.get('visual_projection.weight')!.data as Float32Array)[7]! += 1e-3;
  const key = clipOnnxKey(config, a);
  assert.match(key, /^[0-9a-f]{64}$/);
  assert.notEqual(clipOnnxKey(config, b), key);
  assert.notEqual(clipOnnxKey({ ...config, vision: { ...config.vision, layerNormEps: 1e-6 } }, a), key);
  assert.notEqual(clipOnnxKey(config, a, 'ab12'), key, 'a weights checksum stands in for the tensors');
});
