/**
 * CLIP scoring on onnxruntime for everything that needs no gradient: classify, caption
 * ranking, game scoring and live guesses. One ClipScorer holds one model's two ORT sessions
 * (micro-batched, text embeddings cached: onnx/embedder.ts), its tokenizer and its
 * preprocessing, and answers in the terms callers use: images as bytes, texts as strings,
 * scores as CLIP's softmax over the candidates with the model's logit scale.
 *
 * @example
 * const scorer = await ClipScorer.open({ dataDir: 'data' });
 * const ranking = await scorer.rank(png, ['a red circle', 'a blue star']); // best first
 * await scorer.close();
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from './errors';
import { preprocessForClip, type ClipPreprocess } from './io/images';
import type { StateDict } from './io/host-tensor';
import { CLIP_IMAGE_MEAN, CLIP_IMAGE_STD, readClipConfig, type ClipConfig } from './models/config';
import { defaultModel, resolveModel, type RegistryOptions } from './models/registry';
import { ClipTokenizer } from './models/tokenizer';
import { OrtClipEmbedder, similarityLogits, type OrtClipEmbedderOptions, type OrtClipInfo } from './onnx/embedder';
import type { TextEmbeddingStore } from './onnx/text-cache';

export interface ClipScorerOptions {
  /** A registry id or a model directory; default: the default CLIP model (the bundled demo when none is installed). */
  model?: string;
  registry?: RegistryOptions;
  /** Where built ONNX graphs are cached (`<dataDir>/onnx`); without it they are built in memory. */
  dataDir?: string;
  /** A persistent store behind the embedder's in-memory text cache. */
  textStore?: TextEmbeddingStore;
  embedder?: OrtClipEmbedderOptions;
}

/** One candidate text's score against one image. */
export interface TextScore {
  text: string;
  /** Softmax probability over the candidates (logits scaled by the model's logit scale). */
  score: number;
  /** CLIP's logit: exp(logit_scale) · cosine similarity. */
  logit: number;
  /** The text had more tokens than the model's context and was cut to fit. */
  truncated: boolean;
}

export interface ScorerModel {
  /** The registry id, or the directory when a directory was given. */
  id: string;
  dir: string;
  /** The bundled demo model (it knows only the synthetic world's words). */
  demo: boolean;
}

/** Softmax of one row of logits (stable). */
export function softmax(row: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  const e = Array.from(row, (x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

export class ClipScorer {
  private constructor(
    readonly model: ScorerModel,
    private readonly embedder: OrtClipEmbedder,
    private readonly tok: ClipTokenizer,
    readonly preprocess: ClipPreprocess,
  ) {}

  /** Resolve the model (registry id, directory or default), build or load its graphs and open them. */
  static async open(opts: ClipScorerOptions = {}): Promise<ClipScorer> {
    const registry = opts.registry ?? {};
    let model: ScorerModel;
    if (opts.model && existsSync(opts.model) && statSync(opts.model).isDirectory()) {
      model = { id: opts.model, dir: opts.model, demo: false };
    } else {
      const resolved = opts.model ? resolveModel(opts.model, registry) : defaultModel('clip', registry).model;
      model = { id: resolved.id, dir: resolved.dir, demo: resolved.manifest.bundled === true };
    }
    const tok = await ClipTokenizer.load();
    const store = opts.textStore;
    const embedder = await OrtClipEmbedder.fromModelDir(model.dir, opts.dataDir ? { dataDir: opts.dataDir } : {},
      { ...opts.embedder, ...(store ? { textStore: store } : {}) });
    try {
      // Preprocessing: the model's own config when it has one, else CLIP's constants at the graph's size.
      const configPath = ['config.json', 'clip_config.json'].map((f) => join(model.dir, f)).find((p) => existsSync(p));
      const pre: ClipPreprocess = configPath
        ? readClipConfig(configPath).preprocess
        : { size: embedder.info.imageSize, mean: CLIP_IMAGE_MEAN, std: CLIP_IMAGE_STD };
      return new ClipScorer(model, embedder, tok, pre);
    } catch (err) {
      await embedder.close();
      throw err;
    }
  }

  /**
   * A scorer over weights already in memory (a config and a state dict), e.g. the benchmark's
   * random weights at a real model's size. `id` names it in `model`.
   *
   * @example
   * const scorer = await ClipScorer.fromWeights({ config, tensors, id: 'random ViT-B/32' }, { embedder: { visionPrecision: 'int8' } });
   */
  static async fromWeights(
    src: { config: ClipConfig; tensors: StateDict; id?: string },
    opts: Pick<ClipScorerOptions, 'dataDir' | 'textStore' | 'embedder'> = {},
  ): Promise<ClipScorer> {
    const tok = await ClipTokenizer.load();
    const embedder = await OrtClipEmbedder.fromWeights(
      { config: src.config, tensors: src.tensors, ...(opts.dataDir ? { dataDir: opts.dataDir } : {}) },
      { ...opts.embedder, ...(opts.textStore ? { textStore: opts.textStore } : {}) },
    );
    const id = src.id ?? 'in-memory weights';
    return new ClipScorer({ id, dir: '', demo: false }, embedder, tok, src.config.preprocess);
  }

  get info(): OrtClipInfo {
    return this.embedder.info;
  }

  /** Which ORT provider runs the towers, with how many threads. */
  get runtime(): { provider: string; threads: number } {
    return this.embedder.runtime;
  }

  get stats() {
    return this.embedder.stats;
  }

  /** Decode (any size; PNG, JPEG, WebP, …) and preprocess one image: NCHW float32 [3, S, S]. */
  async pixels(image: Buffer | string, name?: string): Promise<Float32Array> {
    return preprocessForClip(image, this.preprocess, name ? { name } : undefined);
  }

  /**
   * Image embeddings [n, E] (unnormalised) of images given as bytes or paths, or either with a
   * name for error messages (`{ name: 'upload.png', data }`).
   */
  async imageEmbeddings(images: readonly (Buffer | string | { name: string; data: Buffer | string })[]): Promise<Float32Array> {
    if (!images.length) throw new InputError('images', 'Give at least one image.');
    const S = this.preprocess.size;
    const one = 3 * S * S;
    const px = new Float32Array(images.length * one);
    for (const [i, img] of images.entries()) {
      const [data, name] = Buffer.isBuffer(img) || typeof img === 'string' ? [img, undefined] : [img.data, img.name];
      px.set(await this.pixels(data, name), i * one);
    }
    return this.embedder.embedImages(px, images.length);
  }

  /** Image embeddings [n, E] of already preprocessed pixels (NCHW, `n` images). */
  async pixelEmbeddings(pixels: Float32Array, n: number): Promise<Float32Array> {
    return this.embedder.embedImages(pixels, n);
  }

  /**
   * Text embeddings [n, E] (unnormalised); texts longer than the context are cut to fit and
   * flagged in `truncated`.
   */
  async textEmbeddings(texts: readonly string[]): Promise<{ embeds: Float32Array; truncated: boolean[] }> {
    if (!texts.length) throw new InputError('texts', 'Give at least one text.');
    const context = this.embedder.info.contextLength;
    const { ids, truncated } = this.tok.tokenize(texts, context);
    // Cut the rows to the longest one: the causal tower's pooled output ignores what follows the end token.
    let used = 2;
    for (let r = 0; r < texts.length; r++) {
      for (let i = context - 1; i >= used; i--) if (ids[r * context + i] !== 0) { used = i + 1; break; }
    }
    const cut = new Int32Array(texts.length * used);
    for (let r = 0; r < texts.length; r++) cut.set(ids.subarray(r * context, r * context + used), r * used);
    return { embeds: await this.embedder.embedTexts(cut, texts.length), truncated };
  }

  /** CLIP's logits [n, m] of image embeddings [n, E] against text embeddings [m, E]. */
  logits(imageEmbeds: Float32Array, n: number, textEmbeds: Float32Array, m: number): Float32Array {
    return similarityLogits(imageEmbeds, n, textEmbeds, m, this.embedder.info.logitScale);
  }

  /**
   * Every text scored against each image: per image, the candidates best first with CLIP's
   * softmax probability over them. `images` are bytes/paths or precomputed embeddings.
   */
  async rankMany(images: readonly (Buffer | string)[] | { embeds: Float32Array; n: number }, texts: readonly string[]): Promise<TextScore[][]> {
    if (!texts.length) throw new InputError('texts', 'Give at least one text to rank.');
    const { embeds: img, n } = 'embeds' in images ? images : { embeds: await this.imageEmbeddings(images), n: images.length };
    const { embeds: txt, truncated } = await this.textEmbeddings(texts);
    const logits = this.logits(img, n, txt, texts.length);
    const m = texts.length;
    return Array.from({ length: n }, (_, i) => {
      const row = logits.subarray(i * m, (i + 1) * m);
      const p = softmax(row);
      return texts.map((text, j) => ({ text, score: p[j]!, logit: row[j]!, truncated: truncated[j]! }))
        .sort((a, b) => b.score - a.score);
    });
  }

  /** `rankMany` for one image. */
  async rank(image: Buffer | string, texts: readonly string[]): Promise<TextScore[]> {
    return (await this.rankMany([image], texts))[0]!;
  }

  async close(): Promise<void> {
    await this.embedder.close();
  }
}
