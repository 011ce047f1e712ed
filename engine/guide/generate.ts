/**
 * VQGAN+CLIP text-to-image: the loop of the classic notebooks (Katherine Crowson's Colab,
 * nerdyrodent/VQGAN-CLIP `generate.py`) as an async generator, so a worker job, the CLI and a
 * benchmark drive it the same way and stop it by simply not asking for the next step.
 *
 *   z ← random codebook entries (or the VQGAN encoding of an init image)
 *   each step: image = clamp(decode(quantise_st(z))); crops = cutouts(image) (+ augmentations);
 *              loss = Σ_prompts |w|·mean(sign(w)·spherical_distance(CLIP(crops), target))
 *                     (+ init_strength·½·mse(z, z_init) with an init image);
 *              Adam step on z; clamp z to the codebook's per-dimension range.
 *
 * Each step runs in its own tf.tidy; the loss is read back every step, pixels only for previews.
 * Everything random comes from `seed` (engine/demo/rng.ts), so the same seed, parameters,
 * models and backend give the same image.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InputError } from '../errors';
import { chwToRgbBytes, decodeImage, preprocessForClip, resizeRgb } from '../io/images';
import { encodeImage, encodeText, loadClip, type Clip } from '../models/clip';
import { findClipWeights } from '../models/clip-weights';
import { defaultModel, resolveModel, type RegistryOptions } from '../models/registry';
import { ClipTokenizer } from '../models/tokenizer';
import { disposeVqgan, loadVqgan, vqganCodebookLookup, vqganEncode, type VqganWeights } from '../models/vqgan';
import { tf } from '../runtime/tf';
import { textIds } from '../classify';
import { createRng, type Rng } from '../demo/rng';
import { makeCutouts } from './cutouts';
import { guidedLoss, synthesizeImage, type WeightedPrompt } from './loss';
import { checkSize, parseGeneratePrompt, type GenerateParams } from './params';

export interface ModelInfo {
  /** Registry id, or the directory's name for a model given by path. */
  id: string;
  dir: string;
  /** sha256 of each weight file, by file name. */
  sha256: Record<string, string>;
}

/** The models a generation needs, loaded once and reused across jobs. */
export interface GenerateModels {
  clip: Clip;
  vqgan: VqganWeights;
  tokenizer: ClipTokenizer;
  info: { clip: ModelInfo; vqgan: ModelInfo };
  dispose(): void;
}

export interface ModelChoice {
  /** A CLIP registry id or model directory; default: the registry's default (the demo when nothing is installed). */
  clip?: string;
  /** A VQGAN registry id or model directory; default as for `clip`. */
  vqgan?: string;
  registry?: RegistryOptions;
}

const VQGAN_WEIGHT_NAMES = ['vqgan.safetensors', 'model.safetensors', 'vqgan.ckpt', 'model.ckpt', 'last.ckpt'];

function resolveDir(family: 'clip' | 'vqgan', model: string | undefined, registry: RegistryOptions): { id: string; dir: string } {
  if (model && existsSync(model) && statSync(model).isDirectory()) return { id: basename(model), dir: model };
  if (model) return { id: model, dir: resolveModel(model, registry).dir };
  const d = defaultModel(family, registry);
  return { id: d.id, dir: d.model.dir };
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function checksums(paths: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const p of paths) out[basename(p)] = await sha256Of(p);
  return out;
}

/**
 * Load the CLIP and VQGAN a generation runs on (call initBackend first).
 *
 * @example
 * const models = await loadGenerateModels({ clip: 'demo-clip', vqgan: 'demo-vqgan' });
 * for await (const e of generate(models, validateGenerateParams({ prompt: 'a red circle' }))) …
 * models.dispose();
 */
export async function loadGenerateModels(choice: ModelChoice = {}): Promise<GenerateModels> {
  const registry = choice.registry ?? {};
  const c = resolveDir('clip', choice.clip, registry);
  const v = resolveDir('vqgan', choice.vqgan, registry);
  const vqganWeights = VQGAN_WEIGHT_NAMES.map((n) => join(v.dir, n)).find((p) => existsSync(p));
  const [tokenizer, clip] = await Promise.all([ClipTokenizer.load(), loadClip(c.dir)]);
  let vqgan: VqganWeights;
  try {
    vqgan = await loadVqgan(v.dir);
  } catch (err) {
    clip.dispose();
    throw err;
  }
  const info = {
    clip: { ...c, sha256: await checksums(findClipWeights(c.dir)) },
    vqgan: { ...v, sha256: await checksums(vqganWeights ? [vqganWeights] : []) },
  };
  return { clip, vqgan, tokenizer, info, dispose: () => { clip.dispose(); disposeVqgan(vqgan); } };
}

/** A picture as interleaved RGB bytes. */
export interface Frame {
  width: number;
  height: number;
  rgb: Uint8Array;
}

export type GenerateEvent =
  | { type: 'step'; step: number; total: number; loss: number; elapsedMs: number; etaMs: number; preview?: Frame }
  | {
    type: 'done'; image: Frame; loss: number; steps: number; size: number; seed: number;
    /** Every preview frame, then the final image: the progress animation. */
    frames: Frame[];
    timings: { setupMs: number; stepsMs: number; msPerStep: number; totalMs: number };
  };

export interface GenerateHooks {
  /** Awaited before every step: yield to the event loop, throw to stop (a worker's cancel). */
  checkpoint?: () => Promise<void>;
}

/** The VQGAN's downsampling factor: 2^(levels − 1). */
export function vqganFactor(vqgan: VqganWeights): number {
  return 2 ** (vqgan.config.ddconfig.ch_mult.length - 1);
}

/** Read a NCHW [1, 3, S, S] picture in [0, 1] back as RGB bytes. */
async function toFrame(image: tf.Tensor4D): Promise<Frame> {
  const [, , h, w] = image.shape;
  return { width: w, height: h, rgb: chwToRgbBytes((await image.data()) as Float32Array, w, h) };
}

/** An image file as CLIP embeddings' input, with errors naming `field`. */
async function clipPixels(path: string, clip: Clip, field: string): Promise<Float32Array> {
  try {
    return await preprocessForClip(path, clip.config.preprocess);
  } catch (err) {
    if (err instanceof InputError) throw new InputError(field, err.message, { cause: err });
    throw err;
  }
}

/** The start latent from an init image: resized to size×size, in [-1, 1], through the encoder. */
async function encodeInit(path: string, vqgan: VqganWeights, size: number): Promise<tf.Tensor4D> {
  let img;
  try {
    img = await resizeRgb(await decodeImage(path), size, size, 'cubic');
  } catch (err) {
    if (err instanceof InputError) throw new InputError('initImage', `The init image ${err.message}`, { cause: err });
    throw err;
  }
  return tf.tidy(() => {
    const x = tf.sub(tf.div(tf.tensor4d(Float32Array.from(img.data), [1, size, size, 3]), 127.5), 1) as tf.Tensor4D;
    return vqganEncode(vqgan, x);
  });
}

/** The notebooks' start: a random codebook entry at every latent position. */
function randomCodes(vqgan: VqganWeights, side: number, rng: Rng): tf.Tensor4D {
  const indices = new Int32Array(side * side);
  for (let i = 0; i < indices.length; i++) indices[i] = rng.int(0, vqgan.config.n_embed - 1);
  return tf.tidy(() => vqganCodebookLookup(vqgan, tf.tensor3d(indices, [1, side, side], 'int32')));
}

/** Cells per side of the smooth start's colour grid, and how far its colours stray from mid-grey (in [-1, 1] units). */
const SMOOTH_GRID = 4;
const SMOOTH_AMPLITUDE = 0.3;

/** A seeded low-frequency colour field (a 4×4 grid of random colours, bilinearly enlarged) through the encoder. */
function smoothField(vqgan: VqganWeights, size: number, rng: Rng): tf.Tensor4D {
  const grid = new Float32Array(SMOOTH_GRID * SMOOTH_GRID * 3);
  for (let i = 0; i < grid.length; i++) grid[i] = rng.range(-SMOOTH_AMPLITUDE, SMOOTH_AMPLITUDE);
  return tf.tidy(() => {
    const field = tf.image.resizeBilinear(tf.tensor4d(grid, [1, SMOOTH_GRID, SMOOTH_GRID, 3]), [size, size], true);
    return vqganEncode(vqgan, field);
  });
}

/**
 * Run VQGAN+CLIP. Yields a `step` event per step (with a preview frame every
 * `params.previewEvery` steps) and finally one `done` event with the image. Stop early by
 * breaking out of the loop (or a throwing `checkpoint`): every tensor is freed either way.
 *
 * @example
 * for await (const e of generate(models, validateGenerateParams({ prompt: 'a red circle on a blue background', steps: 40, seed: 1 }))) {
 *   if (e.type === 'step') console.error(e.step, e.loss);
 *   else await writeFile('out.png', await encodePng(e.image.rgb, e.image.width, e.image.height));
 * }
 */
export async function* generate(models: GenerateModels, params: GenerateParams, hooks: GenerateHooks = {}): AsyncGenerator<GenerateEvent, void, void> {
  const t0 = performance.now();
  const { clip, vqgan, tokenizer } = models;
  const size = checkSize(params.size, vqganFactor(vqgan), vqgan.config.ddconfig.resolution);
  const prompts: WeightedPrompt[] = parseGeneratePrompt(params.prompt);
  const rng = createRng(params.seed);
  const latentSide = size / vqganFactor(vqgan);
  const owned: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => { owned.push(t); return t; };
  let optimizer: tf.AdamOptimizer | undefined;
  try {
    // Targets: one row per text prompt, then one per image prompt.
    const ids = textIds(tokenizer, prompts.map((p) => p.text), clip.config.text.maxPositionEmbeddings);
    const rows: tf.Tensor2D[] = [tf.tidy(() => encodeText(clip, ids))];
    ids.dispose();
    const weights = prompts.map((p) => p.weight);
    const R = clip.config.vision.imageSize;
    try {
      for (const [i, ip] of params.imagePrompts.entries()) {
        const px = await clipPixels(ip.path, clip, `imagePrompts.${i}`);
        rows.push(tf.tidy(() => encodeImage(clip, tf.tensor4d(px, [1, 3, R, R]))));
        weights.push(ip.weight);
      }
    } catch (err) {
      tf.dispose(rows);
      throw err;
    }
    const targets = keep(rows.length === 1 ? rows[0]! : tf.tidy(() => tf.concat(rows, 0)));
    if (rows.length > 1) tf.dispose(rows);

    // The start latent: random (codebook entries, or a smooth colour field), mixed with an init image's encoding.
    const zRandom = keep(params.start === 'codes' ? randomCodes(vqgan, latentSide, rng) : smoothField(vqgan, size, rng));
    const zInit = params.initImage ? keep(await encodeInit(params.initImage, vqgan, size)) : undefined;
    const s = params.initStrength;
    const start = zInit ? tf.tidy(() => tf.add(tf.mul(zInit, s), tf.mul(zRandom, 1 - s))) : zRandom.clone();
    const z = keep(tf.variable(start, true, undefined, 'float32'));
    start.dispose(); // the variable holds its own reference to the data
    const zMin = keep(tf.min(vqgan.codebook, 0));
    const zMax = keep(tf.max(vqgan.codebook, 0));
    optimizer = tf.train.adam(params.lr);
    const cutouts = makeCutouts({ cutn: params.cutn, cutPow: params.cutPow, cutSize: R, augment: params.augment }, rng);
    const frames: Frame[] = [];
    const setupMs = performance.now() - t0;
    const tSteps = performance.now();
    let loss = NaN;

    for (let step = 1; step <= params.steps; step++) {
      await hooks.checkpoint?.();
      const cost = tf.tidy(() => {
        const c = optimizer!.minimize(() => {
          const guided = guidedLoss({ vqgan, clip, z: z as unknown as tf.Tensor4D, textEmbeds: targets as tf.Tensor2D, weights, cutouts });
          if (!zInit || s === 0) return guided;
          return tf.add(guided, tf.mul(tf.mean(tf.squaredDifference(z, zInit)), s / 2)) as tf.Scalar;
        }, true, [z as tf.Variable]);
        (z as tf.Variable).assign(tf.minimum(tf.maximum(z, zMin), zMax)); // the notebooks' clamp to the codebook's range
        return c!;
      });
      loss = (await cost.data())[0]!;
      cost.dispose();
      const elapsedMs = performance.now() - tSteps;
      const wantPreview = params.previewEvery > 0 && (step % params.previewEvery === 0 || step === 1) && step < params.steps;
      let preview: Frame | undefined;
      if (wantPreview) {
        const img = tf.tidy(() => synthesizeImage(vqgan, z as unknown as tf.Tensor4D));
        preview = await toFrame(img);
        img.dispose();
        frames.push(preview);
      }
      yield { type: 'step', step, total: params.steps, loss, elapsedMs, etaMs: (elapsedMs / step) * (params.steps - step), ...(preview ? { preview } : {}) };
    }
    const stepsMs = performance.now() - tSteps;
    const final = tf.tidy(() => synthesizeImage(vqgan, z as unknown as tf.Tensor4D));
    const image = await toFrame(final);
    final.dispose();
    frames.push(image);
    yield {
      type: 'done', image, loss, steps: params.steps, size, seed: params.seed, frames,
      timings: { setupMs, stepsMs, msPerStep: stepsMs / params.steps, totalMs: performance.now() - t0 },
    };
  } finally {
    optimizer?.dispose();
    tf.dispose(owned);
  }
}
