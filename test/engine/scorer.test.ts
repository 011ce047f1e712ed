/**
 * ClipScorer.fromWeights (weights already in memory, as the benchmark's) scores as the scorer
 * opened from the model's directory does, and says what it is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { encodePng, rasterizeSvg } from '../../engine/io/images';
import { readClipConfig } from '../../engine/models/config';
import { findClipFiles, readClipStateDict } from '../../engine/models/clip-weights';
import { ClipScorer } from '../../engine/scorer';

const DEMO = new URL('../../models/demo-clip', import.meta.url).pathname;

test('a scorer over in-memory weights ranks as the scorer opened from the directory', async () => {
  const { configPath, weightsPaths } = findClipFiles(DEMO);
  const config = readClipConfig(configPath, join(DEMO, 'preprocessor_config.json'));
  const tensors = await readClipStateDict(weightsPaths);
  const png = await encodePng((await rasterizeSvg('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 96 96"><rect width="96" height="96" fill="#fff"/><circle cx="48" cy="48" r="30" fill="#e53935"/></svg>', 96)).data, 96, 96);
  const texts = ['a red circle', 'a blue star', 'a green square'];
  const [mem, dir] = [await ClipScorer.fromWeights({ config, tensors, id: 'demo in memory' }), await ClipScorer.open({ model: DEMO })];
  try {
    assert.deepEqual(mem.model, { id: 'demo in memory', dir: '', demo: false });
    assert.deepEqual(mem.preprocess, dir.preprocess);
    const [a, b] = [await mem.rank(png, texts), await dir.rank(png, texts)];
    assert.deepEqual(a.map((s) => s.text), b.map((s) => s.text));
    a.forEach((s, i) => assert.ok(Math.abs(s.score - b[i]!.score) < 1e-6, `${s.text}: ${s.score} vs ${b[i]!.score}`));
    assert.ok(Math.abs(a.reduce((t, s) => t + s.score, 0) - 1) < 1e-6);
  } finally {
    await mem.close();
    await dir.close();
  }
});
