/**
 * Generation step time on the active tfjs backend, through the studio's own loop
 * (engine/guide `generate`: guided loss over cutouts, gradient w.r.t. the latent, Adam), with
 * random CLIP and VQGAN weights at the given sizes. The figure is the loop's own
 * `timings.msPerStep` (steps only: setup and text encoding excluded).
 */
import {
  buildVqganWeights, ClipTokenizer, disposeVqgan, generate, initBackend, loadClip, validateGenerateParams,
  type ClipConfig, type StateDict, type VqganConfig,
} from '../engine/index';
import { progress } from './measure';
import { randomVqganStateDict } from './weights';

export interface GenerateOptions {
  /** Params beyond the defaults (validateGenerateParams): size, cutn, steps… */
  params: Record<string, unknown>;
}

/** Milliseconds per step of `generate` with these params (defaults otherwise). */
export async function generateStepMs(clipConfig: ClipConfig, clipTensors: StateDict, vqganConfig: VqganConfig, opts: GenerateOptions): Promise<{ msPerStep: number; steps: number; cutn: number; size: number }> {
  await initBackend();
  const [tokenizer, clip] = await Promise.all([ClipTokenizer.load(), loadClip({ config: clipConfig, tensors: clipTensors })]);
  const vqgan = buildVqganWeights(vqganConfig, randomVqganStateDict(vqganConfig));
  const models = {
    clip, vqgan, tokenizer,
    info: { clip: { id: 'random', dir: '', sha256: {} }, vqgan: { id: 'random', dir: '', sha256: {} } },
    dispose: () => { clip.dispose(); disposeVqgan(vqgan); },
  };
  const params = validateGenerateParams({ prompt: 'a red circle on a blue background', seed: 1, previewEvery: 0, ...opts.params });
  try {
    for await (const e of generate(models, params)) {
      if (e.type === 'step') progress(`generate: step ${e.step}/${e.total} (${Math.round(e.elapsedMs)} ms so far)`);
      else return { msPerStep: e.timings.msPerStep, steps: e.steps, cutn: params.cutn, size: e.size };
    }
    throw new Error('generate ended without a result');
  } finally {
    models.dispose();
  }
}
