/**
 * The CLIP towers as ONNX graphs that take their weights as inputs, forward and backward, so the
 * demo CLIP's trainer (engine/demo/train-clip.ts --engine onnx) runs its heavy part on
 * onnxruntime: the forward graph gives the embeddings, the loss and its gradient w.r.t. the
 * embeddings are computed in tfjs (small: [batch, projection]), and the backward graph (the
 * forward again, then autodiff.ts's reverse pass) gives every weight's gradient. The maths is
 * clip.ts's, which matches Hugging Face's CLIPModel (test/engine/onnx/clip-train-onnx.test.ts
 * checks embeddings and gradients against it).
 *
 * Weights are named by their path in ClipWeights' tower objects (`layers.0.qkv.w`), in the
 * layout clip.ts keeps them: linears [in, out] with q/k/v stacked and q pre-scaled.
 *
 * On two cores the bundled recipe (64 pictures and their contrast twins, 64 captions and 53 label
 * captions a step) trains ~110 pictures/s this way, against 43 on tfjs-wasm with two worker
 * threads: ORT's kernels use the cores far better than wasm's, and one process needs no
 * gradient exchange. The backward graphs compute the forward pass again rather than take its
 * activations: handing them over (out of one session, through JS, into the other) measured
 * slower, 98 against 111 pictures/s over the recipe's first 200 steps.
 */
import type { ClipConfig, ClipTowerConfig } from '../models/config';
import { createOrtSession, float32Feeds, type ExecutionProvider, type OrtSession, type OrtSessionOptions, type OrtValue } from '../runtime/onnx';
import { Tape } from './autodiff';
import { OnnxGraph } from './graph';

export type TowerName = 'vision' | 'text';
/** A tower's weights by path, with their shapes (from the tensors themselves). */
export type TowerShapes = ReadonlyMap<string, readonly number[]>;
export type TowerValues = ReadonlyMap<string, Float32Array>;

/** Graph names. */
const EMBEDS = 'embeds';
const D_EMBEDS = 'd_embeds';
const gradName = (path: string) => `grad.${path}`;

function declare(g: OnnxGraph, t: Tape, shapes: TowerShapes) {
  return (path: string): string => {
    const shape = shapes.get(path);
    if (!shape) throw new Error(`CLIP training graph: no weight ${path}`);
    return t.param(g.input(path, 'float32', shape), shape);
  };
}

/** Pre-norm residual block on x [N, T, W]; `mask` [T, T] (additive) for the text tower. */
function block(t: Tape, p: (path: string) => string, l: number, x: string, c: ClipTowerConfig, mask?: string): string {
  const W = c.hiddenSize;
  const H = c.numAttentionHeads;
  const hd = W / H;
  const at = (k: string) => p(`layers.${l}.${k}`);
  const h = t.layerNorm(x, at('ln1.gamma'), at('ln1.beta'), W, c.layerNormEps);
  // q, k and v are stacked in one [W, 3W] linear (q pre-scaled by 1/√hd; see clip-weights.ts)
  const [wq, wk, wv] = t.split(at('qkv.w'), 1, [W, W, W]);
  const [bq, bk, bv] = t.split(at('qkv.b'), 0, [W, W, W]);
  // [N, T, W] -> [N, T, H, hd] -> [N, H, T, hd] (q, v) or [N, H, hd, T] (kᵀ)
  const heads = (v: string, perm: number[]) => t.transpose(t.reshape(v, [0, 0, H, hd]), perm);
  const q = heads(t.linear(h, wq!, bq), [0, 2, 1, 3]);
  const kT = heads(t.linear(h, wk!, bk), [0, 2, 3, 1]);
  const v = heads(t.linear(h, wv!, bv), [0, 2, 1, 3]);
  let scores = t.matmul(q, kT, 4); // [N, H, T, T]
  if (mask) scores = t.addConstant(scores, mask);
  const context = t.matmul(t.softmax(scores), v, 4); // [N, H, T, hd]
  // [N, H, T, hd] -> [N, T, H, hd] -> [N, T, W]
  const merged = t.reshape(t.transpose(context, [0, 2, 1, 3]), [0, 0, W]);
  const attended = t.add(x, t.linear(merged, at('out.w'), at('out.b')));
  if (c.hiddenAct !== 'quick_gelu') throw new Error(`CLIP training graph: only quick_gelu is implemented, the config has ${c.hiddenAct}`);
  const ln2 = t.layerNorm(attended, at('ln2.gamma'), at('ln2.beta'), W, c.layerNormEps);
  const mlp = t.linear(t.quickGelu(t.linear(ln2, at('fc1.w'), at('fc1.b'))), at('fc2.w'), at('fc2.b'));
  return t.add(attended, mlp);
}

/** Finish a graph: forward → the embeddings; backward → every weight's gradient. */
function finish(g: OnnxGraph, t: Tape, embeds: string, shapes: TowerShapes, projection: number, backward: boolean): Uint8Array {
  if (!backward) {
    g.output(embeds, EMBEDS, 'float32', ['n', projection]);
    return g.toModel();
  }
  t.backward(embeds, g.input(D_EMBEDS, 'float32', ['n', projection]));
  for (const [path, shape] of shapes) {
    const grad = t.gradient(path);
    if (!grad) throw new Error(`CLIP training graph: no gradient reaches ${path}`);
    g.output(grad, gradName(path), 'float32', shape);
  }
  return g.toModel();
}

/**
 * The image tower. Input `patches` [N, 1 + G, C·P·P + 1]: row 0 of each picture is the class
 * token's (zeros and a final 1), rows 1.. its flattened patches in (c, y, x) order with a final 0
 * (patchRows), so one matmul with [patch weights; class embedding] embeds all tokens.
 */
export function buildVisionTrainGraph(config: ClipConfig, shapes: TowerShapes, backward: boolean): Uint8Array {
  const c = config.vision;
  const W = c.hiddenSize;
  const tokens = (c.imageSize / c.patchSize) ** 2 + 1;
  const g = new OnnxGraph(`clip-vision-${backward ? 'backward' : 'forward'}`);
  const t = new Tape(g);
  const p = declare(g, t, shapes);
  const patches = g.input('patches', 'float32', ['n', tokens, c.numChannels * c.patchSize ** 2 + 1]);
  const embedW = t.concat([p('patch.w'), t.reshapeParam(p('classEmbedding'), [1, W])], 0); // [C·P·P + 1, W]
  let x = t.addBroadcast(t.linear(patches, embedW), p('positionEmbedding'), [0]); // [N, T, W]
  x = t.layerNorm(x, p('preLn.gamma'), p('preLn.beta'), W, c.layerNormEps);
  for (let l = 0; l < c.numHiddenLayers; l++) x = block(t, p, l, x, c);
  // the class token: [1, 1, T] one-hot at 0 · [N, T, W] -> [N, 1, W] -> [N, W]
  const first = new Float32Array(tokens);
  first[0] = 1;
  const pooled = t.reshape(t.matmul(g.init('class_token', first, [1, 1, tokens]), x, 3), [-1, W]);
  const embeds = t.linear(t.layerNorm(pooled, p('postLn.gamma'), p('postLn.beta'), W, c.layerNormEps), p('projection.w'));
  return finish(g, t, embeds, shapes, config.projectionDim, backward);
}

/**
 * The text tower. Inputs: `tokens` [N, T, vocab] one-hot rows of the token table, `positions`
 * [T, context] one-hot, `mask` [T, T] causal (0 or −1e9), `ends` [N, 1, T] one-hot at each
 * sequence's end token (textInputs builds all four).
 */
export function buildTextTrainGraph(config: ClipConfig, shapes: TowerShapes, backward: boolean): Uint8Array {
  const c = config.text;
  const W = c.hiddenSize;
  const vocab = shapes.get('tokenEmbedding')?.[0];
  if (!vocab) throw new Error('CLIP training graph: no weight tokenEmbedding');
  const g = new OnnxGraph(`clip-text-${backward ? 'backward' : 'forward'}`);
  const t = new Tape(g);
  const p = declare(g, t, shapes);
  const tokens = g.input('tokens', 'float32', ['n', 't', vocab]);
  const positions = g.input('positions', 'float32', ['t', c.maxPositionEmbeddings]);
  const mask = g.input('mask', 'float32', ['t', 't']);
  const ends = g.input('ends', 'float32', ['n', 1, 't']);
  // [N, T, vocab]·[vocab, W] + [T, context]·[context, W] -> [N, T, W]
  let x = t.addBroadcast(t.linear(tokens, p('tokenEmbedding')), t.linear(positions, p('positionEmbedding')), [0]);
  for (let l = 0; l < c.numHiddenLayers; l++) x = block(t, p, l, x, c, mask);
  // [N, 1, T]·[N, T, W] -> [N, 1, W] -> [N, W]; layer norm is per token, so pooling first is the same
  const pooled = t.reshape(t.matmul(ends, x, 3), [-1, W]);
  const embeds = t.linear(t.layerNorm(pooled, p('finalLn.gamma'), p('finalLn.beta'), W, c.layerNormEps), p('projection.w'));
  return finish(g, t, embeds, shapes, config.projectionDim, backward);
}

/**
 * NCHW pictures [N, C, S, S] -> the vision graph's `patches` [N, 1 + G, C·P·P + 1].
 *
 * @example
 * const rows = patchRows(pixels, 64, config.vision); // pixels: normalised, as for encodeImage
 */
export function patchRows(pixels: Float32Array, n: number, c: ClipConfig['vision']): Float32Array {
  const { numChannels: C, imageSize: S, patchSize: P } = c;
  const side = S / P;
  const width = C * P * P + 1;
  const tokens = side * side + 1;
  if (pixels.length !== n * C * S * S) throw new RangeError(`patchRows: ${pixels.length} values for ${n} pictures of [${C}, ${S}, ${S}]`);
  const out = new Float32Array(n * tokens * width);
  for (let i = 0; i < n; i++) {
    const base = i * tokens * width;
    out[base + width - 1] = 1; // the class token's row
    for (let py = 0; py < side; py++) for (let px = 0; px < side; px++) {
      let o = base + (1 + py * side + px) * width;
      for (let ch = 0; ch < C; ch++) for (let y = 0; y < P; y++) {
        const src = ((i * C + ch) * S + py * P + y) * S + px * P;
        for (let x = 0; x < P; x++) out[o++] = pixels[src + x]!;
      }
    }
  }
  return out;
}

/** Token ids [N, T] (tokenizer ids, 0-padded) -> the text graph's four inputs. */
export function textInputs(ids: Int32Array, n: number, T: number, rowOf: Int32Array, vocab: number, context: number) {
  if (ids.length !== n * T) throw new RangeError(`textInputs: ${ids.length} ids for [${n}, ${T}]`);
  if (T > context) throw new RangeError(`textInputs: ${T} tokens exceed the context of ${context}`);
  const tokens = new Float32Array(n * T * vocab);
  const ends = new Float32Array(n * T);
  for (let i = 0; i < n; i++) {
    let end = 0;
    for (let j = 0; j < T; j++) {
      const id = ids[i * T + j]!;
      tokens[(i * T + j) * vocab + rowOf[Math.min(Math.max(id, 0), rowOf.length - 1)]!] = 1;
      if (id > ids[i * T + end]!) end = j; // the first largest id: <|endoftext|>
    }
    ends[i * T + end] = 1;
  }
  const positions = new Float32Array(T * context);
  const mask = new Float32Array(T * T);
  for (let j = 0; j < T; j++) {
    positions[j * context + j] = 1;
    for (let k = j + 1; k < T; k++) mask[j * T + k] = -1e9;
  }
  return { tokens, positions, mask, ends };
}

/** Forward and backward sessions of both towers. */
export class OrtClipTowers {
  private constructor(
    private readonly config: ClipConfig,
    private readonly shapes: Record<TowerName, TowerShapes>,
    private readonly sessions: Record<TowerName, { forward: OrtSession; backward: OrtSession }>,
  ) {}

  /**
   * Build and load the four graphs for weights of these shapes, on `provider` (default:
   * `CLIP_STUDIO_ORT_PROVIDER`, else auto: CUDA when installed, else the CPU).
   */
  static async create(config: ClipConfig, shapes: Record<TowerName, TowerShapes>, opts: Pick<OrtSessionOptions, 'threads' | 'provider'> = {}): Promise<OrtClipTowers> {
    const load = (bytes: Uint8Array, name: string) => createOrtSession(bytes, { ...opts, spin: false, source: `the ${name} training graph` });
    const sessions = {
      vision: { forward: await load(buildVisionTrainGraph(config, shapes.vision, false), 'vision forward'), backward: await load(buildVisionTrainGraph(config, shapes.vision, true), 'vision backward') },
      text: { forward: await load(buildTextTrainGraph(config, shapes.text, false), 'text forward'), backward: await load(buildTextTrainGraph(config, shapes.text, true), 'text backward') },
    };
    return new OrtClipTowers(config, shapes, sessions);
  }

  /** Where the graphs run. */
  get provider(): ExecutionProvider {
    return this.sessions.vision.backward.provider;
  }

  private feeds(tower: TowerName, weights: TowerValues) {
    return float32Feeds(this.shapes[tower], weights, `OrtClipTowers (${tower} weights)`);
  }

  private inputs(tower: TowerName, input: ImageBatch | TextBatch): Record<string, OrtValue> {
    if (tower === 'vision') {
      const b = input as ImageBatch;
      const c = this.config.vision;
      const width = c.numChannels * c.patchSize ** 2 + 1;
      return { patches: { type: 'float32' as const, data: b.patches, dims: [b.n, b.patches.length / b.n / width, width] } };
    }
    const b = input as TextBatch;
    const vocab = this.shapes.text.get('tokenEmbedding')![0]!;
    return {
      tokens: { type: 'float32' as const, data: b.tokens, dims: [b.n, b.t, vocab] },
      positions: { type: 'float32' as const, data: b.positions, dims: [b.t, this.config.text.maxPositionEmbeddings] },
      mask: { type: 'float32' as const, data: b.mask, dims: [b.t, b.t] },
      ends: { type: 'float32' as const, data: b.ends, dims: [b.n, 1, b.t] },
    };
  }

  /** Unnormalised embeddings [n, projection]. */
  async embed(tower: TowerName, weights: TowerValues, input: ImageBatch | TextBatch): Promise<Float32Array> {
    const out = await this.sessions[tower].forward.run({ ...this.feeds(tower, weights), ...this.inputs(tower, input) }, [EMBEDS]);
    return out[EMBEDS]!.data as Float32Array;
  }

  /** Every weight's gradient of Σ d_embeds · embeds. */
  async gradients(tower: TowerName, weights: TowerValues, input: ImageBatch | TextBatch, dEmbeds: Float32Array): Promise<Map<string, Float32Array>> {
    const feeds = { ...this.feeds(tower, weights), ...this.inputs(tower, input), [D_EMBEDS]: { type: 'float32' as const, data: dEmbeds, dims: [input.n, this.config.projectionDim] } };
    const out = await this.sessions[tower].backward.run(feeds);
    return new Map([...this.shapes[tower].keys()].map((path) => [path, out[gradName(path)]!.data as Float32Array]));
  }

  async release(): Promise<void> {
    for (const s of Object.values(this.sessions)) {
      await s.forward.release();
      await s.backward.release();
    }
  }
}

export interface ImageBatch { n: number; patches: Float32Array }
export interface TextBatch extends ReturnType<typeof textInputs> { n: number; t: number }
