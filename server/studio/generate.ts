/**
 * Generate sessions: take a `job:start` of kind `generate` (already parsed with the protocol's
 * schema), check it the way the engine will (prompt syntax, size against the VQGAN's factor),
 * turn upload ids into files, enqueue the engine's `generate` job, forward its events, and on
 * success save the image, its animation and its recipe to the gallery before saying `done`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  checkSize, defaultModel, GENERATE_LIMITS, getModel, InputError, parseVqganConfig, PROMPT_MAX_LENGTH, validateGenerateParams, worldVocabulary,
  type GenerateJobResult, type GenerateProgress, type JobEvent, type JobHandle, type RegistryOptions,
} from '../../engine/index';
import type { StudioConfig } from '../config';
import type { JobQueue } from '../jobs/queue';
import type { GalleryItem, GenerateInfo, GenerateParamsSchema } from '../protocol';
import type { Gallery, GalleryRecord } from '../store/gallery';
import type { Uploads } from './uploads';
import type { z } from 'zod';

type ParsedParams = z.output<typeof GenerateParamsSchema>;

export type GenerateSessionEvent =
  | { type: 'queued'; jobId: string; position: number }
  | { type: 'started'; jobId: string }
  | { type: 'progress'; jobId: string; data: GenerateProgress }
  | { type: 'done'; jobId: string; item: GalleryItem }
  | { type: 'failed'; jobId: string; error: { code: string; message: string; field?: string } }
  | { type: 'cancelled'; jobId: string };

/** A gallery record as the client sees it: file names become URLs. */
export function toGalleryItem(rec: GalleryRecord): GalleryItem {
  return {
    id: rec.id, createdAt: rec.createdAt, prompt: rec.prompt, seed: rec.seed, width: rec.width, height: rec.height,
    imageUrl: `/api/images/${rec.id}.png`, animationUrl: rec.animationFile ? `/api/images/${rec.id}.webp` : null, recipe: rec.recipe,
  };
}

export class GenerateService {
  constructor(
    private readonly config: StudioConfig,
    private readonly queue: JobQueue,
    readonly gallery: Gallery,
    readonly uploads: Uploads,
    private readonly manifestsDir?: string,
  ) {}

  private get registry(): RegistryOptions {
    return { dataDir: this.config.dataDir, installDir: this.config.modelsDir, ...(this.manifestsDir ? { modelsDir: this.manifestsDir } : {}) };
  }

  /** The VQGAN's factor and resolution from its config alone (no weights), or undefined if it cannot be read. */
  private vqganShape(id: string | undefined): { id: string; bundled: boolean; reason: string; factor: number; resolution: number } | undefined {
    try {
      const d = id ? { id, reason: `${id} was asked for`, dir: getModel(id, this.registry).dir } : (() => {
        const m = defaultModel('vqgan', this.registry);
        return { id: m.id, reason: m.reason, dir: m.model.dir };
      })();
      const file = ['config.json', 'vqgan_config.json'].map((f) => join(d.dir, f)).find((p) => existsSync(p));
      if (!file) return undefined;
      const raw = JSON.parse(readFileSync(file, 'utf8')) as { model?: { params?: unknown } };
      const cfg = parseVqganConfig(raw.model?.params ?? raw);
      return { id: d.id, bundled: getModel(d.id, this.registry).bundled, reason: d.reason,
        factor: 2 ** (cfg.ddconfig.ch_mult.length - 1), resolution: cfg.ddconfig.resolution };
    } catch {
      return undefined;
    }
  }

  /** What the form shows: active models, defaults, limits, the demo's vocabulary. */
  info(backend: string | null): GenerateInfo {
    const models: GenerateInfo['models'] = { clip: null, vqgan: null };
    try {
      const c = defaultModel('clip', this.registry);
      models.clip = { id: c.id, bundled: getModel(c.id, this.registry).bundled, reason: c.reason };
    } catch (err) {
      models.error = (err as Error).message;
    }
    models.vqgan = this.vqganShape(undefined) ?? null;
    if (!models.vqgan && !models.error) models.error = 'No VQGAN model is installed and no bundled demo model is present';
    const limits: GenerateInfo['limits'] = {};
    const defaults: GenerateInfo['defaults'] = { augment: true };
    for (const [k, l] of Object.entries(GENERATE_LIMITS)) {
      limits[k] = { min: l.min, max: l.max, integer: l.integer };
      if (k !== 'seed' && k !== 'size') defaults[k] = l.default;
    }
    if (models.vqgan) defaults.size = models.vqgan.resolution;
    const v = models.clip?.bundled ? worldVocabulary() : null;
    return {
      models, backend, defaults, limits, promptMaxLength: PROMPT_MAX_LENGTH,
      vocabulary: v ? { shapes: v.shapes, colors: v.colors, backgroundColors: v.backgroundColors } : null,
    };
  }

  /**
   * Check, enqueue and follow one generation. Throws InputError (naming the field) for bad
   * parameters and BusyError when the queue is full, before anything is queued.
   */
  start(params: ParsedParams, listener: (e: GenerateSessionEvent) => void): JobHandle {
    const engineParams = {
      ...params,
      imagePrompts: params.imagePrompts.map((p, i) => ({ path: this.uploads.path(p.upload, `imagePrompts.${i}`), weight: p.weight })),
      ...(params.initImage ? { initImage: this.uploads.path(params.initImage, 'initImage') } : {}),
    };
    const checked = validateGenerateParams(engineParams); // the engine's own checks, with its messages
    for (const field of ['clipModel', 'vqganModel'] as const) {
      const id = params[field];
      if (!id) continue;
      try {
        const m = getModel(id, this.registry); // registry ids only: never a path from a client
        if (m.family !== (field === 'clipModel' ? 'clip' : 'vqgan')) throw new Error(`${id} is a ${m.family} model`);
      } catch (err) {
        throw new InputError(field, `The \`${field}\` option: ${(err as Error).message}`);
      }
    }
    const shape = this.vqganShape(params.vqganModel);
    if (shape) checkSize(checked.size, shape.factor, shape.resolution);
    if (params.size === undefined && !shape) throw new InputError('vqganModel', 'No VQGAN model is available to generate with.');
    const seeded = { ...engineParams, seed: checked.seed };
    // What the gallery keeps: uploads by id, never server paths.
    const recipeInputs = { imagePrompts: params.imagePrompts, ...(params.initImage ? { initImage: params.initImage } : {}) };
    const forward = (e: JobEvent) => {
      switch (e.type) {
        case 'queued': return listener({ type: 'queued', jobId: e.jobId, position: e.position });
        case 'started': return listener({ type: 'started', jobId: e.jobId });
        case 'progress': return listener({ type: 'progress', jobId: e.jobId, data: e.data as GenerateProgress });
        case 'failed': return listener({ type: 'failed', jobId: e.jobId, error: e.error });
        case 'cancelled': return listener({ type: 'cancelled', jobId: e.jobId });
        case 'done': {
          const r = e.result as GenerateJobResult;
          const recipe = { ...r.recipe, ...recipeInputs };
          this.gallery.add({
            prompt: r.recipe.prompt, seed: r.recipe.seed, width: r.width, height: r.height,
            png: r.png, animation: r.animation, recipe: recipe as unknown as Record<string, unknown>,
          }).then(
            (rec) => listener({ type: 'done', jobId: e.jobId, item: toGalleryItem(rec) }),
            (err: Error) => {
              console.error('[generate] could not save to the gallery:', err);
              listener({ type: 'failed', jobId: e.jobId, error: { code: 'STORE', message: `The image was made but could not be saved: ${err.message}` } });
            },
          );
        }
      }
    };
    return this.queue.submit('generate', seeded, forward);
  }
}
