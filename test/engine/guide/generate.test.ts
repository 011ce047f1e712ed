/**
 * The VQGAN+CLIP loop on the reference fixture models (random weights: these tests check the
 * mechanics — reproducibility, the loss going down, memory, inputs — not the pictures; the
 * demo-model acceptance test judges pictures).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  encodePng, generate, generateJob, initBackend, InputError, loadGenerateModels, tf, unloadGenerateModels, validateGenerateParams,
  type GenerateEvent, type GenerateModels,
} from '../../../engine/index';
import { FIXTURE_DIR } from '../../helpers/generate-models';

const tiny = { size: 16, cutn: 2, previewEvery: 2 };

async function run(models: GenerateModels, raw: Record<string, unknown>): Promise<Extract<GenerateEvent, { type: 'done' }> & { losses: number[]; previews: number }> {
  const losses: number[] = [];
  let previews = 0;
  for await (const e of generate(models, validateGenerateParams({ ...tiny, ...raw }))) {
    if (e.type === 'done') return { ...e, losses, previews };
    losses.push(e.loss);
    if (e.preview) previews++;
  }
  throw new Error('no done event');
}

describe('generate (reference fixture models)', () => {
  let models: GenerateModels;
  let dir: string;
  before(async () => {
    await initBackend();
    models = await loadGenerateModels({ clip: FIXTURE_DIR, vqgan: FIXTURE_DIR });
    dir = mkdtempSync(join(tmpdir(), 'clip-studio-gen-'));
  });
  after(() => {
    models?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the same seed gives the same image; another seed another one', async () => {
    const a = await run(models, { prompt: 'a red circle | blue:-0.5', steps: 3, seed: 11 });
    const b = await run(models, { prompt: 'a red circle | blue:-0.5', steps: 3, seed: 11 });
    const c = await run(models, { prompt: 'a red circle | blue:-0.5', steps: 3, seed: 12 });
    const codes = await run(models, { prompt: 'a red circle | blue:-0.5', steps: 1, seed: 11, start: 'codes' });
    assert.notDeepEqual(Buffer.from(codes.image.rgb), Buffer.from(a.image.rgb), 'the two random starts differ');
    assert.equal(a.image.width, 16);
    assert.deepEqual(a.losses, b.losses);
    assert.deepEqual(Buffer.from(a.image.rgb), Buffer.from(b.image.rgb));
    assert.notDeepEqual(Buffer.from(a.image.rgb), Buffer.from(c.image.rgb));
    assert.equal(a.previews, 2, 'previews at steps 1 and 2 (not at the last step, which is the image)');
    assert.equal(a.frames.length, 3);
  });

  it('Adam lowers the loss', async () => {
    const r = await run(models, { prompt: 'a red circle', steps: 8, seed: 3, augment: false, lr: 0.3 });
    assert.ok(r.losses.at(-1)! < r.losses[0]!, `loss ${r.losses[0]} → ${r.losses.at(-1)}`);
  });

  it('numTensors returns to its baseline after 20 jobs, and after cancelled ones', async () => {
    unloadGenerateModels();
    const ctx = { registry: {}, progress: () => {}, checkpoint: async () => {} };
    const job = { prompt: 'a green star', steps: 1, cutn: 1, size: 8, previewEvery: 0, clipModel: FIXTURE_DIR, vqganModel: FIXTURE_DIR };
    await generateJob(job, ctx); // loads and keeps the models
    const baseline = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) await generateJob({ ...job, seed: i }, ctx);
    assert.equal(tf.memory().numTensors, baseline, 'after 20 jobs');
    // Cancelled mid-run: by a throwing checkpoint (the worker's cancel), and by breaking out.
    let calls = 0;
    const cancelling = { ...ctx, checkpoint: async () => { if (++calls === 2) throw new Error('cancelled'); } };
    await assert.rejects(generateJob({ ...job, steps: 5 }, cancelling), /cancelled/);
    for await (const e of generate(models, validateGenerateParams({ ...job, steps: 5 }))) if (e.type === 'step') break;
    assert.equal(tf.memory().numTensors, baseline, 'after cancelled jobs');
    unloadGenerateModels();
  });

  it('starts from an init image and aims at image prompts; a corrupt image names its field', async () => {
    const red = new Uint8Array(16 * 16 * 3).map((_, i) => (i % 3 === 0 ? 230 : 20));
    const redPath = join(dir, 'red.png');
    writeFileSync(redPath, await encodePng(red, 16, 16));
    const r = await run(models, { prompt: 'a circle', steps: 1, seed: 1, initImage: redPath, initStrength: 1, imagePrompts: [{ path: redPath, weight: 0.5 }] });
    const random = await run(models, { prompt: 'a circle', steps: 1, seed: 1 });
    assert.notDeepEqual(Buffer.from(r.image.rgb), Buffer.from(random.image.rgb), 'the init image changes the start');
    const bad = join(dir, 'bad.png');
    writeFileSync(bad, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('garbage')]));
    const before = tf.memory().numTensors;
    await assert.rejects(run(models, { prompt: 'x', steps: 1, initImage: bad }), (e: unknown) => e instanceof InputError && e.field === 'initImage' && /init image/.test(e.message));
    await assert.rejects(run(models, { prompt: 'x', steps: 1, imagePrompts: [{ path: bad, weight: 1 }] }), (e: unknown) => e instanceof InputError && e.field === 'imagePrompts.0');
    assert.equal(tf.memory().numTensors, before, 'failed starts leak nothing');
    await assert.rejects(run(models, { prompt: 'x', steps: 1, size: 18 }), (e: unknown) => e instanceof InputError && e.field === 'size');
  });
});
