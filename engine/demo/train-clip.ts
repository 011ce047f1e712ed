/**
 * Train the bundled demo CLIP (models/demo-clip) on the synthetic world, from a seed.
 *
 * The model is the real architecture (clip.ts: ViT image tower, causal text transformer,
 * pooled at the end token) at a small size, with a pruned token table read through the real
 * CLIP BPE tokenizer. Objective: CLIP's symmetric InfoNCE with a learnable temperature
 * (clamped at 100), where every caption that fits a picture counts as a positive (two doodles
 * of a cat share "a drawing of a cat"). AdamW, warmup + cosine. Pictures are drawn on the fly
 * from seeds no evaluation uses (eval-clip.ts).
 *
 *   npx tsx engine/demo/train-clip.ts [--steps N] [--batch B] [--out DIR] [--resume]
 *     [--engine onnx|tfjs] [--workers N] [--vision-lr-scale X] [--background-labels]
 *     [--contrast-twins] [--twin-curriculum STEPS] [--no-aux] [--until STEP] [--checkpoints DIR]
 *     [--patch-size P]   (an experiment: the bundled sizes with another patch, a divisor of 64)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readSafetensors, writeSafetensors } from '../io/safetensors';
import type { HostTensor, StateDict } from '../io/host-tensor';
import { encodeImage, encodeText, logitsPerImage } from '../models/clip';
import { clipWeightsFromStateDict, clipWeightsToStateDict, expectedClipShapes, tokenRowTable, TOKEN_IDS_KEY, towerTensors, weightTensors, type ClipWeights } from '../models/clip-weights';
import { OrtClipTowers, patchRows, textInputs } from '../onnx/clip-train-onnx';
import { parseClipConfig, type ClipConfig } from '../models/config';
import { ClipTokenizer } from '../models/tokenizer';
import { initBackend, tf } from '../runtime/tf';
import { clipBatch, demoTokenIds, labelPrompts, tokenRows } from './clip-data';
import { BatchPrefetcher, type BatchRequest, type TrainBatch } from './batch-worker';
import { isDataParallelWorker, runDataParallel, workerExchange, workerFailed, workerFinished, workerPayload, type GradientExchange } from './data-parallel';
import { AdamW, secondsSince, seededNormal, warmupCosine } from './train-common';

/** Seeds of the training stream; evaluation uses DEMO_EVAL_SEED, which training never draws. */
export const DEMO_TRAIN_SEED = 20240601;
export const DEMO_EVAL_SEED = 777_000_001;

export interface DemoClipSizes {
  imageSize: number;
  patchSize: number;
  visionWidth: number;
  visionLayers: number;
  visionHeads: number;
  textWidth: number;
  textLayers: number;
  textHeads: number;
  projection: number;
}

/**
 * The bundled model's sizes. Patch 16 (16 patches of a 64 px picture) rather than 8: a ViT
 * this small needs ~15k pictures before it starts to tell shapes apart at all (measured, with
 * direct shape labels), and patch 16 trains 4× more pictures per second on tfjs-wasm (58 vs
 * 15 img/s for the image tower), whose batched attention matmuls run at ~1 GFLOPS.
 * On the onnx engine (stop 18, `--patch-size 8`, the bundled recipe): patch 8 trains 47
 * pictures/s against ~104 for patch 16, and at step 1,000 reads shape 36 % against 24.5 %
 * (recall@1 of a fitting picture 53 % against 41 %); but in the same 22 minutes patch 16 reaches
 * step 2,000, where it reads shape 36.5 %, recall 64 %, doodles 57 % (patch 8: 37 %). So patch 16
 * stays while training time is the limit.
 */
export const DEMO_CLIP_SIZES: DemoClipSizes = {
  imageSize: 64, patchSize: 16, visionWidth: 128, visionLayers: 4, visionHeads: 4,
  textWidth: 96, textLayers: 3, textHeads: 4, projection: 128,
};

/** A Hugging Face CLIPConfig JSON for these sizes and a pruned vocabulary of `vocabSize` rows. */
export function demoClipConfigJson(s: DemoClipSizes, vocabSize: number): Record<string, unknown> {
  return {
    architectures: ['CLIPModel'], model_type: 'clip', projection_dim: s.projection, logit_scale_init_value: Math.log(1 / 0.07),
    text_config: {
      hidden_size: s.textWidth, intermediate_size: 4 * s.textWidth, num_attention_heads: s.textHeads, num_hidden_layers: s.textLayers,
      hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, vocab_size: vocabSize, max_position_embeddings: 77,
      bos_token_id: 49406, eos_token_id: 49407, pad_token_id: 0, pruned_vocab: true,
    },
    vision_config: {
      hidden_size: s.visionWidth, intermediate_size: 4 * s.visionWidth, num_attention_heads: s.visionHeads, num_hidden_layers: s.visionLayers,
      hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, image_size: s.imageSize, patch_size: s.patchSize, num_channels: 3,
    },
  };
}

/** CLIP's preprocessor config at this image size (OpenAI's mean and std). */
export function demoPreprocessorJson(s: DemoClipSizes): Record<string, unknown> {
  return {
    do_resize: true, size: { shortest_edge: s.imageSize }, resample: 3, do_center_crop: true, crop_size: { height: s.imageSize, width: s.imageSize },
    do_normalize: true, image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
    image_processor_type: 'CLIPImageProcessor', processor_class: 'CLIPProcessor',
  };
}

/**
 * A freshly initialised state dict, as OpenAI's `CLIP.initialize_parameters` does it
 * (normal, std width^-0.5 for attention, (2·width)^-0.5 for the MLP input, scaled down by
 * the depth for the residual projections; layer norms at 1 and 0).
 */
export function initClipStateDict(config: ClipConfig, seed: number, tokenIds: Int32Array): StateDict {
  const out: StateDict = new Map();
  let n = 0;
  for (const [key, shape] of expectedClipShapes(config)) {
    n++;
    if (key === TOKEN_IDS_KEY) {
      out.set(key, { dtype: 'int32', storedAs: 'I32', shape, data: tokenIds.slice() });
      continue;
    }
    const size = shape.reduce((a, b) => a * b, 1);
    const tower = key.startsWith('vision') || key === 'visual_projection.weight' ? config.vision : config.text;
    const W = tower.hiddenSize;
    const L = tower.numHiddenLayers;
    const normal = (std: number): HostTensor => ({ dtype: 'float32', storedAs: 'F32', shape, data: seededNormal(size, std, seed * 1000 + n) });
    const constant = (v: number): HostTensor => ({ dtype: 'float32', storedAs: 'F32', shape, data: new Float32Array(size).fill(v) });
    let t: HostTensor;
    if (key === 'logit_scale') t = constant(Math.log(1 / 0.07));
    else if (/(layer_norm\d|layrnorm|layernorm|final_layer_norm)\.weight$/.test(key)) t = constant(1);
    else if (key.endsWith('.bias')) t = constant(0);
    else if (key.endsWith('token_embedding.weight')) t = normal(0.02);
    else if (key === 'text_model.embeddings.position_embedding.weight') t = normal(0.01);
    else if (key.startsWith('vision_model.embeddings.') && !key.includes('patch')) t = normal(W ** -0.5);
    else if (key.endsWith('patch_embedding.weight')) t = normal((shape[1]! * shape[2]! * shape[3]!) ** -0.5);
    else if (/(out_proj|fc2)\.weight$/.test(key)) t = normal(W ** -0.5 * (2 * L) ** -0.5);
    else if (key.endsWith('fc1.weight')) t = normal((2 * W) ** -0.5);
    else t = normal(W ** -0.5); // q, k, v and the projections
    out.set(key, t);
  }
  return out;
}

/**
 * Symmetric InfoNCE over a batch: image→text and text→image cross-entropy, each against the
 * uniform distribution over that row's (column's) fitting captions (pictures).
 */
export function clipLoss(w: ClipWeights, pixels: tf.Tensor4D, ids: tf.Tensor2D, matches: tf.Tensor2D, labels?: LabelTerm, heads?: AuxHeads, twins?: TwinTerm): tf.Scalar {
  return tf.tidy(() => {
    const B = pixels.shape[0];
    // The twins go through the image tower in the same batch: [B + K, 3, S, S] -> [B + K, P]
    const all = twins ? encodeImage(w, tf.concat([pixels, twins.pixels], 0)) : encodeImage(w, pixels);
    return embeddingLoss(w, {
      images: twins ? tf.slice(all, [0, 0], [B, -1]) : all,
      ...(twins ? { twinImages: tf.slice(all, [B, 0], [-1, -1]) } : {}),
      texts: encodeText(w, ids),
      ...(labels ? { labelTexts: encodeText(w, labels.ids) } : {}),
    }, matches, labels, heads, twins);
  });
}

/** The embeddings clipLoss scores: the batch's pictures, their twins, its captions and the label captions. */
export interface BatchEmbeddings {
  images: tf.Tensor2D;
  twinImages?: tf.Tensor2D;
  texts: tf.Tensor2D;
  labelTexts?: tf.Tensor2D;
}

/**
 * clipLoss from the towers' outputs: the trainer on onnxruntime (--engine onnx) computes the
 * embeddings there and takes this loss's gradient w.r.t. them in tfjs.
 */
export function embeddingLoss(w: ClipWeights, e: BatchEmbeddings, matches: tf.Tensor2D, labels?: LabelTerm, heads?: AuxHeads, twins?: TwinTerm): tf.Scalar {
  return tf.tidy(() => {
    const twinTerm = twins && heads && e.twinImages ? twinLoss(e.images, e.twinImages, twins, heads) : undefined;
    const aux0 = labels && heads ? auxLoss(e.images, labels, heads) : undefined;
    const aux = aux0 && twinTerm ? tf.add(aux0, twinTerm) as tf.Scalar : aux0 ?? twinTerm;
    const logits = logitsPerImage(w, e.images, e.texts); // [images, texts]
    const perImage = tf.div(matches, tf.sum(matches, 1, true));
    const perText = tf.div(matches, tf.sum(matches, 0, true));
    const i2t = tf.neg(tf.mean(tf.sum(tf.mul(perImage, tf.logSoftmax(logits, 1)), 1)));
    const t2i = tf.neg(tf.mean(tf.sum(tf.mul(perText, tf.logSoftmax(tf.transpose(logits), 1).transpose()), 0)));
    const contrastive = tf.div(tf.add(i2t, t2i), 2) as tf.Scalar;
    const withLabels = labels && e.labelTexts ? tf.add(contrastive, labelLoss(w, e.images, e.labelTexts, labels)) as tf.Scalar : contrastive;
    return aux ? tf.add(withLabels, aux) as tf.Scalar : withLabels;
  });
}

/**
 * Auxiliary linear heads on the image embedding, one per label group (training only; not
 * saved). They break a saddle the label term alone sits in: while the image tower has no
 * shape features, the loss is lowest when the text tower gives "a circle" and "a star" the
 * same embedding, and once it does, the label term sends the image tower no shape gradient
 * at all (seen: cosine 0.9995 between the two after 200 steps, shape accuracy at chance).
 * A random head keeps distinct class directions, so the image tower learns the features;
 * the contrastive and label terms then teach the text tower the words.
 */
export interface AuxHeads {
  /** One [projection, group size] matrix per label group, in labelPrompts' group order. */
  weights: tf.Variable[];
  /**
   * With contrast twins: [projection, projection], from identity. A picture's embedding through
   * it is taught to match its twin's, so the embedding must carry the twin's shape features
   * and may keep its colours too (without it, matching would erase them).
   */
  predictor?: tf.Variable;
}

/**
 * The twin's weight in a scene's picture at the start of a twin curriculum. Not 1: the captions
 * name colours from the first step, so the pictures keep some.
 */
export const TWIN_BLEND_START = 0.75;

/** Cosine-classifier scale of the auxiliary heads. */
export const AUX_SCALE = 10;

export function createAuxHeads(projection: number, groupSizes: number[], seed: number, opts: { predictor?: boolean } = {}): AuxHeads {
  const variable = (init: tf.Tensor2D) => {
    const v = tf.variable(init, true); // the variable keeps its own handle on the data
    init.dispose();
    return v;
  };
  return {
    weights: groupSizes.map((k, i) => variable(tf.tensor2d(seededNormal(projection * k, projection ** -0.5, seed * 7919 + i), [projection, k]))),
    ...(opts.predictor ? { predictor: variable(tf.eye(projection) as tf.Tensor2D) } : {}),
  };
}

/** The contrast twins of a batch (ClipBatch.twins) as tensors. */
export interface TwinTerm {
  /** NCHW [K, 3, S, S] */
  pixels: tf.Tensor4D;
  /** [K, B]: row k is one-hot at the picture twin k was made from. */
  of: tf.Tensor2D;
  /** [K, shapes]: one-hot shape of each twin. */
  shapes: tf.Tensor2D;
}

/** The identity with a zero gradient: the twin's embedding is a target, not trained toward the picture's. */
const stopGradient = tf.customGrad((x) => ({ value: tf.clone(x as tf.Tensor), gradFunc: (dy) => tf.zerosLike(dy as tf.Tensor) }));

/**
 * The contrast-twin term: the shape head's cross-entropy on each twin, plus the squared distance
 * between the unit embedding of its picture, through the predictor, and the twin's (held fixed),
 * weighted by `pull` (1 in the trainer; probe-shape.ts --pull found 10 slower).
 */
export function twinLoss(images: tf.Tensor2D, twinImages: tf.Tensor2D, twins: TwinTerm, heads: AuxHeads, pull = 1): tf.Scalar {
  const unit = (t: tf.Tensor2D) => tf.div(t, tf.norm(t, 2, 1, true)) as tf.Tensor2D;
  const twinUnit = unit(twinImages); // [K, P]
  const logits = tf.mul(tf.matMul(twinUnit, heads.weights[0]!), AUX_SCALE); // shape is group 0 (labelPrompts)
  const ce = tf.neg(tf.mean(tf.sum(tf.mul(twins.shapes, tf.logSoftmax(logits, 1)), 1)));
  const pictures = tf.matMul(twins.of, unit(images)); // [K, B]·[B, P] -> [K, P] (one-hot rows: no gather gradient needed)
  const predicted = unit(tf.matMul(pictures, heads.predictor!));
  const distance = tf.mean(tf.sum(tf.square(tf.sub(predicted, stopGradient(twinUnit) as tf.Tensor2D)), 1));
  return tf.add(ce, tf.mul(distance, pull)) as tf.Scalar;
}

function auxLoss(images: tf.Tensor2D, labels: LabelTerm, heads: AuxHeads): tf.Scalar {
  const unit = tf.div(images, tf.norm(images, 2, 1, true)); // [B, P]
  let total: tf.Tensor = tf.scalar(0);
  labels.groups.forEach((g, i) => {
    const logits = tf.mul(tf.matMul(unit, heads.weights[i]!), AUX_SCALE); // [B, K]
    const picked = tf.sum(tf.mul(g.targets, tf.logSoftmax(logits, 1)));
    total = tf.add(total, tf.div(tf.neg(picked), tf.maximum(tf.sum(g.targets), 1)));
  });
  return total as tf.Scalar;
}

/** The label captions of one batch (labelPrompts) and which one fits each picture per group. */
export interface LabelTerm {
  /** Token ids of every label caption [L, T]. */
  ids: tf.Tensor2D;
  groups: { start: number; size: number; targets: tf.Tensor2D }[];
}

/**
 * Image→text cross-entropy of each picture against every label caption of a group (all eight
 * shapes, all eight colours, all 28 subjects), for the pictures one of them fits: the batch's
 * own captions rarely put "a circle" next to "a star", these do, every step.
 */
function labelLoss(w: ClipWeights, images: tf.Tensor2D, labelTexts: tf.Tensor2D, labels: LabelTerm): tf.Scalar {
  const logits = logitsPerImage(w, images, labelTexts); // [B, L]
  let total: tf.Tensor = tf.scalar(0);
  for (const g of labels.groups) {
    const part = tf.slice(logits, [0, g.start], [-1, g.size]);
    const picked = tf.sum(tf.mul(g.targets, tf.logSoftmax(part, 1))); // targets: one-hot rows, zero rows for no fit
    total = tf.add(total, tf.div(tf.neg(picked), tf.maximum(tf.sum(g.targets), 1)));
  }
  return total as tf.Scalar;
}

export interface TrainOptions {
  steps: number;
  batchSize: number;
  peakLr: number;
  warmup: number;
  weightDecay: number;
  seed: number;
  sizes: DemoClipSizes;
  /** Where checkpoints go (model + optimiser state); resumed from when present and `resume`. */
  checkpointDir?: string;
  checkpointEvery?: number;
  resume?: boolean;
  log?: (line: string) => void;
  /** Called after each step with its loss (read back every `readEvery` steps only). */
  onStep?: (step: number, loss: number) => void;
  readEvery?: number;
  /** Train on batch 0 every step (tests: the loss must then fall). */
  fixedBatch?: boolean;
  /** From this step on, add the label-caption term (labelLoss) and draw batches with labelMix. */
  labelsFrom?: number;
  /** With the label term, also train auxiliary heads (AuxHeads) on the image embedding. */
  auxHeads?: boolean;
  /** Add the background group ("a shape on a gray background") to the label term and heads. */
  backgroundLabels?: boolean;
  /** Learning-rate multiplier of the image tower (1: the same as the text tower). */
  visionLrScale?: number;
  /**
   * With the label term and auxiliary heads, also encode the contrast twin (contrastTwin) of
   * every single-shape scene: the shape head learns from the twins, and each picture's
   * embedding is taught to carry its twin's (twinLoss).
   */
  contrastTwins?: boolean;
  /**
   * A curriculum over the first `twinCurriculum` steps: every scene's picture is blended with
   * its contrast twin, the twin's weight falling linearly from TWIN_BLEND_START to 0. The tower
   * learns shape from the twins several times faster (probe-shape.ts), and the blend hands the
   * features over to coloured pictures gradually rather than at a switch. Blending in the
   * inverted twin (white on black) instead was worse at step 1,000 of the bundled recipe (stop
   * 15): zero-shot shape 17 % against 28.5 %, doodles 29 % against 35 %, the shape head 18 %
   * against 35 %; perhaps because the twin term's twins stay dark on white, so the tower sees
   * both polarities.
   */
  twinCurriculum?: number;
  /**
   * Where the towers run: `tfjs` (forward and backward on the tfjs backend), or `onnx`: both
   * towers forward and backward on onnxruntime (clip-train-onnx.ts), only the loss on the
   * embeddings in tfjs. The same maths (gradients agree to ~2e-6 relative); onnx is several
   * times faster on a CPU. One process: onnxruntime uses every core itself. Default here tfjs;
   * the command line's default is onnx.
   */
  engine?: TrainEngine;
  /** Stop after this step (checkpointing there) while the schedule still runs to `steps`. */
  until?: number;
  /**
   * Data-parallel replica (data-parallel.ts): this replica draws shard `shard` of every batch
   * (batchSize / shards pictures, its own contrastive batch) and steps with the mean gradient
   * of all shards. Only shard 0 logs and writes checkpoints.
   */
  exchange?: GradientExchange;
}

export type TrainEngine = 'tfjs' | 'onnx';
const ONNX_ONE_PROCESS = 'The onnx engine trains in one process (onnxruntime uses every core); use --workers 1.';
export const TRAIN_ENGINES: readonly TrainEngine[] = ['tfjs', 'onnx'];

export interface TrainedClip {
  weights: ClipWeights;
  tokenIds: Int32Array;
  configJson: Record<string, unknown>;
  losses: { step: number; loss: number }[];
  seconds: number;
  steps: number;
  /** The step this run started at (0, or where it resumed). */
  startedAt: number;
  /** Seconds trained before this run (from the checkpoint it resumed). */
  secondsBefore: number;
  /** With the onnx engine: the execution provider the towers ran on. */
  ortProvider?: string;
}

function batchTensors(b: TrainBatch, batchSize: number, imageSize: number) {
  return {
    pixels: tf.tensor4d(b.pixels, [batchSize, 3, imageSize, imageSize]),
    ids: tf.tensor2d(b.ids, [batchSize, b.tokens], 'int32'),
    matches: tf.tensor2d(b.matches, [batchSize, batchSize]),
  };
}

const MAX_LOGIT_SCALE = Math.log(100);

function labelTensors(b: TrainBatch, prompts: ReturnType<typeof labelPrompts> & { rows: { ids: Int32Array; tokens: number } }): LabelTerm {
  const B = b.captions.length;
  return {
    ids: tf.tensor2d(prompts.rows.ids, [prompts.texts.length, prompts.rows.tokens], 'int32'),
    groups: prompts.groups.map((g) => {
      const oneHot = new Float32Array(B * g.size);
      b.targets[g.name].forEach((k, i) => { if (k >= 0) oneHot[i * g.size + k] = 1; });
      return { start: g.start, size: g.size, targets: tf.tensor2d(oneHot, [B, g.size]) };
    }),
  };
}

function twinTensors(b: TrainBatch, batchSize: number, imageSize: number, shapes: number): TwinTerm {
  const of = b.twins!.of;
  const K = of.length;
  const pick = new Float32Array(K * batchSize);
  const oneHot = new Float32Array(K * shapes);
  of.forEach((i, k) => {
    pick[k * batchSize + i] = 1;
    oneHot[k * shapes + b.targets.shape[i]!] = 1;
  });
  return {
    pixels: tf.tensor4d(b.twins!.pixels, [K, 3, imageSize, imageSize]),
    of: tf.tensor2d(pick, [K, batchSize]),
    shapes: tf.tensor2d(oneHot, [K, shapes]),
  };
}

/**
 * Train from a seed (or resume a checkpoint) and return trainable weights; the caller saves
 * them (saveDemoClip) and disposes them.
 */
export async function trainClip(opts: TrainOptions): Promise<TrainedClip> {
  await initBackend();
  const shards = opts.exchange?.shards ?? 1;
  const shard = opts.exchange?.shard ?? 0;
  if (opts.batchSize % shards !== 0) throw new RangeError(`The batch size (${opts.batchSize}) must divide evenly among ${shards} workers.`);
  if (opts.contrastTwins && !opts.auxHeads) throw new RangeError('Contrast twins (--contrast-twins) train through the auxiliary heads; they cannot be used with --no-aux.');
  const shardBatch = opts.batchSize / shards;
  const lead = shard === 0; // logs and checkpoints
  const log = lead && opts.log ? opts.log : () => {};
  const tok = await ClipTokenizer.load();
  const tokenIds = demoTokenIds(tok);
  const configJson = demoClipConfigJson(opts.sizes, tokenIds.length);
  const config = parseClipConfig(configJson, demoPreprocessorJson(opts.sizes));
  const ckptModel = opts.checkpointDir && join(opts.checkpointDir, 'model.safetensors'); // with its config: loadClip reads the directory
  const ckptState = opts.checkpointDir && join(opts.checkpointDir, 'checkpoint.json');
  const resuming = !!(opts.resume && ckptModel && existsSync(ckptModel) && ckptState && existsSync(ckptState));
  const state = resuming ? readSafetensors(ckptModel!).tensors : initClipStateDict(config, opts.seed, tokenIds);
  const weights = clipWeightsFromStateDict(state, config, 'demo CLIP', { trainable: true });
  const vars = weightTensors(weights).filter((t): t is tf.Variable => t instanceof tf.Variable);
  // Decay the matrices of the linears, not gains, biases, embeddings or the temperature (as OpenCLIP).
  const decay = new Set<tf.Variable>();
  const visit = (o: unknown): void => {
    if (o && typeof o === 'object' && 'w' in o && (o as { w: unknown }).w instanceof tf.Variable) decay.add((o as { w: tf.Variable }).w);
    if (Array.isArray(o)) o.forEach(visit);
    else if (o && typeof o === 'object' && !(o instanceof tf.Tensor)) Object.values(o).forEach(visit);
  };
  visit(weights.vision.layers); visit(weights.text.layers);
  visit(weights.vision.projection); visit(weights.text.projection); visit(weights.vision.patch);
  const lrScale = new Map<tf.Variable, number>();
  if ((opts.visionLrScale ?? 1) !== 1) {
    const tower = (o: unknown): void => {
      if (o instanceof tf.Variable) lrScale.set(o, opts.visionLrScale!);
      else if (Array.isArray(o)) o.forEach(tower);
      else if (o && typeof o === 'object' && !(o instanceof tf.Tensor)) Object.values(o).forEach(tower);
    };
    tower(weights.vision);
  }
  const opt = new AdamW(vars, decay, { weightDecay: opts.weightDecay, lrScale });
  if (opts.engine === 'onnx' && shards > 1) throw new RangeError(ONNX_ONE_PROCESS);
  const towers = opts.engine === 'onnx' ? await OrtClipTowers.create(config, {
    vision: new Map([...towerTensors(weights, 'vision')].map(([k, t]) => [k, t.shape])),
    text: new Map([...towerTensors(weights, 'text')].map(([k, t]) => [k, t.shape])),
  }) : undefined;
  if (towers) log(`both towers on onnxruntime (${towers.provider}), the loss on tfjs ${tf.getBackend()}`);
  const rowOf = tokenRowTable(tokenIds);
  const losses: { step: number; loss: number }[] = [];
  let start = 0;
  let secondsBefore = 0;
  if (resuming) {
    const saved = JSON.parse(readFileSync(ckptState!, 'utf8')) as { step: number; seconds: number; losses: typeof losses };
    const moments = readSafetensors(join(opts.checkpointDir!, 'optimizer.safetensors')).tensors;
    const m = vars.map((_, i) => moments.get(`m.${i}`)!.data as Float32Array);
    const v = vars.map((_, i) => moments.get(`v.${i}`)!.data as Float32Array);
    opt.restore({ t: saved.step, m, v });
    start = saved.step;
    secondsBefore = saved.seconds;
    losses.push(...saved.losses);
    log(`resumed at step ${start} (${secondsBefore.toFixed(0)} s trained)`);
  }
  const t0 = performance.now();
  const readEvery = opts.readEvery ?? 10;
  const checkpoint = async (step: number) => {
    if (!opts.checkpointDir || !lead) return;
    mkdirSync(opts.checkpointDir, { recursive: true });
    writeFileSync(join(opts.checkpointDir, 'config.json'), JSON.stringify(configJson, null, 2));
    writeFileSync(join(opts.checkpointDir, 'preprocessor_config.json'), JSON.stringify(demoPreprocessorJson(opts.sizes), null, 2));
    writeSafetensors(ckptModel!, await clipWeightsToStateDict(weights, tokenIds));
    const s = await opt.state();
    const moments: [string, HostTensor][] = [];
    vars.forEach((x, i) => {
      moments.push([`m.${i}`, { dtype: 'float32', storedAs: 'F32', shape: x.shape, data: s.m[i]! }]);
      moments.push([`v.${i}`, { dtype: 'float32', storedAs: 'F32', shape: x.shape, data: s.v[i]! }]);
    });
    writeSafetensors(join(opts.checkpointDir, 'optimizer.safetensors'), moments);
    if (heads) writeSafetensors(auxPath!, await Promise.all(headVars.map(async (h, i): Promise<[string, HostTensor]> =>
      [headKey(i), { dtype: 'float32', storedAs: 'F32', shape: h.shape, data: (await h.data()) as Float32Array }])));
    writeFileSync(ckptState!, JSON.stringify({ step, seconds: secondsBefore + secondsSince(t0), losses }));
  };
  const S = opts.sizes.imageSize;
  const labelSet = labelPrompts({ background: opts.backgroundLabels ?? false });
  const prompts = { ...labelSet, rows: tokenRows(tok, labelSet.texts) };
  // Auxiliary heads: their own optimiser (no decay) and file, so a checkpoint without them resumes.
  const auxPath = opts.checkpointDir && join(opts.checkpointDir, 'aux-heads.safetensors');
  const heads = opts.auxHeads ? createAuxHeads(opts.sizes.projection, labelSet.groups.map((g) => g.size), opts.seed, { predictor: opts.contrastTwins ?? false }) : undefined;
  const headVars = heads ? [...heads.weights, ...(heads.predictor ? [heads.predictor] : [])] : [];
  const headKey = (i: number) => (i < heads!.weights.length ? `head.${i}` : 'predictor');
  if (heads && resuming && auxPath && existsSync(auxPath)) {
    const saved = readSafetensors(auxPath).tensors;
    headVars.forEach((h, i) => {
      const t = saved.get(headKey(i));
      if (t) tf.tidy(() => h.assign(tf.tensor2d(t.data as Float32Array, h.shape as [number, number])));
    });
  }
  const headOpt = heads ? new AdamW(headVars, new Set(), { weightDecay: 0 }) : undefined;
  const stopAt = Math.min(opts.steps, opts.until ?? opts.steps);
  /** Batch `step`: one worker draws batch `step` of the stream; several, shard k of step s is batch s·shards + k at the shard's size. */
  const requestFor = (step: number): BatchRequest => {
    const withLabels = opts.labelsFrom !== undefined && step >= opts.labelsFrom;
    return {
      seed: opts.seed, index: opts.fixedBatch ? 0 : step * shards + shard, batchSize: shardBatch, labelMix: withLabels,
      contrastTwins: withLabels && !!heads?.predictor,
      twinBlend: opts.twinCurriculum ? TWIN_BLEND_START * Math.max(0, 1 - step / opts.twinCurriculum) : 0,
    };
  };
  // onnxruntime blocks the main thread while it runs: draw the next batch in a worker meanwhile.
  const prefetch = towers ? await BatchPrefetcher.start(config.preprocess) : undefined;
  try {
    for (let step = start; step < stopAt; step++) {
      const withLabels = opts.labelsFrom !== undefined && step >= opts.labelsFrom;
      const twinsNow = withLabels && !!heads?.predictor;
      let batch: TrainBatch;
      if (prefetch) {
        if (step === start) prefetch.request(step, requestFor(step));
        if (step + 1 < stopAt) prefetch.request(step + 1, requestFor(step + 1));
        batch = await prefetch.take(step);
      } else {
        const { seed, index, ...request } = requestFor(step);
        batch = clipBatch(seed, index, { ...request, pre: config.preprocess, tok });
      }
      const lr = warmupCosine(step, opts.peakLr, opts.warmup, opts.steps);
      const t = batchTensors(batch, shardBatch, S);
      const labels = withLabels ? labelTensors(batch, prompts) : undefined;
      const withHeads = labels ? heads : undefined;
      const trained = withHeads ? [...vars, ...headVars] : vars;
      const twins = twinsNow && batch.twins!.of.length > 0 ? twinTensors(batch, shardBatch, S, labelSet.groups[0]!.size) : undefined;
      const { value, grads: own } = towers
        ? await onnxGradients(towers, weights, { batch, t, labels, labelRows: prompts.rows, heads: withHeads, headVars: withHeads ? headVars : [], twins, rowOf })
        : tf.variableGrads(() => clipLoss(weights, t.pixels, t.ids, t.matches, labels, withHeads, twins), trained);
      const grads = opts.exchange ? await averaged(opts.exchange, step, trained, own) : own;
      opt.step(grads, lr);
      if (withHeads) headOpt!.step(grads, lr);
      tf.tidy(() => (weights.logitScale as unknown as tf.Variable).assign(tf.minimum(weights.logitScale, MAX_LOGIT_SCALE)));
      tf.dispose([t.pixels, t.ids, t.matches, ...Object.values(grads)]);
      if (grads !== own) tf.dispose(Object.values(own));
      if (labels) tf.dispose([labels.ids, ...labels.groups.map((g) => g.targets)]);
      if (twins) tf.dispose([twins.pixels, twins.of, twins.shapes]);
      if ((step + 1) % readEvery === 0 || step === start || step + 1 === stopAt) {
        const loss = (await value.data())[0]!;
        losses.push({ step: step + 1, loss });
        opts.onStep?.(step + 1, loss);
        const elapsed = secondsSince(t0);
        const scale = Math.exp((await weights.logitScale.data())[0]!);
        log(`step ${step + 1}/${opts.steps} loss ${loss.toFixed(4)} lr ${lr.toExponential(2)} scale ${scale.toFixed(1)} ` +
          `${((step + 1 - start) * opts.batchSize / elapsed).toFixed(1)} img/s ${elapsed.toFixed(0)} s tensors ${tf.memory().numTensors}${shards > 1 ? ` (${shards} workers; loss of shard 0)` : ''}`);
        if (!Number.isFinite(loss)) throw new Error(`the loss is ${loss} at step ${step + 1}`);
      }
      value.dispose();
      if (opts.checkpointEvery && ((step + 1) % opts.checkpointEvery === 0 || step + 1 === stopAt)) await checkpoint(step + 1);
    }
  } finally {
    // ORT's sessions and the batch worker, also when a step throws (a worker would keep the process alive)
    await prefetch?.close();
    await towers?.release();
  }
  opt.dispose();
  headOpt?.dispose();
  tf.dispose(headVars);
  return { weights, tokenIds, configJson, losses, seconds: secondsBefore + secondsSince(t0), steps: stopAt, startedAt: start, secondsBefore, ...(towers ? { ortProvider: towers.provider } : {}) };
}

/**
 * clipLoss and the gradients of every weight, with the towers on onnxruntime: their embeddings
 * from the forward graphs, the loss and its gradient w.r.t. the embeddings (and the
 * temperature and heads) in tfjs, then the weights' gradients from the backward graphs.
 */
async function onnxGradients(towers: OrtClipTowers, weights: ClipWeights, s: {
  batch: TrainBatch; t: ReturnType<typeof batchTensors>; labels?: LabelTerm; labelRows: { ids: Int32Array; tokens: number };
  heads?: AuxHeads; headVars: tf.Variable[]; twins?: TwinTerm; rowOf: Int32Array;
}): Promise<{ value: tf.Scalar; grads: tf.NamedTensorMap }> {
  const config = weights.config;
  const B = s.batch.captions.length;
  const K = s.twins ? s.batch.twins!.of.length : 0;
  const L = s.labels ? s.labelRows.ids.length / s.labelRows.tokens : 0;
  const P = config.projectionDim;
  // pictures then twins: [B + K, 3, S, S] -> patch rows
  const pixels = K ? new Float32Array(s.batch.pixels.length + s.batch.twins!.pixels.length) : s.batch.pixels;
  if (K) { pixels.set(s.batch.pixels); pixels.set(s.batch.twins!.pixels, s.batch.pixels.length); }
  const images = { n: B + K, patches: patchRows(pixels, B + K, config.vision) };
  // Captions and label captions go through the text tower separately, each at its own length
  // (the label captions are short: one padded batch would be a third padding).
  const vocab = weights.text.tokenEmbedding.shape[0];
  const textBatch = (ids: Int32Array, tokens: number) => ({ n: ids.length / tokens, t: tokens, ...textInputs(ids, ids.length / tokens, tokens, s.rowOf, vocab, config.text.maxPositionEmbeddings) });
  const texts = [textBatch(s.batch.ids, s.batch.tokens), ...(L ? [textBatch(s.labelRows.ids, s.labelRows.tokens)] : [])];
  const vision = towerTensors(weights, 'vision');
  const text = towerTensors(weights, 'text');
  const values = (m: Map<string, tf.Tensor>) => new Map([...m].map(([k, x]) => [k, x.dataSync() as Float32Array]));
  const [visionValues, textValues] = [values(vision), values(text)];
  const variable = (data: Float32Array) => tf.tidy(() => tf.variable(tf.tensor2d(data, [data.length / P, P]), true)); // the variable keeps its own handle
  const embeds = [variable(await towers.embed('vision', visionValues, images))];
  for (const x of texts) embeds.push(variable(await towers.embed('text', textValues, x)));
  try {
    const [imageEmbeds, captionEmbeds, labelEmbeds] = embeds;
    const { value, grads } = tf.variableGrads(() => embeddingLoss(weights, {
      images: tf.slice(imageEmbeds!, [0, 0], [B, -1]),
      ...(K ? { twinImages: tf.slice(imageEmbeds!, [B, 0], [-1, -1]) } : {}),
      texts: captionEmbeds!,
      ...(labelEmbeds ? { labelTexts: labelEmbeds } : {}),
    }, s.t.matches, s.labels, s.heads, s.twins), [...embeds, weights.logitScale as tf.Variable, ...s.headVars]);
    const dEmbeds = embeds.map((e) => {
      const d = grads[e.name]!;
      delete grads[e.name];
      const data = d.dataSync() as Float32Array;
      d.dispose();
      return data;
    });
    // Σ over the batches each tower ran (the text tower: captions, then label captions)
    const sum = (parts: Map<string, Float32Array>[]) => {
      const [first, ...rest] = parts;
      for (const g of rest) for (const [path, x] of g) {
        const acc = first!.get(path)!;
        for (let i = 0; i < x.length; i++) acc[i] += x[i]!;
      }
      return first!;
    };
    const visionGrads = await towers.gradients('vision', visionValues, images, dEmbeds[0]!);
    const textGrads: Map<string, Float32Array>[] = [];
    for (let i = 0; i < texts.length; i++) textGrads.push(await towers.gradients('text', textValues, texts[i]!, dEmbeds[i + 1]!));
    for (const [tensors, g] of [[vision, visionGrads], [text, sum(textGrads)]] as const) {
      for (const [path, x] of tensors) grads[(x as tf.Variable).name] = tf.tensor(g.get(path)!, x.shape);
    }
    return { value, grads };
  } finally {
    tf.dispose(embeds);
  }
}

/**
 * The mean of every replica's gradients (GradientExchange), as a variableGrads-style map. The
 * order of `vars` is the agreed order: every replica builds the same model.
 */
async function averaged(exchange: GradientExchange, step: number, vars: tf.Variable[], grads: tf.NamedTensorMap): Promise<tf.NamedTensorMap> {
  const arrays = await Promise.all(vars.map(async (v) => {
    const g = grads[v.name];
    return g ? ((await g.data()) as Float32Array).slice() : new Float32Array(v.size);
  }));
  const mean = await exchange.average(step, arrays);
  const out: tf.NamedTensorMap = {};
  vars.forEach((v, i) => { if (grads[v.name]) out[v.name] = tf.tensor(mean[i]!, v.shape); });
  return out;
}

/** Write config.json, preprocessor_config.json and model.safetensors (float16) into `dir`. */
export async function saveDemoClip(dir: string, trained: TrainedClip, sizes: DemoClipSizes): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(trained.configJson, null, 2)}\n`);
  writeFileSync(join(dir, 'preprocessor_config.json'), `${JSON.stringify(demoPreprocessorJson(sizes), null, 2)}\n`);
  writeSafetensors(join(dir, 'model.safetensors'), await clipWeightsToStateDict(trained.weights, trained.tokenIds), {
    float16: true, metadata: { format: 'pt', trained_by: 'engine/demo/train-clip.ts' },
  });
}

const argOf = (args: readonly string[], name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};

/**
 * Batches of 64 (32 per worker). Smaller batches learned more per picture in the shape probe
 * (probe-shape.ts: doodles 40 % against 29 % after 25,600 pictures at batch 16), but not in this
 * trainer: the bundled recipe at batch 32 (6,000 steps, curriculum 2,400, same seed) read, after
 * 64,000 pictures, shape 26.0 % (batch 64: 28.5), colour 78 % (82), doodles 30.5 % (35), SVG
 * shape 47 % (46.5), recall@1 32/47 % (29/41), heads 32/82/40 % (35/85/44), and it ran at 33
 * pictures/s against 43: with two workers a step costs ~0.45 s beyond its pictures (one
 * worker: ~0.13 s), so halving the batch adds steps that cost more than they teach.
 */
export const DEFAULT_TRAIN: Omit<TrainOptions, 'sizes'> & { workers: number } = {
  steps: 2000, batchSize: 64, peakLr: 1e-3, warmup: 100, weightDecay: 0.1, seed: DEMO_TRAIN_SEED, labelsFrom: 0, auxHeads: true,
  // With the tfjs engine: part of the recipe (each worker draws its own shard of every batch), whatever the core count.
  workers: 2,
};

/**
 * The engine a command line asks for: `--engine`, else onnx, unless `--workers` asks for
 * several (data-parallel workers are how tfjs uses more than one core).
 */
function engineOf(args: readonly string[]): TrainEngine {
  const engine = argOf(args, 'engine') ?? (Number(argOf(args, 'workers') ?? 1) > 1 ? 'tfjs' : 'onnx');
  if (!(TRAIN_ENGINES as readonly string[]).includes(engine)) throw new RangeError(`--engine must be one of ${TRAIN_ENGINES.join(', ')}, got ${engine}`);
  return engine as TrainEngine;
}

/**
 * `npm run train:demo` (through train.ts) and `npx tsx engine/demo/train-clip.ts`.
 * `--engine onnx` (the default) trains in one process with both towers on onnxruntime;
 * `--engine tfjs --workers N` (default 2) trains N data-parallel tfjs replicas in worker threads
 * (data-parallel.ts). `--workers` above 1 alone implies tfjs.
 */
export async function main(args: readonly string[] = process.argv.slice(2)): Promise<TrainSummary[]> {
  if (isClipWorker()) {
    try {
      workerFinished(await train(workerPayload<{ args: string[] }>().args, workerExchange()));
    } catch (err) {
      workerFailed(err);
    }
    return [];
  }
  // onnxruntime spreads one process over every core; tfjs-wasm needs a worker per core.
  const engine = engineOf(args);
  const workers = Number(argOf(args, 'workers') ?? (engine === 'onnx' ? 1 : DEFAULT_TRAIN.workers));
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new RangeError(`--workers must be an integer 1–64, got ${argOf(args, 'workers')}`);
  if (engine === 'onnx' && workers > 1) throw new RangeError(ONNX_ONE_PROCESS);
  if (workers === 1) return [await train(args)];
  console.log(`training with ${workers} data-parallel workers (worker threads)`);
  return (await runDataParallel(new URL(import.meta.url), workers, { job: 'demo-clip', args: [...args] })) as TrainSummary[];
}

/** What each replica reports at the end: where it stopped and a checksum of its weights (replicas must agree). */
export interface TrainSummary { steps: number; checksum: number; lastLoss: number | undefined }

const isClipWorker = () => isDataParallelWorker() && workerPayload<{ job?: string }>().job === 'demo-clip';

async function train(args: readonly string[], exchange?: GradientExchange): Promise<TrainSummary> {
  const arg = (name: string) => argOf(args, name);
  const out = resolve(arg('out') ?? 'models/demo-clip');
  const steps = Number(arg('steps') ?? DEFAULT_TRAIN.steps);
  const batchSize = Number(arg('batch') ?? DEFAULT_TRAIN.batchSize);
  const checkpointDir = resolve(arg('checkpoints') ?? 'scratch/demo-clip-checkpoint');
  const until = arg('until') === undefined ? undefined : Number(arg('until'));
  const auxHeads = !args.includes('--no-aux') && DEFAULT_TRAIN.auxHeads;
  const backgroundLabels = args.includes('--background-labels');
  const contrastTwins = args.includes('--contrast-twins');
  const twinCurriculum = Number(arg('twin-curriculum') ?? 0);
  if (!Number.isInteger(twinCurriculum) || twinCurriculum < 0 || twinCurriculum > steps) throw new RangeError(`--twin-curriculum must be a whole number of steps from 0 to --steps (${steps}), got ${arg('twin-curriculum')}`);
  const visionLrScale = Number(arg('vision-lr-scale') ?? 1);
  if (!(visionLrScale > 0 && visionLrScale <= 10)) throw new RangeError(`--vision-lr-scale must be a number in (0, 10], got ${arg('vision-lr-scale')}`);
  const engine = engineOf(args);
  const sizes = sizesOf(args);
  const lead = (exchange?.shard ?? 0) === 0;
  const trained = await trainClip({
    engine,
    ...DEFAULT_TRAIN, steps, batchSize, sizes, checkpointDir, checkpointEvery: 100, auxHeads, backgroundLabels, visionLrScale, contrastTwins, twinCurriculum,
    resume: args.includes('--resume'), log: (l) => console.log(l), ...(until !== undefined ? { until } : {}), ...(exchange ? { exchange } : {}),
  });
  let checksum = 0;
  for (const t of weightTensors(trained.weights)) if (t.dtype === 'float32') for (const v of await t.data()) checksum += v;
  const summary: TrainSummary = { steps: trained.steps, checksum, lastLoss: trained.losses.at(-1)?.loss };
  if (!lead) {
    disposeAll(trained.weights);
    return summary;
  }
  if (trained.steps < steps) {
    // A first phase (--until): the checkpoint holds it; the next run resumes from there.
    console.log(`stopped at step ${trained.steps} of ${steps}; checkpoint in ${checkpointDir} (resume with --resume)`);
    disposeAll(trained.weights);
    return summary;
  }
  await saveDemoClip(out, trained, sizes);
  writeFileSync(join(out, 'training.json'), `${JSON.stringify({
    seed: DEFAULT_TRAIN.seed, steps, resumedAt: trained.startedAt, secondsBeforeResume: Math.round(trained.secondsBefore), batchSize, workers: exchange?.shards ?? 1, labelsFrom: DEFAULT_TRAIN.labelsFrom, auxHeads, backgroundLabels, visionLrScale, contrastTwins, twinCurriculum, ...(twinCurriculum ? { twinBlendStart: TWIN_BLEND_START } : {}), peakLr: DEFAULT_TRAIN.peakLr, warmup: DEFAULT_TRAIN.warmup, weightDecay: DEFAULT_TRAIN.weightDecay,
    sizes, seconds: Math.round(trained.seconds), engine, ...(trained.ortProvider ? { ortProvider: trained.ortProvider } : {}), backend: tf.getBackend(),
    losses: trained.losses.filter((_, i) => i % 5 === 0 || i === trained.losses.length - 1),
  }, null, 2)}\n`);
  console.log(`saved ${out} after ${trained.seconds.toFixed(0)} s`);
  disposeAll(trained.weights);
  return summary;
}

/** DEMO_CLIP_SIZES with `--patch-size` (a divisor of the 64 px picture) if given. */
function sizesOf(args: readonly string[]): DemoClipSizes {
  const given = argOf(args, 'patch-size');
  if (given === undefined) return DEMO_CLIP_SIZES;
  const patchSize = Number(given);
  if (!Number.isInteger(patchSize) || patchSize < 2 || DEMO_CLIP_SIZES.imageSize % patchSize !== 0) {
    throw new RangeError(`--patch-size must be a whole divisor of ${DEMO_CLIP_SIZES.imageSize} from 2 up, got ${given}`);
  }
  return { ...DEMO_CLIP_SIZES, patchSize };
}

function disposeAll(w: ClipWeights): void {
  for (const t of weightTensors(w)) t.dispose();
}

if (isClipWorker() || import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('train-clip.ts')) {
  await main();
}
