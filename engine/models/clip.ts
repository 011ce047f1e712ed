/**
 * CLIP (Radford et al. 2021) in TensorFlow.js: the ViT image tower and the causal text
 * transformer, matching OpenAI CLIP's `clip/model.py` (`VisionTransformer`, `Transformer`,
 * `encode_text`) and Hugging Face's `modeling_clip.py` (`CLIPVisionTransformer`,
 * `CLIPTextTransformer`, whose state-dict names we load; see clip-weights.ts).
 *
 * Defined bottom-up: layer norm and linear → attention → residual block → towers → model.
 * Every function is a plain function of explicit weights and runs inside `tf.tidy`. The image
 * path uses only ops with gradients on every backend (reshape/transpose/matMul — no conv with
 * NCHW, no gather), because guided generation backpropagates through `encodeImage`.
 * Activations are kept 2-D as [B·tokens, width] between blocks so every projection is one
 * plain matmul.
 */
import { dirname } from 'node:path';
import { ModelLoadError, ShapeError } from '../errors';
import type { StateDict } from '../io/host-tensor';
import { tf } from '../runtime/tf';
import {
  clipWeightsFromStateDict, checkClipStateDict, disposeClipWeights, findClipFiles, findClipWeights, readClipStateDict,
  type ClipBlockWeights, type ClipWeights, type LayerNormWeights, type LinearWeights,
} from './clip-weights';
import { parseClipConfig, readClipConfig, type ClipActivation, type ClipConfig, type ClipTowerConfig } from './config';

export type { ClipWeights } from './clip-weights';

/** Added to attention scores a token may not see; large enough that exp() underflows to 0. */
const MASKED = -1e9;

// ---- layers ---------------------------------------------------------------------------------

function layerNorm(x: tf.Tensor2D, ln: LayerNormWeights, eps: number): tf.Tensor2D {
  const mean = tf.mean(x, -1, true);
  const centred = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centred), -1, true);
  return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, eps))), ln.gamma), ln.beta);
}

/**
 * x·w + b with w [in, out]. The gradient is given by hand, w.r.t. x only: `dy·wᵀ` with the
 * stored transpose, where tfjs's own would also form the weight gradients (xᵀ·dy, which nobody
 * asks for) with slow transposed matmuls (see clip-weights.ts). Weights are constants here;
 * trainable weights (ClipWeights.trainable) take `trainableLinear` instead.
 */
function linear(x: tf.Tensor2D, l: LinearWeights, train = false): tf.Tensor2D {
  if (train) return trainableLinear(x, l);
  const f = tf.customGrad((input) => ({
    value: l.b ? tf.fused.matMul({ a: input as tf.Tensor2D, b: l.w, bias: l.b }) : tf.matMul(input as tf.Tensor2D, l.w),
    gradFunc: (dy) => tf.matMul(dy as tf.Tensor2D, l.wT ?? tf.transpose(l.w)),
  }));
  return f(x) as tf.Tensor2D;
}

/**
 * a·b for [M, K]·[K, N] or batched [n, M, K]·[n, K, N], with gradients w.r.t. both formed by
 * plain matmuls of explicit transposes: `dy·bᵀ` and `aᵀ·dy`. tfjs's own gradient uses
 * matMul's transpose flags, ~10× (B) and ~30× (A) slower on wasm; a transpose copy is cheap.
 */
const matMulBoth = tf.customGrad((a, b, save) => {
  const [x, y] = [a as tf.Tensor, b as tf.Tensor];
  (save as tf.GradSaveFunc)([x, y]);
  const swap = (t: tf.Tensor) => tf.transpose(t, t.rank === 3 ? [0, 2, 1] : [1, 0]);
  return {
    value: tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      tf.matMul(dy as tf.Tensor3D, swap(saved[1]!) as tf.Tensor3D),
      tf.matMul(swap(saved[0]!) as tf.Tensor3D, dy as tf.Tensor3D),
    ],
  };
}) as <T extends tf.Tensor>(a: T, b: tf.Tensor) => T;

/** x·w + b with gradients w.r.t. x, w and b (training). */
function trainableLinear(x: tf.Tensor2D, l: LinearWeights): tf.Tensor2D {
  const y = matMulBoth(x, l.w);
  return l.b ? tf.add(y, l.b) : y;
}

function activation(x: tf.Tensor2D, act: ClipActivation): tf.Tensor2D {
  if (act === 'quick_gelu') return tf.mul(x, tf.sigmoid(tf.mul(x, 1.702)));
  // HF "gelu" is the exact erf form.
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
}

// ---- attention and block --------------------------------------------------------------------

/**
 * Multi-head self-attention over `batch` sequences of `tokens` tokens each.
 * `mask` ([tokens, tokens], additive) makes it causal for the text tower.
 */
function attention(x: tf.Tensor2D, w: ClipBlockWeights, batch: number, tokens: number, heads: number, mask: tf.Tensor2D | undefined, train: boolean): tf.Tensor2D {
  const width = x.shape[1];
  const headDim = width / heads;
  const qkv = linear(x, w.qkv, train); // q already scaled by 1/√headDim (see ClipBlockWeights)
  // Every transpose here has rank ≤ 4: tfjs-wasm's rank-5/6 transposes are ~50–100× slower.
  // [B·T, 3·W] -> [B·T, 3, W] -> [3, B·T, W] -> 3 × [B·T, W]
  const [q, k, v] = tf.split(tf.transpose(tf.reshape(qkv, [batch * tokens, 3, width]), [1, 0, 2]), 3, 0);
  // [B·T, W] -> [B, T, heads, hd] -> [B, heads, T, hd] (q, v) or [B, heads, hd, T] (kᵀ) -> [B·heads, …]
  const heads4 = (t: tf.Tensor, perm: number[], rows: number, cols: number) =>
    tf.reshape(tf.transpose(tf.reshape(t, [batch, tokens, heads, headDim]), perm), [batch * heads, rows, cols]) as tf.Tensor3D;
  const qh = heads4(q!, [0, 2, 1, 3], tokens, headDim);
  const kT = heads4(k!, [0, 2, 3, 1], headDim, tokens);
  const vh = heads4(v!, [0, 2, 1, 3], tokens, headDim);
  // Plain matmuls of explicit transposes, here and in their gradients (see matMulBoth).
  let scores: tf.Tensor3D = matMulBoth(qh, kT); // [B·heads, T, T]
  if (mask) scores = tf.add(scores, mask);
  const context = matMulBoth(tf.softmax(scores, -1), vh); // [B·heads, T, hd]
  // [B·heads, T, hd] -> [B, heads, T, hd] -> [B, T, heads, hd] -> [B·T, W]
  const merged = tf.reshape(tf.transpose(tf.reshape(context, [batch, heads, tokens, headDim]), [0, 2, 1, 3]), [batch * tokens, width]);
  return linear(merged as tf.Tensor2D, w.out, train);
}

/** Pre-norm residual block: x + attn(ln1(x)), then x + fc2(act(fc1(ln2(x)))). */
function block(x: tf.Tensor2D, w: ClipBlockWeights, c: ClipTowerConfig, batch: number, tokens: number, mask: tf.Tensor2D | undefined, train: boolean): tf.Tensor2D {
  const h: tf.Tensor2D = tf.add(x, attention(layerNorm(x, w.ln1, c.layerNormEps), w, batch, tokens, c.numAttentionHeads, mask, train));
  const mlp = linear(activation(linear(layerNorm(h, w.ln2, c.layerNormEps), w.fc1, train), c.hiddenAct), w.fc2, train);
  return tf.add(h, mlp);
}

// ---- towers ---------------------------------------------------------------------------------

/**
 * Image embeddings (unnormalised) of a batch of normalised images.
 * `pixelValues` is NCHW [B, C, R, R] with R = the config's image size, already `(x − mean) / std`
 * (see normalizePixels). Differentiable w.r.t. `pixelValues`.
 *
 * @example
 * const embeds = encodeImage(clip, normalizePixels(clip.config, pixels01)); // [B, projection_dim]
 */
export function encodeImage(w: ClipWeights, pixelValues: tf.Tensor4D): tf.Tensor2D {
  const c = w.config.vision;
  const [batch, channels, height, width] = pixelValues.shape;
  if (pixelValues.rank !== 4 || channels !== c.numChannels || height !== c.imageSize || width !== c.imageSize) {
    throw new ShapeError(`encodeImage expects pixel values of shape [B, ${c.numChannels}, ${c.imageSize}, ${c.imageSize}], got [${pixelValues.shape.join(', ')}]`);
  }
  const train = w.trainable ?? false;
  return tf.tidy(() => {
    const P = c.patchSize;
    const side = c.imageSize / P; // patches per side
    const patches = side * side;
    const tokens = patches + 1;
    const W = c.hiddenSize;
    // The patch conv has stride = kernel, so it is a matmul over flattened, non-overlapping patches.
    // Two rank-4 transposes rather than one rank-6 (~20× slower on wasm):
    // [B, C, R, R] -> [B·C·side, P, side, P] -> [B·C·side, side, P, P] = [B, C, patches, P·P]
    //   -> [B, patches, C, P·P] -> [B·patches, C·P·P]
    const rows = tf.transpose(tf.reshape(pixelValues, [batch * channels * side, P, side, P]), [0, 2, 1, 3]);
    const flat = tf.reshape(
      tf.transpose(tf.reshape(rows, [batch, channels, patches, P * P]), [0, 2, 1, 3]),
      [batch * patches, channels * P * P],
    ) as tf.Tensor2D;
    const embedded = tf.reshape(linear(flat, w.vision.patch, train), [batch, patches, W]); // [B·patches, W] -> [B, patches, W]
    // class token [W] -> [B, 1, W], prepended: [B, 1 + patches, W]
    const cls = tf.tile(tf.reshape(w.vision.classEmbedding, [1, 1, W]), [batch, 1, 1]);
    const seq = tf.add(tf.concat([cls, embedded], 1), w.vision.positionEmbedding);
    let x = layerNorm(tf.reshape(seq, [batch * tokens, W]) as tf.Tensor2D, w.vision.preLn, c.layerNormEps); // [B·T, W]
    for (const layer of w.vision.layers) x = block(x, layer, c, batch, tokens, undefined, train);
    // [B·T, W] -> [B, T, W] -> class token [B, W]
    const pooled = tf.reshape(tf.slice(tf.reshape(x, [batch, tokens, W]), [0, 0, 0], [batch, 1, W]), [batch, W]) as tf.Tensor2D;
    return linear(layerNorm(pooled, w.vision.postLn, c.layerNormEps), w.vision.projection, train); // [B, E]
  });
}

/**
 * Text embeddings (unnormalised) of a batch of token ids ([B, T] int32, T ≤ the context
 * length, e.g. from ClipTokenizer). Each sequence is pooled at its first largest id, the
 * `<|endoftext|>` token, as in OpenAI's `encode_text`.
 *
 * @example
 * const embeds = encodeText(clip, tf.tensor2d(ids, [1, 77], 'int32')); // [1, projection_dim]
 */
export function encodeText(w: ClipWeights, inputIds: tf.Tensor2D): tf.Tensor2D {
  const c = w.config.text;
  const [batch, tokens] = inputIds.shape;
  if (inputIds.rank !== 2 || inputIds.dtype !== 'int32' || tokens < 1 || tokens > c.maxPositionEmbeddings) {
    throw new ShapeError(`encodeText expects int32 token ids of shape [B, T] with 1 ≤ T ≤ ${c.maxPositionEmbeddings}, got ${inputIds.dtype} [${inputIds.shape.join(', ')}]`);
  }
  const train = w.trainable ?? false;
  return tf.tidy(() => {
    const W = c.hiddenSize;
    const flatIds = tf.reshape(inputIds, [batch * tokens]) as tf.Tensor1D; // [B, T] -> [B·T]
    // A pruned table (the demo model) maps tokenizer ids to its rows; ids past the table's end
    // share its last entry, the unknown row.
    const rows = w.text.tokenRows
      ? tf.gather(w.text.tokenRows, tf.clipByValue(flatIds, 0, w.text.tokenRows.shape[0] - 1))
      : flatIds;
    // gathered [B·T, W] (training: one-hot·table, as gather has no gradient on every backend) -> [B, T, W] + positions [T, W]
    const vocab = w.text.tokenEmbedding.shape[0];
    const looked = train ? matMulBoth(oneHotFloat(rows, vocab), w.text.tokenEmbedding) : tf.gather(w.text.tokenEmbedding, rows);
    const tokensEmbedded = tf.reshape(looked, [batch, tokens, W]);
    const seq = tf.add(tokensEmbedded, tf.slice(w.text.positionEmbedding, [0, 0], [tokens, W]));
    let x = tf.reshape(seq, [batch * tokens, W]) as tf.Tensor2D;
    // Causal: token i attends to tokens 0..i. Lower triangle 1 -> 0, upper -> MASKED.
    const mask = tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([tokens, tokens]), -1, 0)), MASKED) as tf.Tensor2D;
    for (const layer of w.text.layers) x = block(x, layer, c, batch, tokens, mask, train);
    // Row of each sequence's end token in [B·T, W]: b·T + argmax(ids[b]), by the tokenizer's ids.
    const ends = tf.add(tf.argMax(inputIds, 1), tf.range(0, batch * tokens, tokens, 'int32')) as tf.Tensor1D;
    const picked = train ? matMulBoth(oneHotFloat(ends, batch * tokens), x) : tf.gather(x, ends);
    // Layer norm is per token, so normalising only the pooled rows equals HF's norm-then-pool.
    const pooled = layerNorm(picked as tf.Tensor2D, w.text.finalLn, c.layerNormEps); // [B, W]
    return linear(pooled, w.text.projection, train); // [B, E]
  });
}

/** One-hot rows as float32 (wasm's OneHot writes int32 whatever dtype is asked for, hence the cast). */
function oneHotFloat(indices: tf.Tensor1D, depth: number): tf.Tensor2D {
  return tf.cast(tf.oneHot(indices, depth), 'float32') as tf.Tensor2D;
}

function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.mul(x, tf.rsqrt(tf.sum(tf.square(x), 1, true)));
}

/**
 * CLIP's similarity logits [images, texts]: exp(logit_scale) · cos(image_i, text_j).
 *
 * @example
 * const probs = tf.softmax(logitsPerImage(clip, encodeImage(clip, px), encodeText(clip, ids)));
 */
export function logitsPerImage(w: ClipWeights, imageEmbeds: tf.Tensor2D, textEmbeds: tf.Tensor2D): tf.Tensor2D {
  if (imageEmbeds.shape[1] !== textEmbeds.shape[1]) {
    throw new ShapeError(`logitsPerImage: image embeddings [${imageEmbeds.shape.join(', ')}] and text embeddings [${textEmbeds.shape.join(', ')}] differ in width`);
  }
  return tf.tidy(() => tf.mul(tf.matMul(l2Normalize(imageEmbeds), l2Normalize(textEmbeds), false, true), tf.exp(w.logitScale)));
}

/**
 * Images in [0, 1] (NCHW) to the model's input: `(x − mean) / std` per channel, with the
 * constants of the model's preprocessor config.
 *
 * @example
 * const pixelValues = normalizePixels(clip.config, pixels01);
 */
export function normalizePixels(config: ClipConfig, pixels: tf.Tensor4D): tf.Tensor4D {
  const { mean, std } = config.preprocess;
  if (pixels.rank !== 4 || pixels.shape[1] !== mean.length) {
    throw new ShapeError(`normalizePixels expects NCHW images with ${mean.length} channels, got [${pixels.shape.join(', ')}]`);
  }
  return tf.tidy(() => {
    const perChannel = (v: number[]) => tf.tensor4d(v, [1, v.length, 1, 1]); // broadcasts over [B, C, H, W]
    return tf.div(tf.sub(pixels, perChannel(mean)), perChannel(std));
  });
}

// ---- model ----------------------------------------------------------------------------------

/** A loaded CLIP model: its weights (pass it to encodeImage/encodeText) and how to free them. */
export interface Clip extends ClipWeights {
  /** Training-only tensors of the checkpoint that were skipped (e.g. `position_ids`). */
  ignoredKeys: string[];
  dispose(): void;
}

export type ClipSource =
  | string
  | { configPath: string; weightsPath: string | string[]; preprocessorPath?: string }
  | { config: ClipConfig | Record<string, unknown>; tensors: StateDict };

const isParsed = (c: object): c is ClipConfig => 'vision' in c && 'text' in c && 'preprocess' in c;

/**
 * Load a CLIP model from a directory (`config.json` or `clip_config.json`, optional
 * `preprocessor_config.json`, safetensors weights), from explicit file paths, or from a config
 * and an already-read state dict. Every expected tensor and shape is checked first; a
 * ModelLoadError names the first one missing or wrong.
 *
 * @example
 * await initBackend();
 * const clip = await loadClip('models/clip-vit-base-patch32');
 * const e = encodeImage(clip, pixelValues);
 * clip.dispose();
 */
export async function loadClip(source: ClipSource): Promise<Clip> {
  let config: ClipConfig;
  let tensors: StateDict;
  let where: string;
  if (typeof source === 'string') {
    const files = source.endsWith('.json')
      ? { configPath: source, weightsPaths: findClipWeights(dirname(source)) }
      : findClipFiles(source);
    config = readClipConfig(files.configPath);
    tensors = await readClipStateDict(files.weightsPaths);
    where = files.weightsPaths.join(', ');
  } else if ('configPath' in source) {
    const weightsPaths = Array.isArray(source.weightsPath) ? source.weightsPath : [source.weightsPath];
    config = readClipConfig(source.configPath, source.preprocessorPath);
    tensors = await readClipStateDict(weightsPaths);
    where = weightsPaths.join(', ');
  } else if (source && typeof source === 'object' && 'tensors' in source) {
    config = isParsed(source.config) ? source.config : parseClipConfig(source.config);
    tensors = source.tensors;
    where = 'CLIP weights';
  } else {
    throw new ModelLoadError('loadClip needs a directory, {configPath, weightsPath} or {config, tensors}');
  }
  const ignoredKeys = checkClipStateDict(tensors, config, where);
  const weights = clipWeightsFromStateDict(tensors, config, where);
  return { ...weights, ignoredKeys, dispose: () => disposeClipWeights(weights) };
}
