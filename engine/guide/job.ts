/**
 * The `generate` worker job: validate, load (and keep) the models, run the loop, stream
 * progress with small PNG previews, and return the final PNG, the progress animation (an
 * animated WebP of the previews) and the recipe that made them.
 *
 * Models stay loaded between jobs (loading is the slow part); asking for other models frees
 * the previous ones first.
 */
import { InputError } from '../errors';
import { encodeAnimation, encodePng } from '../io/images';
import type { RegistryOptions } from '../models/registry';
import { initBackend } from '../runtime/tf';
import { generate, loadGenerateModels, type GenerateModels, type ModelInfo } from './generate';
import { parseGeneratePrompt, validateGenerateParams, type GenerateParams } from './params';
import type { WeightedPrompt } from './loss';

/** What `job:progress` carries for a generate job. */
export interface GenerateProgress {
  step: number;
  total: number;
  loss: number;
  elapsedMs: number;
  etaMs: number;
  /** A PNG of the current image, every `previewEvery` steps. */
  preview?: Uint8Array;
}

/** Everything needed to make the same image again, plus how long it took. */
export interface GenerateRecipe extends Omit<GenerateParams, 'size'> {
  size: number;
  prompts: WeightedPrompt[];
  models: { clip: Omit<ModelInfo, 'dir'>; vqgan: Omit<ModelInfo, 'dir'> };
  backend: string;
  loss: number;
  timings: { loadMs: number; setupMs: number; stepsMs: number; msPerStep: number; totalMs: number };
}

export interface GenerateJobResult {
  png: Uint8Array;
  /** Animated WebP of the previews and the final image. */
  animation: Uint8Array;
  width: number;
  height: number;
  recipe: GenerateRecipe;
}

export interface GenerateJobParams {
  /** Model ids or directories; default: the registry's defaults. */
  clipModel?: string;
  vqganModel?: string;
  [key: string]: unknown;
}

export interface GenerateJobContext {
  progress(data: GenerateProgress): void;
  checkpoint(): Promise<void>;
  registry: RegistryOptions;
  backend?: string;
}

let loaded: { key: string; models: GenerateModels } | undefined;

async function modelsFor(clip: string | undefined, vqgan: string | undefined, registry: RegistryOptions): Promise<{ models: GenerateModels; loadMs: number }> {
  const key = JSON.stringify([clip ?? null, vqgan ?? null, registry]);
  if (loaded?.key === key) return { models: loaded.models, loadMs: 0 };
  loaded?.models.dispose();
  loaded = undefined;
  const t = performance.now();
  const models = await loadGenerateModels({ clip, vqgan, registry });
  loaded = { key, models };
  return { models, loadMs: performance.now() - t };
}

/** Free the kept models (tests, and a worker that is asked to shut down cleanly). */
export function unloadGenerateModels(): void {
  loaded?.models.dispose();
  loaded = undefined;
}

function optionalString(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new InputError(field, `The \`${field}\` option must be a model id or directory`);
  return v;
}

export async function generateJob(raw: unknown, ctx: GenerateJobContext): Promise<GenerateJobResult> {
  const params = validateGenerateParams(raw);
  const r = raw as GenerateJobParams;
  const clipModel = optionalString(r.clipModel, 'clipModel');
  const vqganModel = optionalString(r.vqganModel, 'vqganModel');
  const backend = await initBackend(ctx.backend);
  const { models, loadMs } = await modelsFor(clipModel, vqganModel, ctx.registry);
  for await (const e of generate(models, params, { checkpoint: () => ctx.checkpoint() })) {
    if (e.type === 'step') {
      const preview = e.preview ? new Uint8Array(await encodePng(e.preview.rgb, e.preview.width, e.preview.height)) : undefined;
      ctx.progress({ step: e.step, total: e.total, loss: e.loss, elapsedMs: e.elapsedMs, etaMs: e.etaMs, ...(preview ? { preview } : {}) });
      continue;
    }
    const { width, height } = e.image;
    const png = new Uint8Array(await encodePng(e.image.rgb, width, height));
    const delays = e.frames.map((_, i) => (i === e.frames.length - 1 ? 1500 : 120));
    const animation = new Uint8Array(await encodeAnimation(e.frames.map((f) => f.rgb), width, height, { delayMs: delays }));
    const strip = (m: ModelInfo) => ({ id: m.id, sha256: m.sha256 });
    return {
      png, animation, width, height,
      recipe: {
        ...params, size: e.size, prompts: parseGeneratePrompt(params.prompt),
        models: { clip: strip(models.info.clip), vqgan: strip(models.info.vqgan) },
        backend: backend.name, loss: e.loss,
        timings: { loadMs, ...e.timings },
      },
    };
  }
  throw new Error('generate ended without an image');
}
