/**
 * Acceptance: with the bundled demo models and DEFAULT settings, for prompts
 * "a {color} {shape} on a {color} background" drawn over the demo vocabulary, the prompted
 * foreground and background colours are the two most frequent colours of the picture (judged by
 * pixel colours, test/helpers/colors.ts, not by CLIP) in at least 85 % of 16 prompts.
 * Prints ms per step and seconds per image at the default size (figures, not assertions).
 * Skips loudly when the demo models are not installed (in CI it fails instead).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { generate, initBackend, loadGenerateModels, validateGenerateParams, type GenerateModels } from '../../engine/index';
import { acceptancePrompts, judgeColours } from '../helpers/colors';
import { REPO_ROOT } from '../helpers/fixtures';
import { IN_CI } from '../helpers/system';

const PROMPTS = Number(process.env.CLIP_STUDIO_ACCEPTANCE_PROMPTS ?? 16);
const demo = ['demo-clip', 'demo-vqgan'].map((id) => join(REPO_ROOT, 'models', id));
const present = existsSync(join(demo[0]!, 'model.safetensors')) && existsSync(join(demo[1]!, 'model.safetensors'));
if (!present) {
  const why = 'the bundled demo models (models/demo-clip, models/demo-vqgan) are not trained yet: npm run train:demo';
  if (IN_CI) throw new Error(`CI=true and ${why}`);
  console.warn(`\n${'!'.repeat(78)}\n!! SKIPPING the colour acceptance test: ${why}.\n${'!'.repeat(78)}\n`);
}

describe('demo models: prompted colours dominate', { skip: present ? false : 'demo models not installed' }, () => {
  let models: GenerateModels;
  before(async () => {
    await initBackend();
    models = await loadGenerateModels({ clip: demo[0], vqgan: demo[1] });
  });
  after(() => models?.dispose());

  it(`≥ 85 % of ${PROMPTS} prompts at default settings`, { timeout: 1_800_000 }, async () => {
    const results: { prompt: string; pass: boolean; top: string }[] = [];
    const msPerStep: number[] = [];
    const seconds: number[] = [];
    for (const [i, p] of acceptancePrompts(PROMPTS).entries()) {
      const params = validateGenerateParams({ prompt: p.prompt, seed: i });
      for await (const e of generate(models, params)) {
        if (e.type !== 'done') continue;
        const v = judgeColours(e.image.rgb, p.fg, p.bg);
        results.push({ prompt: p.prompt, pass: v.pass, top: v.shares.slice(0, 3).map((s) => `${s.name} ${(s.share * 100).toFixed(0)}%`).join(', ') });
        msPerStep.push(e.timings.msPerStep);
        seconds.push(e.timings.totalMs / 1000);
        console.log(`# ${v.pass ? 'pass' : 'FAIL'}  ${p.prompt}  →  ${results.at(-1)!.top}  (${e.timings.msPerStep.toFixed(0)} ms/step, ${(e.timings.totalMs / 1000).toFixed(1)} s)`);
      }
    }
    const passed = results.filter((r) => r.pass).length;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(`# colour dominance: ${passed}/${results.length} (${((100 * passed) / results.length).toFixed(0)} %); ${mean(msPerStep).toFixed(0)} ms/step, ${mean(seconds).toFixed(1)} s/image at the default size`);
    assert.ok(passed / results.length >= 0.85, `${passed}/${results.length} prompts had their colours dominate:\n${results.map((r) => `${r.pass ? 'ok  ' : 'FAIL'} ${r.prompt} → ${r.top}`).join('\n')}`);
  });
});
