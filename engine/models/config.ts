/**
 * CLIP configuration: Hugging Face `CLIPConfig` JSON (`text_config`, `vision_config`,
 * `projection_dim`) plus the preprocessing constants of an optional `preprocessor_config.json`
 * (`image_mean`, `image_std`, `crop_size`). Missing options take the defaults of HF's
 * `CLIPTextConfig` / `CLIPVisionConfig` (those of openai/clip-vit-base-patch32); present ones
 * are validated, and a bad value is reported with the option's name and the allowed range.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ModelLoadError } from '../errors';

export type ClipActivation = 'quick_gelu' | 'gelu';
const ACTIVATIONS: readonly ClipActivation[] = ['quick_gelu', 'gelu'];

/** What the text and vision transformers share. */
export interface ClipTowerConfig {
  hiddenSize: number;
  intermediateSize: number;
  numAttentionHeads: number;
  numHiddenLayers: number;
  hiddenAct: ClipActivation;
  layerNormEps: number;
}

export interface ClipTextConfig extends ClipTowerConfig {
  vocabSize: number;
  /** Context length: the number of learned positions (77 for CLIP). */
  maxPositionEmbeddings: number;
  bosTokenId: number;
  eosTokenId: number;
  padTokenId: number;
  /**
   * A pruned token-embedding table (our extension, `text_config.pruned_vocab`, used by the
   * bundled demo model): its `vocab_size` rows hold only some of the tokenizer's ids, listed in
   * the weights' `text_model.embeddings.token_ids`; other ids read the row listed as -1 (unknown).
   */
  prunedVocab: boolean;
}

export interface ClipVisionConfig extends ClipTowerConfig {
  imageSize: number;
  patchSize: number;
  numChannels: number;
}

/** How pixels in [0, 1] become the model's input: `(x - mean) / std` per channel, `size`×`size`. */
export interface ClipPreprocessConfig {
  mean: number[];
  std: number[];
  size: number;
}

export interface ClipConfig {
  projectionDim: number;
  text: ClipTextConfig;
  vision: ClipVisionConfig;
  preprocess: ClipPreprocessConfig;
}

/** OpenAI CLIP's normalisation constants (clip/clip.py `_transform`). */
export const CLIP_IMAGE_MEAN: readonly number[] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_IMAGE_STD: readonly number[] = [0.26862954, 0.26130258, 0.27577711];

type Json = Record<string, unknown>;

function fail(message: string): never {
  throw new ModelLoadError(`Invalid CLIP config: ${message}`);
}

function int(obj: Json, key: string, where: string, fallback: number, min: number, max = 1 << 30): number {
  const v = obj[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(`\`${where}${key}\` must be an integer between ${min} and ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function positive(obj: Json, key: string, where: string, fallback: number): number {
  const v = obj[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    fail(`\`${where}${key}\` must be a positive number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function flag(obj: Json, key: string, where: string): boolean {
  const v = obj[key] ?? false;
  if (typeof v !== 'boolean') fail(`\`${where}${key}\` must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function object(v: unknown, where: string): Json {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) fail(`\`${where}\` must be an object, got ${JSON.stringify(v)}`);
  return v as Json;
}

function tower(obj: Json, where: string, d: Omit<ClipTowerConfig, 'hiddenAct' | 'layerNormEps'>): ClipTowerConfig {
  const hiddenSize = int(obj, 'hidden_size', where, d.hiddenSize, 1);
  const numAttentionHeads = int(obj, 'num_attention_heads', where, d.numAttentionHeads, 1, hiddenSize);
  if (hiddenSize % numAttentionHeads !== 0) {
    fail(`\`${where}hidden_size\` (${hiddenSize}) must be divisible by \`${where}num_attention_heads\` (${numAttentionHeads})`);
  }
  const act = obj.hidden_act ?? 'quick_gelu';
  if (!ACTIVATIONS.includes(act as ClipActivation)) {
    fail(`\`${where}hidden_act\` must be one of ${ACTIVATIONS.join(', ')}, got ${JSON.stringify(act)}`);
  }
  return {
    hiddenSize,
    intermediateSize: int(obj, 'intermediate_size', where, d.intermediateSize, 1),
    numAttentionHeads,
    numHiddenLayers: int(obj, 'num_hidden_layers', where, d.numHiddenLayers, 1, 1000),
    hiddenAct: act as ClipActivation,
    layerNormEps: positive(obj, 'layer_norm_eps', where, 1e-5),
  };
}

function channelList(v: unknown, key: string, channels: number, fallback: readonly number[], mustBePositive: boolean): number[] {
  if (v === undefined || v === null) return [...fallback];
  const list = typeof v === 'number' ? Array<number>(channels).fill(v) : v; // HF allows one number for every channel
  if (!Array.isArray(list) || list.length !== channels || !list.every((x) => typeof x === 'number' && Number.isFinite(x) && (!mustBePositive || x > 0))) {
    fail(`\`${key}\` must be ${channels} ${mustBePositive ? 'positive ' : ''}numbers (one per channel), got ${JSON.stringify(v)}`);
  }
  return list as number[];
}

/** `crop_size` is a number in old preprocessor configs and `{height, width}` in new ones. */
function cropSize(v: unknown, fallback: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'number') return v;
  const o = object(v, 'crop_size');
  if (typeof o.height === 'number' && o.height === o.width) return o.height;
  if (typeof o.shortest_edge === 'number') return o.shortest_edge;
  return fail(`\`crop_size\` must be a number or a square {height, width}, got ${JSON.stringify(v)}`);
}

/**
 * Validate a Hugging Face CLIPConfig object (and optionally its preprocessor config) and fill
 * in defaults. Throws a ModelLoadError naming the first bad option.
 *
 * @example
 * const config = parseClipConfig(JSON.parse(readFileSync('models/clip/config.json', 'utf8')));
 * config.vision.patchSize; // 32 for ViT-B/32
 */
export function parseClipConfig(raw: unknown, preprocessor?: unknown): ClipConfig {
  const root = object(raw, 'config');
  const t = object(root.text_config, 'text_config');
  const v = object(root.vision_config, 'vision_config');
  const projectionDim = int(root, 'projection_dim', '', 512, 1);

  const text: ClipTextConfig = {
    ...tower(t, 'text_config.', { hiddenSize: 512, intermediateSize: 2048, numAttentionHeads: 8, numHiddenLayers: 12 }),
    vocabSize: int(t, 'vocab_size', 'text_config.', 49408, 1),
    maxPositionEmbeddings: int(t, 'max_position_embeddings', 'text_config.', 77, 1),
    bosTokenId: int(t, 'bos_token_id', 'text_config.', 49406, 0),
    eosTokenId: int(t, 'eos_token_id', 'text_config.', 49407, 0),
    padTokenId: int(t, 'pad_token_id', 'text_config.', 1, 0),
    prunedVocab: flag(t, 'pruned_vocab', 'text_config.'),
  };
  const vision: ClipVisionConfig = {
    ...tower(v, 'vision_config.', { hiddenSize: 768, intermediateSize: 3072, numAttentionHeads: 12, numHiddenLayers: 12 }),
    imageSize: int(v, 'image_size', 'vision_config.', 224, 1),
    patchSize: int(v, 'patch_size', 'vision_config.', 32, 1),
    numChannels: int(v, 'num_channels', 'vision_config.', 3, 1),
  };
  if (vision.imageSize % vision.patchSize !== 0) {
    // The patch conv would silently drop the remainder, and the position table would not match.
    fail(`\`vision_config.image_size\` (${vision.imageSize}) must be a multiple of \`vision_config.patch_size\` (${vision.patchSize})`);
  }

  const p = object(preprocessor, 'preprocessor_config');
  const preprocess: ClipPreprocessConfig = {
    mean: channelList(p.image_mean, 'image_mean', vision.numChannels, vision.numChannels === 3 ? CLIP_IMAGE_MEAN : Array(vision.numChannels).fill(0.5), false),
    std: channelList(p.image_std, 'image_std', vision.numChannels, vision.numChannels === 3 ? CLIP_IMAGE_STD : Array(vision.numChannels).fill(0.5), true),
    size: cropSize(p.crop_size, vision.imageSize),
  };
  if (preprocess.size !== vision.imageSize) {
    fail(`\`crop_size\` (${preprocess.size}) must equal \`vision_config.image_size\` (${vision.imageSize}): the position embeddings fix the input size`);
  }
  return { projectionDim, text, vision, preprocess };
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ModelLoadError(`Cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ModelLoadError(`${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Read and validate a CLIP config file, plus `preprocessor_config.json` next to it if present
 * (or at `preprocessorPath`).
 *
 * @example
 * const config = readClipConfig('models/clip/config.json');
 */
export function readClipConfig(configPath: string, preprocessorPath?: string): ClipConfig {
  const pre = preprocessorPath ?? join(dirname(configPath), 'preprocessor_config.json');
  const preprocessor = preprocessorPath !== undefined || existsSync(pre) ? readJson(pre) : undefined;
  try {
    return parseClipConfig(readJson(configPath), preprocessor);
  } catch (err) {
    if (err instanceof ModelLoadError && err.message.startsWith('Invalid CLIP config')) {
      throw new ModelLoadError(`${err.message} (in ${configPath})`, { cause: err });
    }
    throw err;
  }
}
