/**
 * The VQGAN's encoder and decoder as ONNX graphs that take their weights as inputs, forward and
 * backward, so the demo VQGAN's trainer (engine/demo/train-vqgan.ts --engine onnx) runs its
 * convolutions on onnxruntime. tfjs-wasm has no conv backprop kernels and trains the demo model
 * at ~2 pictures/s on two cores; ORT's convolutions are the machine's own.
 *
 * One step takes three runs:
 *   encode    pixels → h (the pre-quantisation latents) and each position's nearest code
 *   decode    zq (the codes, or h while training as a plain autoencoder), pixels → the
 *             reconstruction loss (MSE + l1Weight · L1), its gradient w.r.t. zq, and every
 *             decoder weight's gradient
 *   encoder   pixels, dh → every encoder weight's gradient (the forward pass again, then back)
 * The quantiser's straight-through estimator and the commitment term live between the runs (on
 * the host: dh = dzq + β · 2(h − zq) / size), and so do the EMA codebook and the optimiser.
 *
 * The maths is vqgan.ts's (taming's Encoder, Decoder, ResnetBlock, AttnBlock, Downsample,
 * Upsample); test/engine/onnx/vqgan-train-onnx.test.ts checks the loss and gradients against
 * tfjs's. Weights are named by their path in VqganWeights (`encoder.levels.0.blocks.0.conv1.w`)
 * and fed in tfjs's layout (kernels HWIO); the graphs transpose them to ONNX's OIHW and work
 * in NCHW, with pixels and latents NHWC at their edges, as vqgan.ts has them.
 */
import { tf } from '../runtime/tf';
import type { AttnBlockWeights, CoderWeights, Conv, Norm, ResnetBlockWeights, VqganConfig, VqganWeights } from '../models/vqgan-weights';
import { createOrtSession, float32Feeds, type ExecutionProvider, type OrtSession, type OrtSessionOptions, type OrtValue } from '../runtime/onnx';
import { Tape } from './autodiff';
import { OnnxGraph } from './graph';

const NORM_EPS = 1e-6; // taming's Normalize
const gradName = (path: string) => `grad.${path}`;

/** The half of the model a graph trains: the encoder with quant_conv, or post_quant_conv with the decoder. */
export type VqganPart = 'encoder' | 'decoder';

/**
 * Every weight of one part by path (kernels HWIO, as VqganWeights holds them). The codebook is
 * neither part's: the trainer keeps it by moving averages.
 *
 * @example
 * const tensors = vqganPartTensors(weights, 'decoder'); // 'postQuantConv.w' → [1, 1, 16, 32], …
 */
export function vqganPartTensors(w: VqganWeights, part: VqganPart): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  const conv = (path: string, c: Conv) => { out.set(`${path}.w`, c.w); out.set(`${path}.b`, c.b); };
  const norm = (path: string, n: Norm) => { out.set(`${path}.gamma`, n.gamma); out.set(`${path}.beta`, n.beta); };
  const resnet = (path: string, r: ResnetBlockWeights) => {
    norm(`${path}.norm1`, r.norm1); conv(`${path}.conv1`, r.conv1); norm(`${path}.norm2`, r.norm2); conv(`${path}.conv2`, r.conv2);
    if (r.ninShortcut) conv(`${path}.ninShortcut`, r.ninShortcut);
  };
  const attn = (path: string, a: AttnBlockWeights) => {
    norm(`${path}.norm`, a.norm); conv(`${path}.q`, a.q); conv(`${path}.k`, a.k); conv(`${path}.v`, a.v); conv(`${path}.projOut`, a.projOut);
  };
  const coder = (path: string, c: CoderWeights) => {
    conv(`${path}.convIn`, c.convIn);
    c.levels.forEach((level, i) => {
      level.blocks.forEach((b, j) => resnet(`${path}.levels.${i}.blocks.${j}`, b));
      level.attns.forEach((a, j) => attn(`${path}.levels.${i}.attns.${j}`, a));
      if (level.resample) conv(`${path}.levels.${i}.resample`, level.resample);
    });
    resnet(`${path}.mid.block1`, c.mid.block1); attn(`${path}.mid.attn1`, c.mid.attn1); resnet(`${path}.mid.block2`, c.mid.block2);
    norm(`${path}.normOut`, c.normOut); conv(`${path}.convOut`, c.convOut);
  };
  if (part === 'encoder') {
    coder('encoder', w.encoder);
    conv('quantConv', w.quantConv);
  } else {
    conv('postQuantConv', w.postQuantConv);
    coder('decoder', w.decoder);
  }
  return out;
}

/** vqgan.ts's layers on a tape, every activation NCHW of a static size known here. */
class Layers {
  private readonly weights = new Map<string, string>();

  constructor(readonly g: OnnxGraph, readonly t: Tape, private readonly shapes: ReadonlyMap<string, readonly number[]>, private readonly groups: number) {}

  private p(path: string): string {
    const known = this.weights.get(path);
    if (known) return known;
    const shape = this.shapes.get(path);
    if (!shape) throw new Error(`VQGAN training graph: no weight ${path}`);
    const name = this.t.param(this.g.input(path, 'float32', shape), shape);
    this.weights.set(path, name);
    return name;
  }

  /** A conv of the kernel at `path` (HWIO, transposed to OIHW here); padding (k − 1)/2 unless given. */
  conv(x: string, path: string, size: number, opts: { stride?: number; pads?: [number, number, number, number] } = {}): string {
    const k = this.shapes.get(`${path}.w`)?.[0];
    if (!k) throw new Error(`VQGAN training graph: no weight ${path}.w`);
    const pad = (k - 1) / 2;
    const kernel = this.t.transpose(this.p(`${path}.w`), [3, 2, 0, 1]); // [k, k, I, O] -> [O, I, k, k]
    return this.t.conv(x, kernel, this.p(`${path}.b`), { stride: opts.stride ?? 1, pads: opts.pads ?? [pad, pad, pad, pad], size: [size, size] });
  }

  channels(path: string): number {
    return this.shapes.get(`${path}.w`)![3]!;
  }

  norm(x: string, path: string, channels: number, size: number): string {
    return this.t.groupNorm(x, this.p(`${path}.gamma`), this.p(`${path}.beta`), { channels, size: [size, size], groups: this.groups, eps: NORM_EPS });
  }

  /** norm → swish → conv, twice, plus the (1×1 nin_shortcut when channels change) residual. */
  resnet(x: string, path: string, inChannels: number, size: number): string {
    const out = this.channels(`${path}.conv1`);
    let h = this.conv(this.t.swish(this.norm(x, `${path}.norm1`, inChannels, size)), `${path}.conv1`, size);
    h = this.conv(this.t.swish(this.norm(h, `${path}.norm2`, out, size)), `${path}.conv2`, size);
    const shortcut = this.shapes.has(`${path}.ninShortcut.w`) ? this.conv(x, `${path}.ninShortcut`, size) : x;
    return this.t.add(shortcut, h);
  }

  /** Single-head self-attention over all H·W positions, scaled by C^-0.5, plus the residual. */
  attn(x: string, path: string, C: number, size: number): string {
    const t = this.t;
    const n = this.norm(x, `${path}.norm`, C, size);
    const flat = (v: string) => t.reshape(v, [0, C, size * size]); // [N, C, H, W] -> [N, C, HW]
    const qT = t.transpose(flat(this.conv(n, `${path}.q`, size)), [0, 2, 1]); // [N, HW, C]
    const k = flat(this.conv(n, `${path}.k`, size));
    const v = flat(this.conv(n, `${path}.v`, size));
    const attention = t.softmax(t.scale(t.matmul(qT, k, 3), C ** -0.5)); // [N, HW(query), HW(key)]
    const out = t.matmul(v, t.transpose(attention, [0, 2, 1]), 3); // [N, C, HW]: Σ over keys of v · attention
    return t.add(x, this.conv(t.reshape(out, [0, C, size, size]), `${path}.projOut`, size));
  }

  mid(x: string, path: string, C: number, size: number): string {
    const h = this.attn(this.resnet(x, `${path}.block1`, C, size), `${path}.attn1`, C, size);
    return this.resnet(h, `${path}.block2`, C, size);
  }

  /** One level's res blocks, each followed by its attention when the level has them; h and its channels after. */
  levelBlocks(h: string, path: string, level: { blocks: number; attns: number }, C: number, size: number): { h: string; C: number } {
    for (let j = 0; j < level.blocks; j++) {
      h = this.resnet(h, `${path}.blocks.${j}`, C, size);
      C = this.channels(`${path}.blocks.${j}.conv1`);
      if (level.attns) h = this.attn(h, `${path}.attns.${j}`, C, size);
    }
    return { h, C };
  }

  /** The coder's levels: how many blocks and attentions each has, from the weights present. */
  levels(path: string): { blocks: number; attns: number; resample: boolean }[] {
    const out: { blocks: number; attns: number; resample: boolean }[] = [];
    for (let i = 0; this.shapes.has(`${path}.levels.${i}.blocks.0.conv1.w`); i++) {
      let blocks = 0, attns = 0;
      while (this.shapes.has(`${path}.levels.${i}.blocks.${blocks}.conv1.w`)) blocks++;
      while (this.shapes.has(`${path}.levels.${i}.attns.${attns}.q.w`)) attns++;
      out.push({ blocks, attns, resample: this.shapes.has(`${path}.levels.${i}.resample.w`) });
    }
    return out;
  }
}

/** [N, S, S, C] (an NHWC graph input) -> NCHW. */
const toNchw = (t: Tape, x: string) => t.transpose(x, [0, 3, 1, 2]);

/** taming Encoder + quant_conv on NCHW pixels; returns h NCHW and its size. */
function encoderGraph(L: Layers, pixels: string, resolution: number): { h: string; size: number } {
  let size = resolution;
  let h = L.conv(pixels, 'encoder.convIn', size);
  let C = L.channels('encoder.convIn');
  L.levels('encoder').forEach((level, i) => {
    ({ h, C } = L.levelBlocks(h, `encoder.levels.${i}`, level, C, size));
    if (level.resample) {
      // taming's Downsample: pad right and bottom by one, a stride-2 3×3 conv
      h = L.conv(h, `encoder.levels.${i}.resample`, size, { stride: 2, pads: [0, 0, 1, 1] });
      size /= 2;
    }
  });
  h = L.mid(h, 'encoder.mid', C, size);
  h = L.conv(L.t.swish(L.norm(h, 'encoder.normOut', C, size)), 'encoder.convOut', size);
  return { h: L.conv(h, 'quantConv', size), size };
}

/** post_quant_conv + taming Decoder on NCHW latents of side `size`; returns the picture NCHW. */
function decoderGraph(L: Layers, z: string, size: number): string {
  let h = L.conv(L.conv(z, 'postQuantConv', size), 'decoder.convIn', size);
  let C = L.channels('decoder.convIn');
  h = L.mid(h, 'decoder.mid', C, size);
  const levels = L.levels('decoder');
  for (let i = levels.length - 1; i >= 0; i--) {
    const level = levels[i]!;
    ({ h, C } = L.levelBlocks(h, `decoder.levels.${i}`, level, C, size));
    if (level.resample) {
      h = L.conv(L.t.upsample2x(h, [size, size]), `decoder.levels.${i}.resample`, 2 * size);
      size *= 2;
    }
  }
  return L.conv(L.t.swish(L.norm(h, 'decoder.normOut', C, size)), 'decoder.convOut', size);
}

function outputGradients(g: OnnxGraph, t: Tape, shapes: ReadonlyMap<string, readonly number[]>): void {
  for (const [path, shape] of shapes) {
    const grad = t.gradient(path);
    if (!grad) throw new Error(`VQGAN training graph: no gradient reaches ${path}`);
    g.output(grad, gradName(path), 'float32', shape);
  }
}

/**
 * The encoder graph. Forward (`backward` false): `pixels` NHWC [n, S, S, 3] and `codebook`
 * [codes, D] → `h` NHWC [n, s, s, D] and `indices` [n·s·s] (int64, the nearest code of each
 * position, as vqganQuantize picks it). Backward: `pixels` and `d_h` NHWC → every weight's gradient.
 */
export function buildVqganEncoderGraph(config: VqganConfig, shapes: ReadonlyMap<string, readonly number[]>, backward: boolean): Uint8Array {
  const S = config.ddconfig.resolution;
  const D = config.embed_dim;
  const g = new OnnxGraph(`vqgan-encoder-${backward ? 'backward' : 'forward'}`);
  const t = new Tape(g);
  const L = new Layers(g, t, shapes, config.ddconfig.num_groups ?? 32);
  const pixels = g.input('pixels', 'float32', ['n', S, S, config.ddconfig.in_channels]);
  const { h, size } = encoderGraph(L, toNchw(t, pixels), S);
  const hNhwc = t.transpose(h, [0, 2, 3, 1]); // [n, D, s, s] -> [n, s, s, D]
  if (backward) {
    t.backward(hNhwc, g.input('d_h', 'float32', ['n', size, size, D]));
    outputGradients(g, t, shapes);
    return g.toModel();
  }
  // nearest code: argmin over e of ‖e‖² − 2 h·e (‖h‖² is the same for every e)
  const codebook = g.input('codebook', 'float32', [config.n_embed, D]);
  const rows = g.op('Reshape', [hNhwc, g.ints('rows', [-1, D])]);
  const eNorm = g.op('ReduceSum', [g.op('Mul', [codebook, codebook]), g.ints('axis1', [1])], { keepdims: 0 });
  const dots = g.op('MatMul', [rows, g.op('Transpose', [codebook], { perm: [1, 0] })]);
  const distance = g.op('Sub', [eNorm, g.op('Mul', [dots, g.scalar('two', 2)])]);
  g.output(g.op('ArgMin', [distance], { axis: 1, keepdims: 0 }), 'indices', 'int64', ['positions']);
  g.output(hNhwc, 'h', 'float32', ['n', size, size, D]);
  return g.toModel();
}

/**
 * The decoder graph: `zq` NHWC [n, s, s, D] and the target `pixels` NHWC [n, S, S, 3] → `mse`
 * and `l1` (means over every value), `d_zq` (the gradient of mse + l1Weight · l1 w.r.t. zq) and
 * every decoder weight's gradient.
 */
export function buildVqganDecoderGraph(config: VqganConfig, shapes: ReadonlyMap<string, readonly number[]>, l1Weight: number): Uint8Array {
  const S = config.ddconfig.resolution;
  const s = S / 2 ** (config.ddconfig.ch_mult.length - 1);
  const D = config.embed_dim;
  const g = new OnnxGraph('vqgan-decoder-backward');
  const t = new Tape(g);
  const L = new Layers(g, t, shapes, config.ddconfig.num_groups ?? 32);
  const zqIn = g.input('zq', 'float32', ['n', s, s, D]);
  const zq = t.param(zqIn); // its gradient is wanted: the straight-through path to h
  const target = g.op('Transpose', [g.input('pixels', 'float32', ['n', S, S, config.ddconfig.out_ch])], { perm: [0, 3, 1, 2] });
  const recon = decoderGraph(L, toNchw(t, zq), s);
  // loss = mean(diff²) + l1Weight · mean(|diff|); d loss / d recon = (2·diff + l1Weight · sign(diff)) / count
  const diff = g.op('Sub', [recon, target]);
  const count = g.op('Cast', [g.op('Size', [diff])], { to: 1 });
  g.output(g.op('ReduceMean', [g.op('Mul', [diff, diff])], { keepdims: 0 }), 'mse', 'float32', []);
  g.output(g.op('ReduceMean', [g.op('Abs', [diff])], { keepdims: 0 }), 'l1', 'float32', []);
  const slope = g.op('Add', [g.op('Mul', [diff, g.scalar('two', 2)]), g.op('Mul', [g.op('Sign', [diff]), g.scalar('l1_weight', l1Weight)])]);
  t.backward(recon, g.op('Div', [slope, count]));
  g.output(t.gradient(zq)!, 'd_zq', 'float32', ['n', s, s, D]);
  outputGradients(g, t, shapes);
  return g.toModel();
}

/** What one decoder run gives. */
export interface DecoderStep { mse: number; l1: number; dZq: Float32Array; grads: Map<string, Float32Array> }

/**
 * The three sessions of a VQGAN training step on onnxruntime, for weights of the shapes given.
 *
 * @example
 * const ort = await OrtVqganTrainer.create(config, shapesOf(weights), 0.5);
 * const { h, indices } = await ort.encode(weightsOf(weights, 'encoder'), pixels, n, codebook);
 */
export class OrtVqganTrainer {
  private constructor(
    private readonly config: VqganConfig,
    private readonly shapes: Record<VqganPart, ReadonlyMap<string, readonly number[]>>,
    private readonly sessions: { encode: OrtSession; encoder: OrtSession; decoder: OrtSession },
  ) {}

  static async create(config: VqganConfig, shapes: Record<VqganPart, ReadonlyMap<string, readonly number[]>>, l1Weight: number, opts: Pick<OrtSessionOptions, 'threads' | 'provider'> = {}): Promise<OrtVqganTrainer> {
    const load = (bytes: Uint8Array, name: string) => createOrtSession(bytes, { ...opts, spin: false, source: `the VQGAN ${name} training graph` });
    const sessions = {
      encode: await load(buildVqganEncoderGraph(config, shapes.encoder, false), 'encoder forward'),
      encoder: await load(buildVqganEncoderGraph(config, shapes.encoder, true), 'encoder backward'),
      decoder: await load(buildVqganDecoderGraph(config, shapes.decoder, l1Weight), 'decoder'),
    };
    return new OrtVqganTrainer(config, shapes, sessions);
  }

  get provider(): ExecutionProvider {
    return this.sessions.encoder.provider;
  }

  private feeds(part: VqganPart, weights: ReadonlyMap<string, Float32Array>): Record<string, OrtValue> {
    return float32Feeds(this.shapes[part], weights, `OrtVqganTrainer (${part} weights)`);
  }

  private pixels(data: Float32Array, n: number): OrtValue {
    const { resolution: S, in_channels: C } = this.config.ddconfig;
    if (data.length !== n * S * S * C) throw new RangeError(`OrtVqganTrainer: ${data.length} values for ${n} pictures of [${S}, ${S}, ${C}]`);
    return { type: 'float32', data, dims: [n, S, S, C] };
  }

  private latentDims(n: number): number[] {
    const s = this.config.ddconfig.resolution / 2 ** (this.config.ddconfig.ch_mult.length - 1);
    return [n, s, s, this.config.embed_dim];
  }

  /** h NHWC and each position's nearest code in `codebook` [codes, D]. */
  async encode(weights: ReadonlyMap<string, Float32Array>, pixels: Float32Array, n: number, codebook: Float32Array): Promise<{ h: Float32Array; indices: Int32Array }> {
    const out = await this.sessions.encode.run({
      ...this.feeds('encoder', weights), pixels: this.pixels(pixels, n),
      codebook: { type: 'float32', data: codebook, dims: [this.config.n_embed, this.config.embed_dim] },
    }, ['h', 'indices']);
    const indices = Int32Array.from(out.indices!.data as BigInt64Array, Number);
    return { h: out.h!.data as Float32Array, indices };
  }

  /** The reconstruction loss of decoding `zq` NHWC against `pixels`, and its gradients. */
  async decode(weights: ReadonlyMap<string, Float32Array>, zq: Float32Array, pixels: Float32Array, n: number): Promise<DecoderStep> {
    const out = await this.sessions.decoder.run({
      ...this.feeds('decoder', weights), pixels: this.pixels(pixels, n), zq: { type: 'float32', data: zq, dims: this.latentDims(n) },
    });
    return {
      mse: (out.mse!.data as Float32Array)[0]!, l1: (out.l1!.data as Float32Array)[0]!, dZq: out.d_zq!.data as Float32Array,
      grads: new Map([...this.shapes.decoder.keys()].map((path) => [path, out[gradName(path)]!.data as Float32Array])),
    };
  }

  /** Every encoder weight's gradient of Σ dh · h. */
  async encoderGradients(weights: ReadonlyMap<string, Float32Array>, pixels: Float32Array, n: number, dh: Float32Array): Promise<Map<string, Float32Array>> {
    const out = await this.sessions.encoder.run({
      ...this.feeds('encoder', weights), pixels: this.pixels(pixels, n), d_h: { type: 'float32', data: dh, dims: this.latentDims(n) },
    });
    return new Map([...this.shapes.encoder.keys()].map((path) => [path, out[gradName(path)]!.data as Float32Array]));
  }

  async release(): Promise<void> {
    for (const s of Object.values(this.sessions)) await s.release();
  }
}

/** The shapes of both parts' weights. */
export function vqganPartShapes(w: VqganWeights): Record<VqganPart, Map<string, readonly number[]>> {
  const of = (part: VqganPart) => new Map([...vqganPartTensors(w, part)].map(([path, t]) => [path, t.shape]));
  return { encoder: of('encoder'), decoder: of('decoder') };
}

/** Both parts' weights read back from tfjs, by path. */
export async function vqganPartValues(w: VqganWeights): Promise<Record<VqganPart, Map<string, Float32Array>>> {
  const of = async (part: VqganPart) => new Map(await Promise.all([...vqganPartTensors(w, part)].map(async ([path, t]) => [path, (await t.data()) as Float32Array] as const)));
  return { encoder: await of('encoder'), decoder: await of('decoder') };
}
