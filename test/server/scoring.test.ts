/**
 * ScoringService: one lazily opened scorer shared by every caller, a failed open retried on
 * the next call, and the opt-in int8 vision tower reaching the scorer it opens.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../server/config';
import { ScoringService } from '../../server/scoring';

const DEMO = new URL('../../models/demo-clip', import.meta.url).pathname;

test('concurrent callers share one scorer; visionPrecision reaches it', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-scoring-'));
  try {
    const config = loadConfig({ CLIP_STUDIO_DATA: dataDir });
    const fp32 = new ScoringService(config, { model: DEMO });
    const [a, b] = await Promise.all([fp32.get(), fp32.get()]);
    assert.equal(a, b);
    assert.equal(a.info.visionPrecision, 'fp32');
    await fp32.close();
    const int8 = new ScoringService(config, { model: DEMO, visionPrecision: 'int8' });
    const s = await int8.get();
    assert.equal(s.info.visionPrecision, 'int8');
    await int8.close();
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a model that cannot open is an error each time, and a later call tries again', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-scoring-'));
  try {
    const service = new ScoringService(loadConfig({ CLIP_STUDIO_DATA: dataDir }), { model: 'no-such-model' });
    await assert.rejects(service.get(), /no-such-model/);
    await assert.rejects(service.get(), /no-such-model/);
    await service.close();
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
