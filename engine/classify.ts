/**
 * Zero-shot classification with CLIP: every image scored against every label, scores being
 * the softmax over the labels of CLIP's logits (cosine similarity × the model's logit scale),
 * as in the CLIP paper's zero-shot evaluation without prompt ensembling.
 */
import { existsSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { InputError } from './errors';
import { preprocessForClip } from './io/images';
import { encodeImage, encodeText, loadClip, logitsPerImage, type Clip } from './models/clip';
import { defaultModel, resolveModel, type RegistryOptions } from './models/registry';
import { ClipTokenizer } from './models/tokenizer';
import { initBackend, tf } from './runtime/tf';

export interface LabelScore {
  label: string;
  /** Softmax probability over the labels. */
  score: number;
}

export interface ClassifyResult {
  /** The image as given: its path, or the name given with its bytes. */
  file: string;
  /** Every label, best first. */
  ranking: LabelScore[];
}

export type ClassifyImage = string | { name: string; data: Buffer };

export interface ClassifyOptions {
  /** A model id from the registry or a model directory; default: the default CLIP model (the bundled demo when none is installed). */
  model?: string;
  registry?: RegistryOptions;
  /** Images encoded per forward pass (default 16). */
  batchSize?: number;
  /** A model already loaded (the caller keeps owning it); `model` is then ignored. */
  clip?: Clip;
}

/** The model directory `model` names: a directory path, a registry id, or the default CLIP model. */
export function resolveClipDir(model: string | undefined, registry: RegistryOptions = {}): string {
  if (model && existsSync(model) && statSync(model).isDirectory()) return model;
  if (model) return resolveModel(model, registry).dir;
  return defaultModel('clip', registry).model.dir;
}

/**
 * Token rows for `texts`, cut to the longest row: with the causal mask, columns after every
 * row's end token change nothing, so this equals running the full context, only faster.
 */
export function textIds(tok: ClipTokenizer, texts: readonly string[], context: number): tf.Tensor2D {
  const { ids } = tok.tokenize(texts, context);
  let used = 2;
  for (let r = 0; r < texts.length; r++) {
    for (let i = context - 1; i >= used; i--) if (ids[r * context + i] !== 0) { used = i + 1; break; }
  }
  const cut = new Int32Array(texts.length * used);
  for (let r = 0; r < texts.length; r++) cut.set(ids.subarray(r * context, r * context + used), r * used);
  return tf.tensor2d(cut, [texts.length, used], 'int32');
}

/**
 * CLIP's logits [images][labels] (cosine similarity × the logit scale) of preprocessed images
 * (NCHW, `count` of them) against the labels.
 *
 * @example
 * const logits = await labelLogits(clip, tok, pixels, 2, ['a red circle', 'a blue star']);
 */
export async function labelLogits(clip: Clip, tok: ClipTokenizer, pixels: Float32Array, count: number, labels: readonly string[], batchSize = 16): Promise<number[][]> {
  const S = clip.config.vision.imageSize;
  const one = 3 * S * S;
  const ids = textIds(tok, labels, clip.config.text.maxPositionEmbeddings);
  const text = encodeText(clip, ids);
  ids.dispose();
  const out: number[][] = [];
  try {
    for (let start = 0; start < count; start += batchSize) {
      const n = Math.min(batchSize, count - start);
      const logits = tf.tidy(() => {
        const px = tf.tensor4d(pixels.subarray(start * one, (start + n) * one), [n, 3, S, S]);
        return logitsPerImage(clip, encodeImage(clip, px), text);
      });
      out.push(...((await logits.array()) as number[][]));
      logits.dispose();
    }
  } finally {
    text.dispose();
  }
  return out;
}

/** Softmax over the labels of each row of labelLogits. */
export async function labelProbabilities(clip: Clip, tok: ClipTokenizer, pixels: Float32Array, count: number, labels: readonly string[], batchSize = 16): Promise<number[][]> {
  return (await labelLogits(clip, tok, pixels, count, labels, batchSize)).map((row) => {
    const max = Math.max(...row);
    const e = row.map((x) => Math.exp(x - max));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / sum);
  });
}

/**
 * Score every image against every label.
 *
 * @example
 * const [r] = await classify(['circle.png'], ['a red circle', 'a blue star']);
 * r.ranking[0]; // { label: 'a red circle', score: 0.97 }
 */
export async function classify(images: readonly ClassifyImage[], labels: readonly string[], opts: ClassifyOptions = {}): Promise<ClassifyResult[]> {
  const clean = labels.map((l) => l.trim());
  if (!clean.length || clean.some((l) => !l)) throw new InputError('labels', 'Give at least one label, and no empty ones.');
  if (new Set(clean).size !== clean.length) throw new InputError('labels', `Labels must differ; got ${clean.join(', ')}.`);
  if (!images.length) throw new InputError('images', 'Give at least one image.');
  await initBackend();
  const tok = await ClipTokenizer.load();
  const clip = opts.clip ?? await loadClip(resolveClipDir(opts.model, opts.registry));
  try {
    const S = clip.config.vision.imageSize;
    const one = 3 * S * S;
    const pixels = new Float32Array(images.length * one);
    const names = images.map((img) => (typeof img === 'string' ? img : img.name));
    for (const [i, img] of images.entries()) {
      const data = typeof img === 'string' ? img : img.data;
      pixels.set(await preprocessForClip(data, clip.config.preprocess, { name: basename(names[i]!) }), i * one);
    }
    const probs = await labelProbabilities(clip, tok, pixels, images.length, clean, opts.batchSize);
    return probs.map((row, i) => ({
      file: names[i]!,
      ranking: row.map((score, j) => ({ label: clean[j]!, score })).sort((a, b) => b.score - a.score),
    }));
  } finally {
    if (!opts.clip) clip.dispose();
  }
}
