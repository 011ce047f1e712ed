/**
 * Trains the bundled demo VQGAN (models/demo-vqgan): a small taming-transformers VQModel that
 * reconstructs pictures of the synthetic world (engine/demo/world.ts). The model is the one
 * engine/models/vqgan.ts runs for real checkpoints; its kernels are `tf.Variable`s here, which
 * switches its convs to the trainable path (input and kernel gradients by forward convs and
 * im2col matMuls, since tfjs-wasm has no Conv2DBackpropFilter).
 *
 * Recipe, as in VQ-VAE (van den Oord et al.) and taming's VQModel minus the GAN and LPIPS terms:
 * reconstruction loss (MSE + L1) through a straight-through quantiser, commitment loss β·‖h − sg(e)‖²,
 * and a codebook learned by exponential moving averages of the encoder outputs assigned to
 * each code (VQ-VAE-2, Razavi et al.) instead of a codebook loss. Codes that fall out of use
 * are restarted on encoder outputs of the current batch (Dhariwal et al., Jukebox), which is
 * what keeps most of the codebook in use. Every picture is rendered fresh from (seed, index),
 * so no picture is seen twice and a seed reproduces the run.
 *
 * CLI: `npx tsx engine/demo/train-vqgan.ts --seed 1 --out models/demo-vqgan [--steps N] [--resume] [--engine onnx|tfjs]`
 * (`--engine onnx`, the default there: encoder and decoder on onnxruntime, vqgan-train-onnx.ts).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf, initBackend, SYNC_READS_AVOID_WEBGPU } from '../runtime/tf';
import { writeSafetensors } from '../io/safetensors';
import type { HostTensor, StateDict } from '../io/host-tensor';
import {
  buildVqganWeights, expectedVqganKeys, loadVqgan, parseVqganConfig, vqganDecode, vqganEncode, vqganQuantize, vqganStateDict,
  type VqganConfig, type VqganWeights,
} from '../models/vqgan';
import { OrtVqganTrainer, vqganPartShapes, vqganPartTensors, vqganPartValues, type VqganPart } from '../onnx/vqgan-train-onnx';
import { createRng, type Rng } from './rng';
import { renderBatch, type WorldKind } from './world';

/**
 * The demo VQGAN: 32×32 pictures, f = 2 (16×16 latents of 16 dims), 512 codes, 32 channels.
 * Sized for tfjs-wasm on one CPU core: every 3×3 conv at 64×64×32 costs ~17 ms there, and the
 * guided loop backpropagates through the decoder each step, so the decoder stops at 32×32
 * (its output is resized to the demo CLIP's input) and has the fewest levels taming allows.
 * GroupNorm gets 8 groups of 4 channels instead of taming's 32 of 1: a one-channel group is
 * instance norm, which maps every flat colour to zero, so a 32-channel taming model cannot
 * tell a blue background from a grey one except through padding artefacts at the borders.
 */
export const DEMO_VQGAN_CONFIG: VqganConfig = {
  embed_dim: 16,
  n_embed: 512,
  ddconfig: {
    double_z: false, z_channels: 16, resolution: 32, in_channels: 3, out_ch: 3,
    ch: 32, ch_mult: [1, 1], num_res_blocks: 1, attn_resolutions: [], dropout: 0,
    num_groups: 8,
  },
};

/** Pictures per step and steps, the bundled recipe's and the defaults. */
export const DEMO_VQGAN_BATCH = 32;
export const DEMO_VQGAN_STEPS = 1500;

export interface TrainVqganOptions {
  /** Seeds the initial weights and the training pictures (world seed). */
  seed: number;
  /** Where to write config.json, model.safetensors and training.json; left out, nothing is written. */
  out?: string;
  config?: VqganConfig;
  /** Optimiser steps, 1–100000 (default DEMO_VQGAN_STEPS). */
  steps?: number;
  /** Pictures per step (default DEMO_VQGAN_BATCH). */
  batchSize?: number;
  /** Peak Adam learning rate (default 2e-3), reached after `warmupSteps`, then cosine to a tenth. */
  learningRate?: number;
  warmupSteps?: number;
  /** Weight of the L1 term next to the MSE (default 0.5). */
  l1Weight?: number;
  /** Commitment loss weight β (default 0.25, as taming). */
  beta?: number;
  /** EMA decay of the codebook statistics (default 0.99). */
  emaDecay?: number;
  /** Every this many steps, codes whose EMA count fell below `deadBelow` are restarted (default 25). */
  restartEvery?: number;
  /** EMA count (assignments per batch) under which a code counts as dead (default 0.25). */
  deadBelow?: number;
  /**
   * Train as a plain autoencoder (no quantiser) for this many steps first, then start the
   * codebook on the encoder outputs (default 0).
   */
  autoencoderSteps?: number;
  /** Start every residual branch (ResnetBlock conv2, attention proj_out) at zero (default true). */
  zeroResiduals?: boolean;
  /** Restrict the world to scenes or doodles (default both). */
  kind?: WorldKind;
  /**
   * Where the encoder and decoder run: `tfjs` (forward and backward on the tfjs backend) or
   * `onnx` (both on onnxruntime, vqgan-train-onnx.ts; the quantiser, codebook and optimiser stay
   * here). The same maths; onnx is many times faster on a CPU. Default tfjs; the command line's
   * default is onnx.
   */
  engine?: VqganTrainEngine;
  logEvery?: number;
  /** Write the model to `out` every this many steps (default 200) and at the end. */
  checkpointEvery?: number;
  /** Continue from the model in `out` (its training.json says at which step). */
  resume?: boolean;
  onLog?: (entry: TrainLogEntry) => void;
}

export type VqganTrainEngine = 'tfjs' | 'onnx';
export const VQGAN_TRAIN_ENGINES: readonly VqganTrainEngine[] = ['tfjs', 'onnx'];

export interface TrainLogEntry {
  step: number;
  seconds: number;
  loss: number;
  /** Reconstruction MSE on the training batch, images in [-1, 1]. */
  mse: number;
  /** PSNR of that MSE, for 8-bit pictures (peak-to-peak 2 in [-1, 1]). */
  psnr: number;
  commitment: number;
  /** Distinct codes the batches since the last log used, as a share of the codebook. */
  codesUsed: number;
  restarted: number;
  learningRate: number;
}

export interface TrainVqganResult {
  /** The trained weights (kernels are tf.Variables); free with `disposeVqgan`. */
  weights: VqganWeights;
  history: TrainLogEntry[];
  steps: number;
  seconds: number;
  imagesSeen: number;
}

function checkRange(name: string, v: number, lo: number, hi: number, integer = true): number {
  if (!(Number.isFinite(v) && v >= lo && v <= hi) || (integer && !Number.isInteger(v))) {
    throw new RangeError(`The \`${name}\` option must be ${integer ? 'an integer ' : ''}between ${lo} and ${hi}, got ${v}`);
  }
  return v;
}

/**
 * A fresh state dict for `config` with PyTorch's default initialisation (conv kernels and biases
 * uniform in ±1/√fan_in, GroupNorm γ = 1, β = 0), drawn from `rng`.
 */
export function initVqganStateDict(config: VqganConfig, rng: Rng, opts: { zeroResiduals?: boolean } = {}): StateDict {
  const sd: StateDict = new Map();
  const fanIn = new Map<string, number>();
  for (const [key, shape] of expectedVqganKeys(config)) {
    if (key.endsWith('.weight') && shape.length === 4) fanIn.set(key.slice(0, -'.weight'.length), shape[1]! * shape[2]! * shape[3]!);
  }
  for (const [key, shape] of expectedVqganKeys(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const layer = key.slice(0, key.lastIndexOf('.'));
    const isNorm = /norm[^.]*$/.test(layer);
    if (key === 'quantize.embedding.weight') {
      for (let i = 0; i < n; i++) data[i] = rng.range(-1, 1) / config.n_embed; // taming's init; replaced by encoder outputs at step 0
    } else if (opts.zeroResiduals && /(\.conv2|\.proj_out)$/.test(layer)) {
      // every residual branch starts as zero, so each block starts as the identity (Fixup, Zhang et al.)
    } else if (isNorm) {
      if (key.endsWith('.weight')) data.fill(1);
    } else {
      const bound = 1 / Math.sqrt(fanIn.get(layer)!);
      for (let i = 0; i < n; i++) data[i] = rng.range(-bound, bound);
    }
    sd.set(key, { dtype: 'float32', storedAs: 'F32', shape: [...shape], data });
  }
  return sd;
}

/** Replace every tensor of the weight tree by a variable: trainable, except the EMA-updated codebook (exported for the onnx engine's tests). */
export function toVariables(w: VqganWeights): { weights: VqganWeights; trainable: tf.Variable[] } {
  const trainable: tf.Variable[] = [];
  const convert = (v: unknown): unknown => {
    if (v instanceof tf.Tensor) {
      const variable = tf.variable(v, true);
      v.dispose();
      trainable.push(variable);
      return variable;
    }
    if (Array.isArray(v)) return v.map(convert);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, convert(x)]));
    return v;
  };
  const codebook = tf.variable(w.codebook, false);
  w.codebook.dispose();
  const weights: VqganWeights = {
    config: w.config, ignoredKeys: w.ignoredKeys, codebook: codebook as unknown as tf.Tensor2D,
    encoder: convert(w.encoder) as VqganWeights['encoder'], decoder: convert(w.decoder) as VqganWeights['decoder'],
    quantConv: convert(w.quantConv) as VqganWeights['quantConv'], postQuantConv: convert(w.postQuantConv) as VqganWeights['postQuantConv'],
  };
  return { weights, trainable };
}

/** Identity forward, zero gradient (tfjs has no stopGradient op). */
function stopGradient<T extends tf.Tensor>(x: T): T {
  const f = tf.customGrad((...args) => ({ value: tf.clone(args[0] as tf.Tensor), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) }));
  return f(x) as T;
}

/**
 * Nearest codes for `h` without a gradient (the argmin and gather run inside a customGrad, so
 * they are never taped: wasm has no gather gradient). Returns zq and the indices, kept.
 */
function quantizeNoGrad(w: VqganWeights, h: tf.Tensor4D): { zq: tf.Tensor4D; indices: tf.Tensor3D } {
  let indices: tf.Tensor3D | undefined;
  const f = tf.customGrad((...args) => {
    const q = vqganQuantize(w, args[0] as tf.Tensor4D);
    indices = tf.keep(q.indices);
    return { value: q.zq, gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
  });
  const zq = f(h) as tf.Tensor4D;
  return { zq, indices: indices! };
}

/** Pictures → NHWC float32 in [-1, 1]. */
async function worldBatch(seed: number, start: number, n: number, size: number, kind?: WorldKind): Promise<tf.Tensor4D> {
  const samples = await renderBatch(seed, n, { size, start, ...(kind ? { kind } : {}) });
  const data = new Float32Array(n * size * size * 3);
  samples.forEach((s, i) => {
    const px = s.image.data;
    for (let j = 0; j < px.length; j++) data[i * px.length + j] = px[j]! / 127.5 - 1;
  });
  return tf.tensor4d(data, [n, size, size, 3]);
}

/**
 * The codebook as exponential moving averages, kept on the host (a few thousand vectors per
 * step; wasm has no segment sums): per code the EMA count of assignments and the EMA sum of
 * the encoder outputs assigned to it. The code is their ratio, with Laplace smoothing.
 */
class EmaCodebook {
  readonly counts: Float64Array;
  readonly sums: Float64Array;
  /** Codes hit since the last `takeUsage`. */
  private used: Uint8Array;

  constructor(readonly n: number, readonly d: number, readonly decay: number, init: Float32Array) {
    this.counts = new Float64Array(n).fill(1);
    this.sums = Float64Array.from(init);
    this.used = new Uint8Array(n);
  }

  update(h: Float32Array, indices: Int32Array): void {
    const { n, d, decay } = this;
    const count = new Float64Array(n), sum = new Float64Array(n * d);
    for (let i = 0; i < indices.length; i++) {
      const k = indices[i]!;
      count[k]!++;
      this.used[k] = 1;
      for (let j = 0; j < d; j++) sum[k * d + j]! += h[i * d + j]!;
    }
    for (let k = 0; k < n; k++) this.counts[k] = decay * this.counts[k]! + (1 - decay) * count[k]!;
    for (let i = 0; i < n * d; i++) this.sums[i] = decay * this.sums[i]! + (1 - decay) * sum[i]!;
  }

  /**
   * Give each dead code an encoder output from `h`, drawn with probability ∝ its squared
   * distance to the code it was assigned (`indices`), so restarts split the crowded, mixed
   * clusters (k-means++ style) instead of landing on the commonest outputs — with half the
   * world white paper, uniform draws mostly re-create near-white codes. Returns how many.
   */
  restartDead(h: Float32Array, indices: Int32Array, deadBelow: number, rng: Rng): number {
    const { n, d } = this;
    const dead: number[] = [];
    for (let k = 0; k < n; k++) if (this.counts[k]! < deadBelow) dead.push(k);
    if (!dead.length) return 0;
    const codes = this.codebook();
    const cumulative = new Float64Array(indices.length);
    let total = 0;
    for (let i = 0; i < indices.length; i++) {
      const k = indices[i]!;
      let e = 0;
      for (let j = 0; j < d; j++) { const t = h[i * d + j]! - codes[k * d + j]!; e += t * t; }
      total += e;
      cumulative[i] = total;
    }
    for (const k of dead) {
      const u = rng.next() * total;
      let lo = 0, hi = indices.length - 1;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (cumulative[mid]! < u) lo = mid + 1; else hi = mid; }
      for (let j = 0; j < d; j++) this.sums[k * d + j] = h[lo * d + j]! + rng.normal() * 1e-3;
      this.counts[k] = 1;
    }
    return dead.length;
  }

  codebook(): Float32Array {
    const { n, d } = this;
    const eps = 1e-5;
    let total = 0;
    for (let k = 0; k < n; k++) total += this.counts[k]!;
    const out = new Float32Array(n * d);
    for (let k = 0; k < n; k++) {
      const smoothed = ((this.counts[k]! + eps) / (total + n * eps)) * total;
      for (let j = 0; j < d; j++) out[k * d + j] = this.sums[k * d + j]! / smoothed;
    }
    return out;
  }

  takeUsage(): number {
    const share = this.used.reduce((a, b) => a + b, 0) / this.n;
    this.used.fill(0);
    return share;
  }
}

/** The model directory: taming config JSON, float16 safetensors, and the training log. */
function saveModel(out: string, w: VqganWeights, log: { step: number; seconds: number; imagesSeen: number; options: object; history: TrainLogEntry[] }): void {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'config.json'), `${JSON.stringify({ model: { target: 'taming.models.vqgan.VQModel', params: w.config } }, null, 2)}\n`);
  writeSafetensors(join(out, 'model.safetensors'), vqganStateDict(w), {
    float16: true, metadata: { format: 'pt', source: 'engine/demo/train-vqgan.ts', step: String(log.step) },
  });
  writeFileSync(join(out, 'training.json'), `${JSON.stringify(log, null, 1)}\n`);
}

/**
 * Train a VQGAN on the synthetic world. With `out`, the model is written there (config.json in
 * taming's VQModel form, float16 model.safetensors, training.json) every `checkpointEvery`
 * steps and at the end, loadable by `loadVqgan(out)`.
 *
 * @example
 * await initBackend();
 * const { weights, history } = await trainVqgan({ seed: 1, out: 'models/demo-vqgan' });
 */
export async function trainVqgan(opts: TrainVqganOptions): Promise<TrainVqganResult> {
  const config = parseVqganConfig(opts.config ?? DEMO_VQGAN_CONFIG);
  const seed = checkRange('seed', opts.seed, 0, 2 ** 31 - 1);
  const steps = checkRange('steps', opts.steps ?? DEMO_VQGAN_STEPS, 1, 100000);
  const batchSize = checkRange('batchSize', opts.batchSize ?? DEMO_VQGAN_BATCH, 1, 512);
  const peakLr = checkRange('learningRate', opts.learningRate ?? 2e-3, 1e-6, 1, false);
  const warmup = checkRange('warmupSteps', opts.warmupSteps ?? Math.min(100, Math.ceil(steps / 10)), 0, 100000);
  const l1Weight = checkRange('l1Weight', opts.l1Weight ?? 0.5, 0, 100, false);
  const beta = checkRange('beta', opts.beta ?? 0.25, 0, 10, false);
  const decay = checkRange('emaDecay', opts.emaDecay ?? 0.99, 0, 0.99999, false);
  const restartEvery = checkRange('restartEvery', opts.restartEvery ?? 25, 1, 100000);
  const deadBelow = checkRange('deadBelow', opts.deadBelow ?? 0.25, 0, 1e6, false);
  const logEvery = checkRange('logEvery', opts.logEvery ?? 25, 1, 100000);
  const checkpointEvery = checkRange('checkpointEvery', opts.checkpointEvery ?? 200, 1, 100000);
  const aeSteps = checkRange('autoencoderSteps', opts.autoencoderSteps ?? 0, 0, 100000);
  const engine = opts.engine ?? 'tfjs';
  if (!VQGAN_TRAIN_ENGINES.includes(engine)) throw new RangeError(`The \`engine\` option must be one of ${VQGAN_TRAIN_ENGINES.join(', ')}, got ${engine}`);
  const size = config.ddconfig.resolution;
  const { n_embed: nCodes, embed_dim: dim } = config;

  // Weights: fresh from the seed, or the checkpoint in `out`.
  let startStep = 0;
  let history: TrainLogEntry[] = [];
  let secondsBefore = 0;
  let loaded: VqganWeights;
  if (opts.resume && opts.out && existsSync(join(opts.out, 'training.json'))) {
    const log = JSON.parse(readFileSync(join(opts.out, 'training.json'), 'utf8'));
    loaded = await loadVqgan(opts.out);
    startStep = log.step;
    history = log.history;
    secondsBefore = log.seconds;
  } else {
    loaded = buildVqganWeights(config, initVqganStateDict(config, createRng(seed), { zeroResiduals: opts.zeroResiduals ?? true }));
  }
  const { weights, trainable } = toVariables(loaded);
  const codebookVar = weights.codebook as unknown as tf.Variable;
  const rng = createRng(seed ^ 0x5eed);
  const optimizer = tf.train.adam(peakLr, 0.9, 0.99);
  const setLr = (lr: number) => { (optimizer as unknown as { learningRate: number }).learningRate = lr; };
  const lrAt = (step: number) => step < warmup ? peakLr * (step + 1) / warmup
    : peakLr * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * (step - warmup) / Math.max(1, steps - warmup))));

  const ort = engine === 'onnx' ? await OrtVqganTrainer.create(config, vqganPartShapes(weights), l1Weight) : undefined;
  let ema: EmaCodebook | undefined;
  if (startStep > 0) ema = new EmaCodebook(nCodes, dim, decay, codebookVar.dataSync() as Float32Array);
  const started = performance.now();
  const seconds = () => secondsBefore + (performance.now() - started) / 1000;
  let acc = { loss: 0, mse: 0, commitment: 0, n: 0, restarted: 0 };
  const save = (step: number) => {
    if (!opts.out) return;
    saveModel(opts.out, weights, {
      step, seconds: Math.round(seconds()), imagesSeen: step * batchSize,
      options: { seed, steps, batchSize, learningRate: peakLr, warmupSteps: warmup, l1Weight, beta, emaDecay: decay, restartEvery, deadBelow, kind: opts.kind ?? 'both', engine },
      history,
    });
  };

  try {
    for (let step = startStep; step < steps; step++) {
      const x = await worldBatch(seed, step * batchSize, batchSize, size, opts.kind);
      const quantizing = step >= aeSteps;
      if (!ema && quantizing) {
        // Start the codebook on encoder outputs of the first batch, so every code begins in use.
        const h = tf.tidy(() => tf.reshape(vqganEncode(weights, x), [-1, dim]));
        const rows = h.dataSync() as Float32Array;
        h.dispose();
        const init = new Float32Array(nCodes * dim);
        for (let k = 0; k < nCodes; k++) {
          const r = rng.int(0, rows.length / dim - 1);
          for (let j = 0; j < dim; j++) init[k * dim + j] = rows[r * dim + j]! + rng.normal() * 1e-3;
        }
        ema = new EmaCodebook(nCodes, dim, decay, init);
        tf.tidy(() => codebookVar.assign(tf.tensor2d(init, [nCodes, dim])));
      }
      setLr(lrAt(step));
      const stepOpts = { quantizing, l1Weight, beta };
      const r = ort ? await onnxStep(ort, weights, optimizer, x, stepOpts) : tfjsStep(weights, trainable, optimizer, x, stepOpts);
      x.dispose();
      if (ema) {
        ema.update(r.h, r.indices);
        if ((step + 1) % restartEvery === 0) acc.restarted += ema.restartDead(r.h, r.indices, deadBelow, rng);
        tf.tidy(() => codebookVar.assign(tf.tensor2d(ema!.codebook(), [nCodes, dim])));
      }
      acc.loss += r.loss;
      acc.mse += r.mse;
      acc.commitment += r.commitment;
      acc.n++;

      const done = step + 1;
      if (done % logEvery === 0 || done === steps) {
        const meanMse = acc.mse / acc.n;
        const entry: TrainLogEntry = {
          step: done, seconds: Math.round(seconds() * 10) / 10, loss: acc.loss / acc.n, mse: meanMse,
          psnr: 10 * Math.log10(4 / meanMse), commitment: acc.commitment / acc.n,
          codesUsed: ema?.takeUsage() ?? 0, restarted: acc.restarted, learningRate: lrAt(step),
        };
        history.push(entry);
        opts.onLog?.(entry);
        acc = { loss: 0, mse: 0, commitment: 0, n: 0, restarted: 0 };
      }
      if (done % checkpointEvery === 0 || done === steps) save(done);
    }
  } finally {
    optimizer.dispose();
    await ort?.release(); // a step that throws must not leave the sessions open
  }
  return { weights, history, steps, seconds: seconds(), imagesSeen: (steps - startStep) * batchSize };
}

/** One step's figures and what the codebook's moving averages need: h (NHWC rows of D) and each row's code. */
interface StepResult { loss: number; mse: number; commitment: number; h: Float32Array; indices: Int32Array }
interface StepOptions { quantizing: boolean; l1Weight: number; beta: number }

/** A step on tfjs: the whole loss taped, tfjs's gradients (vqgan.ts's trainable convs). */
function tfjsStep(weights: VqganWeights, trainable: tf.Variable[], optimizer: tf.Optimizer, x: tf.Tensor4D, o: StepOptions): StepResult {
  let kept: { h: tf.Tensor4D; indices: tf.Tensor3D; mse: tf.Scalar; commitment: tf.Scalar } | undefined;
  const loss = optimizer.minimize(() => {
    const h = vqganEncode(weights, x); // [B, s, s, D]
    const { zq, indices } = quantizeNoGrad(weights, h);
    const straightThrough = tf.add(h, tf.sub(zq, stopGradient(h))) as tf.Tensor4D; // forward zq, gradient to h
    const recon = vqganDecode(weights, o.quantizing ? straightThrough : h);
    const diff = tf.sub(recon, x);
    const mse = tf.mean(tf.square(diff)) as tf.Scalar;
    const commitment = tf.mean(tf.square(tf.sub(h, zq))) as tf.Scalar;
    kept = { h: tf.keep(h), indices, mse: tf.keep(mse), commitment: tf.keep(commitment) };
    const terms = [mse, tf.mul(o.l1Weight, tf.mean(tf.abs(diff)))];
    if (o.quantizing) terms.push(tf.mul(o.beta, commitment));
    return tf.addN(terms) as tf.Scalar;
  }, true, trainable)!;
  const { h, indices, mse, commitment } = kept!;
  const out = { loss: loss.dataSync()[0]!, mse: mse.dataSync()[0]!, commitment: commitment.dataSync()[0]!, h: h.dataSync() as Float32Array, indices: indices.dataSync() as Int32Array };
  tf.dispose([loss, h, indices, mse, commitment]);
  return out;
}

/**
 * The same step on onnxruntime (vqgan-train-onnx.ts): encode and find the nearest codes there,
 * gather them here, decode there (loss, d zq, decoder gradients), pass d zq straight through to
 * h with the commitment term's own gradient, β · 2(h − zq)/size, and take the encoder's
 * gradients there; the optimiser steps the tfjs variables.
 */
async function onnxStep(ort: OrtVqganTrainer, weights: VqganWeights, optimizer: tf.Optimizer, x: tf.Tensor4D, o: StepOptions): Promise<StepResult> {
  const n = x.shape[0];
  const pixels = (await x.data()) as Float32Array;
  const values = await vqganPartValues(weights);
  const codebook = (await weights.codebook.data()) as Float32Array;
  const { h, indices } = await ort.encode(values.encoder, pixels, n, codebook);
  const D = weights.config.embed_dim;
  const zq = new Float32Array(h.length);
  let commitment = 0;
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i]!;
    for (let j = 0; j < D; j++) {
      const v = codebook[k * D + j]!;
      zq[i * D + j] = v;
      commitment += (h[i * D + j]! - v) ** 2;
    }
  }
  commitment /= h.length;
  const dec = await ort.decode(values.decoder, o.quantizing ? zq : h, pixels, n);
  const dh = dec.dZq;
  if (o.quantizing) for (let i = 0; i < dh.length; i++) dh[i]! += (o.beta * 2 * (h[i]! - zq[i]!)) / h.length;
  const enc = await ort.encoderGradients(values.encoder, pixels, n, dh);
  const grads: tf.NamedTensorMap = {};
  const add = (part: VqganPart, g: Map<string, Float32Array>) => {
    for (const [path, v] of vqganPartTensors(weights, part)) grads[(v as tf.Variable).name] = tf.tensor(g.get(path)!, v.shape);
  };
  add('encoder', enc);
  add('decoder', dec.grads);
  optimizer.applyGradients(grads);
  tf.dispose(Object.values(grads));
  return { loss: dec.mse + o.l1Weight * dec.l1 + (o.quantizing ? o.beta * commitment : 0), mse: dec.mse, commitment, h, indices };
}

function parseArgs(argv: string[]): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`Unexpected argument "${a}"`);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[a.slice(2)] = true;
    else { out[a.slice(2)] = next; i++; }
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const num = (k: string) => (typeof args[k] === 'string' ? Number(args[k]) : undefined);
  const backend = await initBackend(undefined, { avoid: [SYNC_READS_AVOID_WEBGPU] });
  const out = typeof args.out === 'string' ? args.out : 'models/demo-vqgan';
  console.error(`train-vqgan: backend ${backend.name}, engine ${typeof args.engine === 'string' ? args.engine : 'onnx'}, out ${out}`);
  const { steps, seconds, imagesSeen } = await trainVqgan({
    seed: num('seed') ?? 1, out, resume: args.resume === true,
    ...(num('steps') !== undefined ? { steps: num('steps')! } : {}),
    ...(num('batch') !== undefined ? { batchSize: num('batch')! } : {}),
    ...(num('lr') !== undefined ? { learningRate: num('lr')! } : {}),
    engine: (typeof args.engine === 'string' ? args.engine : 'onnx') as VqganTrainEngine,
    onLog: (e) => console.error(`step ${e.step} ${e.seconds.toFixed(0)}s loss ${e.loss.toFixed(4)} psnr ${e.psnr.toFixed(2)} dB `
      + `commit ${e.commitment.toFixed(4)} codes used ${(100 * e.codesUsed).toFixed(0)}% restarted ${e.restarted} lr ${e.learningRate.toExponential(2)}`),
  });
  console.error(`train-vqgan: ${steps} steps, ${imagesSeen} pictures in ${(seconds / 60).toFixed(1)} min → ${out}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => { console.error(err); process.exit(1); });
}
