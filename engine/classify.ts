/**
 * Zero-shot classification with CLIP: every image scored against every label, scores being
 * the softmax over the labels of CLIP's logits (cosine similarity × the model's logit scale),
 * as in the CLIP paper's zero-shot evaluation without prompt ensembling.
 *
 * `classify` runs on onnxruntime (ClipScorer). `labelLogits` / `labelProbabilities` are the
 * same computation on a tfjs model: the demo trainer's evaluation uses them on a model it has
 * in memory, and the tests hold the two paths to each other.
 */
import { existsSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { InputError } from './errors';
import { encodeImage, encodeText, logitsPerImage, type Clip } from './models/clip';
import { defaultModel, resolveModel, type RegistryOptions } from './models/registry';
import { ClipTokenizer } from './models/tokenizer';
import { tf } from './runtime/tf';
import { ClipScorer } from './scorer';

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
  /** Images decoded and encoded per pass (default 16). */
  batchSize?: number;
  /** Where the model's built ONNX graphs are cached (`<dataDir>/onnx`); without it they are built in memory. */
  dataDir?: string;
  /** A scorer already open (the caller keeps owning it); `model`, `registry` and `dataDir` are then ignored. */
  scorer?: ClipScorer;
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
 * Score every image against every label, on onnxruntime (engine/scorer.ts): the model's
 * graphs are built from its weights (cached under `dataDir` when given) or taken from its
 * ONNX exports. Images go through in batches of `batchSize`; the labels are embedded once.
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
  const batchSize = opts.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new InputError('batchSize', `The \`batchSize\` option must be an integer of 1 or more, got ${batchSize}`);
  const scorer = opts.scorer ?? await ClipScorer.open({
    ...(opts.model ? { model: opts.model } : {}),
    ...(opts.registry ? { registry: opts.registry } : {}),
    ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
  });
  try {
    const results: ClassifyResult[] = [];
    for (let start = 0; start < images.length; start += batchSize) {
      const chunk = images.slice(start, start + batchSize);
      // A path's error names the file by its base name, as an upload's does by the name given.
      const inputs = chunk.map((img) => (typeof img === 'string' ? { name: basename(img), data: img } : img));
      const embeds = await scorer.imageEmbeddings(inputs);
      const ranked = await scorer.rankMany({ embeds, n: chunk.length }, clean);
      ranked.forEach((ranking, i) => {
        const img = chunk[i]!;
        results.push({ file: typeof img === 'string' ? img : img.name, ranking: ranking.map((s) => ({ label: s.text, score: s.score })) });
      });
    }
    return results;
  } finally {
    if (!opts.scorer) await scorer.close();
  }
}
