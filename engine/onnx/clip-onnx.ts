/**
 * CLIP's vision and text towers as ONNX graphs, built from a config and a Hugging Face
 * `CLIPModel` state dict — the same computation as engine/models/clip.ts (OpenAI CLIP
 * `model.py`, HF `modeling_clip.py`), for inference on onnxruntime.
 *
 * The graphs have the inputs and outputs of the standard HF ONNX exports, so a user-supplied
 * pair (vision_model.onnx, text_model.onnx) and ours are interchangeable:
 *   vision: pixel_values float32 [batch, C, R, R] (already `(x − mean) / std`) → image_embeds [batch, E]
 *   text:   input_ids int64 [batch, sequence] (sequence ≤ the context length) → text_embeds [batch, E]
 * Embeddings are unnormalised, as encodeImage/encodeText return them.
 *
 * Layout choices, for onnxruntime's CPU kernels: activations are kept 2-D as [B·T, W] between
 * blocks, so every projection is one Gemm (bias fused) against an [in, out] initializer
 * (transposed once here from PyTorch's [out, in]; ORT prepacks it); q, k, v are one stacked
 * Gemm with q pre-scaled by 1/√headDim; the patch embedding is the Conv itself
 * (stride = kernel), straight from the OIHW weight.
 */
import { ModelLoadError } from '../errors';
import type { StateDict } from '../io/host-tensor';
import { checkClipStateDict } from '../models/clip-weights';
import type { ClipActivation, ClipConfig, ClipTowerConfig } from '../models/config';
import { MS_DOMAIN, OnnxGraph, floatAttr } from './graph';

/** Bump when the graphs change: it is part of the disk cache key (cache.ts). */
export const CLIP_ONNX_BUILDER_VERSION = 5;

/** The names of the standard HF exports' inputs and outputs, which our graphs use too. */
export const VISION_INPUT = 'pixel_values';
export const VISION_OUTPUT = 'image_embeds';
export const TEXT_INPUT = 'input_ids';
export const TEXT_OUTPUT = 'text_embeds';

/** A pruned token table's row list (the demo model); see clip-weights.ts. */
const TOKEN_IDS_KEY = 'text_model.embeddings.token_ids';

/** Added to attention scores a token may not see; large enough that exp() underflows to 0. */
const MASKED = -1e9;

// ---- host helpers ---------------------------------------------------------------------------

function f32(tensors: StateDict, key: string): Float32Array {
  const t = tensors.get(key);
  if (!t || !(t.data instanceof Float32Array)) throw new ModelLoadError(`CLIP weights: ${key} is missing or not floating-point`);
  return t.data;
}

/** A row-major [rows, cols] matrix -> its [cols, rows] transpose. */
function transposeHost(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[base + c]!;
  }
  return out;
}

/** tokenizer id → row of a pruned table whose row r holds id tokenIds[r] (-1: unknown). One extra entry stands for every larger id. */
function tokenRowTable(tokenIds: ArrayLike<number>): BigInt64Array {
  let maxId = 0;
  let unk = 0;
  for (let r = 0; r < tokenIds.length; r++) {
    if (tokenIds[r]! > maxId) maxId = tokenIds[r]!;
    if (tokenIds[r] === -1) unk = r;
  }
  const table = new BigInt64Array(maxId + 2).fill(BigInt(unk));
  for (let r = 0; r < tokenIds.length; r++) if (tokenIds[r]! >= 0) table[tokenIds[r]!] = BigInt(r);
  return table;
}

// ---- layers ---------------------------------------------------------------------------------

/**
 * int8 weights for onnxruntime's DynamicQuantizeMatMul: a [K, N] matrix quantised per output
 * column, symmetric (zero point 0), to ±`levels`. 63 rather than 127 (7 bits, ORT's
 * "reduce_range"): x86's AVX2 u8·s8 kernel adds pairs of products in int16 (vpmaddubsw),
 * and 255·127·2 overflows it where 255·63·2 does not.
 */
export function quantizeColumns(w: Float32Array, K: number, N: number, levels = 63): { q: Int8Array; scale: Float32Array } {
  const amax = new Float32Array(N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) amax[n] = Math.max(amax[n]!, Math.abs(w[k * N + n]!));
  const scale = amax.map((a) => (a > 0 ? a / levels : 1));
  const q = new Int8Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) q[k * N + n] = Math.max(-levels, Math.min(levels, Math.round(w[k * N + n]! / scale[n]!)));
  return { q, scale };
}

/** How a tower's projections are computed: float32 Gemm, or int8 weights with dynamically quantised activations. */
export type ClipOnnxPrecision = 'fp32' | 'int8';

class ClipGraph {
  private readonly consts = new Map<string, string>();
  /** The int64 shape [B, T, heads, hd] that splits [B·T, W] activations into heads (set per tower). */
  headsShape = '';
  /** The int64 shape [-1, T, W] of a tower with a fixed token count (vision), for fused attention. */
  seqShape = '';
  constructor(readonly g: OnnxGraph, readonly tensors: StateDict, readonly precision: ClipOnnxPrecision = 'fp32') {}

  /**
   * x [rows, K] · w [K, N] + bias [N]. fp32: one Gemm (bias fused). int8: onnxruntime's
   * DynamicQuantizeMatMul, which quantises x to uint8 per call (its own min/max), multiplies
   * in integers against the per-column int8 weights and rescales to float with the bias added.
   */
  project(x: string, prefix: string, w: Float32Array, K: number, N: number, bias: Float32Array | undefined, quantize = true): string {
    const g = this.g;
    if (this.precision === 'int8' && quantize) {
      const { q, scale } = quantizeColumns(w, K, N);
      const inputs = [x, g.init(`${prefix}.weight_q`, q, [K, N]), g.init(`${prefix}.weight_scale`, scale, [N])];
      if (bias) inputs.push('', g.init(`${prefix}.bias`, bias, [N])); // '': no zero point (symmetric)
      return g.node('DynamicQuantizeMatMul', inputs, {}, { name: prefix, domain: MS_DOMAIN })[0]!;
    }
    const inputs = [x, g.init(`${prefix}.weight_t`, w, [K, N])];
    if (bias) inputs.push(g.init(`${prefix}.bias`, bias, [N]));
    return g.op('Gemm', inputs, {}, prefix);
  }

  /** An int64 constant shared by every layer that needs it. */
  ints(name: string, values: readonly number[], scalar = false): string {
    const key = `${name}:${values.join(',')}:${scalar}`;
    let v = this.consts.get(key);
    if (!v) this.consts.set(key, (v = this.g.ints(name, values, scalar)));
    return v;
  }

  /** A float scalar constant shared by every layer that needs it. */
  scalar(name: string, value: number): string {
    const key = `${name}:${value}`;
    let v = this.consts.get(key);
    if (!v) this.consts.set(key, (v = this.g.scalar(name, value)));
    return v;
  }

  layerNorm(x: string, prefix: string, width: number, eps: number): string {
    const gamma = this.g.init(`${prefix}.weight`, f32(this.tensors, `${prefix}.weight`), [width]);
    const beta = this.g.init(`${prefix}.bias`, f32(this.tensors, `${prefix}.bias`), [width]);
    return this.g.op('LayerNormalization', [x, gamma, beta], { axis: -1, epsilon: floatAttr(eps) }, prefix);
  }

  /**
   * x·wᵀ + b for 2-D x [rows, in], from a stored [out, in] weight (HF layout): a Gemm against
   * the [in, out] transpose, so the bias is added inside the GEMM rather than by a pass of its own.
   */
  linear(x: string, prefix: string, bias = true, quantize = true): string {
    const t = this.tensors.get(`${prefix}.weight`)!;
    const [out, inp] = [t.shape[0]!, t.shape[1]!];
    const w = transposeHost(f32(this.tensors, `${prefix}.weight`), out, inp); // [out, in] -> [in, out]
    return this.project(x, prefix, w, inp, out, bias ? f32(this.tensors, `${prefix}.bias`) : undefined, quantize);
  }

  activation(x: string, act: ClipActivation, prefix: string): string {
    const g = this.g;
    if (act === 'quick_gelu') {
      // x · sigmoid(1.702 x)
      const s = g.op('Sigmoid', [g.op('Mul', [x, this.scalar('quick_gelu_k', 1.702)], {}, `${prefix}.scale`)], {}, `${prefix}.sigmoid`);
      return g.op('Mul', [x, s], {}, `${prefix}.quick_gelu`);
    }
    // HF "gelu" is the exact erf form: 0.5 · x · (1 + erf(x / √2))
    const erf = g.op('Erf', [g.op('Mul', [x, this.scalar('gelu_k', Math.SQRT1_2)])]);
    const half = g.op('Mul', [x, this.scalar('half', 0.5)]);
    return g.op('Mul', [half, g.op('Add', [erf, this.scalar('one', 1)])], {}, `${prefix}.gelu`);
  }

  /**
   * Multi-head self-attention on [B·T, W]; `mask` ([T, T], additive) makes it causal.
   * q, k and v are one Gemm against the stacked [W, 3W] weight, q's part scaled by 1/√hd.
   */
  attention(x: string, prefix: string, c: ClipTowerConfig, mask: string | undefined): string {
    const g = this.g;
    const W = c.hiddenSize;
    const H = c.numAttentionHeads;
    const hd = W / H;
    const scale = 1 / Math.sqrt(hd);
    const a = `${prefix}.self_attn`;
    const stacked = new Float32Array(W * 3 * W); // [W, 3W]: columns q | k | v
    const bias = new Float32Array(3 * W);
    ['q_proj', 'k_proj', 'v_proj'].forEach((proj, i) => {
      const s = i === 0 ? scale : 1;
      const w = f32(this.tensors, `${a}.${proj}.weight`); // [out, in]
      const b = f32(this.tensors, `${a}.${proj}.bias`);
      for (let o = 0; o < W; o++) {
        for (let k = 0; k < W; k++) stacked[k * 3 * W + i * W + o] = w[o * W + k]! * s;
        bias[i * W + o] = b[o]! * s;
      }
    });
    const qkv = this.project(x, `${a}.qkv`, stacked, W, 3 * W, bias);
    const [q, k, v] = g.node('Split', [qkv], { axis: -1 }, { outputs: 3, name: `${a}.split` }) as [string, string, string];
    if (this.precision === 'int8' && !mask && this.seqShape) {
      // onnxruntime's fused attention (com.microsoft MultiHeadAttention) for the int8 vision
      // tower, in place of the reshapes, transposes, two matmuls and softmax below (measured
      // ~3 % of that tower's time; its packed-qkv form would save the Split too, but ORT's CPU
      // kernel does not implement it). q is already scaled, hence scale 1.
      // [B·T, W] -> [B, T, W] each; out [B, T, W] -> [B·T, W]
      const [q3, k3, v3] = [q, k, v].map((t) => g.op('Reshape', [t, this.seqShape]));
      const context = g.node('MultiHeadAttention', [q3!, k3!, v3!], { num_heads: H, scale: floatAttr(1) }, { name: `${a}.mha`, domain: MS_DOMAIN })[0]!;
      return this.linear(g.op('Reshape', [context, this.ints('rows_shape', [-1, W])], {}, `${a}.merged`), `${a}.out_proj`);
    }
    const heads = this.headsShape;
    // [B·T, W] -> [B, T, H, hd] -> [B, H, T, hd] (k: [B, H, hd, T], ready for q·kᵀ)
    const qh = g.op('Transpose', [g.op('Reshape', [q, heads])], { perm: [0, 2, 1, 3] }, `${a}.q`);
    const kt = g.op('Transpose', [g.op('Reshape', [k, heads])], { perm: [0, 2, 3, 1] }, `${a}.k_t`);
    const vh = g.op('Transpose', [g.op('Reshape', [v, heads])], { perm: [0, 2, 1, 3] }, `${a}.v`);
    let scores = g.op('MatMul', [qh, kt], {}, `${a}.scores`); // [B, H, T, T]
    if (mask) scores = g.op('Add', [scores, mask], {}, `${a}.masked`);
    const probs = g.op('Softmax', [scores], { axis: -1 }, `${a}.probs`);
    const context = g.op('MatMul', [probs, vh], {}, `${a}.context`); // [B, H, T, hd]
    // [B, H, T, hd] -> [B, T, H, hd] -> [B·T, W]
    const merged = g.op('Reshape', [g.op('Transpose', [context], { perm: [0, 2, 1, 3] }), this.ints('rows_shape', [-1, W])], {}, `${a}.merged`);
    return this.linear(merged, `${a}.out_proj`);
  }

  /** Pre-norm residual block: x + attn(ln1(x)), then x + fc2(act(fc1(ln2(x)))). */
  block(x: string, prefix: string, c: ClipTowerConfig, mask: string | undefined): string {
    const g = this.g;
    const h = g.op('Add', [x, this.attention(this.layerNorm(x, `${prefix}.layer_norm1`, c.hiddenSize, c.layerNormEps), prefix, c, mask)], {}, `${prefix}.residual1`);
    const up = this.activation(this.linear(this.layerNorm(h, `${prefix}.layer_norm2`, c.hiddenSize, c.layerNormEps), `${prefix}.mlp.fc1`), c.hiddenAct, `${prefix}.mlp`);
    return g.op('Add', [h, this.linear(up, `${prefix}.mlp.fc2`)], {}, `${prefix}.residual2`);
  }
}

// ---- towers ---------------------------------------------------------------------------------

/**
 * The vision tower as an ONNX model: pixel_values [batch, C, R, R] → image_embeds [batch, E].
 * The state dict is checked against the config first (a ModelLoadError names a bad key).
 *
 * @example
 * writeFileSync('vision_model.onnx', buildClipVisionOnnx(config, stateDict));
 */
export function buildClipVisionOnnx(config: ClipConfig, tensors: StateDict, opts: { check?: boolean; precision?: ClipOnnxPrecision } = {}): Uint8Array {
  if (opts.check ?? true) checkClipStateDict(tensors, config);
  const c = config.vision;
  const precision = opts.precision ?? 'fp32';
  const g = new OnnxGraph('clip_vision');
  const b = new ClipGraph(g, tensors, precision);
  const W = c.hiddenSize;
  const P = c.patchSize;
  const side = c.imageSize / P;
  const tokens = side * side + 1;
  const pixels = g.input(VISION_INPUT, 'float32', ['batch', c.numChannels, c.imageSize, c.imageSize]);

  const patchKey = 'vision_model.embeddings.patch_embedding.weight';
  let patches: string; // [B, patches, W]
  if (precision === 'int8') {
    // The patch embedding as a matmul, so it runs in int8 too (the Conv was ~6 % of the int8
    // tower's time): [B, C, R, R] -> [B, C, side, P, side, P] -> [B, side, side, C, P, P] -> [B·patches, C·P·P]
    const K = c.numChannels * P * P;
    const split = g.op('Reshape', [pixels, g.ints('patch_grid', [0, c.numChannels, side, P, side, P])]);
    const rowsOfPatches = g.op('Reshape', [g.op('Transpose', [split], { perm: [0, 2, 4, 1, 3, 5] }), g.ints('patch_rows', [-1, K])], {}, 'patch_rows');
    // OIHW [W, C·P·P] -> [C·P·P, W]
    const w = transposeHost(f32(tensors, patchKey), W, K);
    patches = g.op('Reshape', [b.project(rowsOfPatches, 'patch_embedding', w, K, W, undefined), g.ints('patch_seq', [-1, side * side, W])], {}, 'patches');
  } else {
    const patchW = g.init(patchKey, f32(tensors, patchKey), [W, c.numChannels, P, P]);
    const conv = g.op('Conv', [pixels, patchW], { kernel_shape: [P, P], strides: [P, P] }, 'patch_embedding'); // [B, W, side, side]
    // [B, W, side, side] -> [B, W, patches] -> [B, patches, W]
    patches = g.op('Transpose', [g.op('Reshape', [conv, g.ints('patch_shape', [0, W, -1])])], { perm: [0, 2, 1] }, 'patches');
  }
  // class token [W] -> [B, 1, W]: expanded to the batch read off the input's shape
  const batch = g.op('Shape', [pixels], { start: 0, end: 1 }, 'batch'); // [1] = [B]
  const clsShape = g.op('Concat', [batch, g.ints('one_w', [1, W])], { axis: 0 }, 'cls_shape');
  const cls = g.op('Expand', [g.init('vision_model.embeddings.class_embedding', f32(tensors, 'vision_model.embeddings.class_embedding'), [1, 1, W]), clsShape], {}, 'cls');
  const seq = g.op('Concat', [cls, patches], { axis: 1 }, 'tokens'); // [B, 1 + patches, W]
  const pos = g.init('vision_model.embeddings.position_embedding.weight', f32(tensors, 'vision_model.embeddings.position_embedding.weight'), [tokens, W]);
  // [B, T, W] -> [B·T, W]: every projection is then one 2-D Gemm
  const rows = g.op('Reshape', [g.op('Add', [seq, pos], {}, 'embedded'), b.ints('rows_shape', [-1, W])], {}, 'rows');
  b.headsShape = g.op('Concat', [batch, g.ints('heads_dims', [tokens, c.numAttentionHeads, W / c.numAttentionHeads])], { axis: 0 }, 'heads_shape');
  if (precision === 'int8') b.seqShape = g.ints('seq_shape3', [-1, tokens, W]); // fused attention's [B, T, W]
  let x = b.layerNorm(rows, 'vision_model.pre_layrnorm', W, c.layerNormEps);
  for (let l = 0; l < c.numHiddenLayers; l++) x = b.block(x, `vision_model.encoder.layers.${l}`, c, undefined);
  // class token: [B·T, W] -> [B, T, W] -> [B, W]
  const pooled = g.op('Gather', [g.op('Reshape', [x, g.ints('seq_shape', [-1, tokens, W])]), g.ints('cls_index', [0], true)], { axis: 1 }, 'pooled');
  // The projection stays float32 in either precision: one row per image, a negligible cost.
  const embeds = b.linear(b.layerNorm(pooled, 'vision_model.post_layernorm', W, c.layerNormEps), 'visual_projection', false, false);
  g.output(embeds, VISION_OUTPUT, 'float32', ['batch', config.projectionDim]);
  return g.toModel({
    producerVersion: String(CLIP_ONNX_BUILDER_VERSION),
    docString: `CLIP vision tower (CLIP Studio)${precision === 'int8' ? ', int8 projections (DynamicQuantizeMatMul)' : ''}`,
    metadata: { precision },
  });
}

/**
 * The text tower as an ONNX model: input_ids int64 [batch, sequence] → text_embeds [batch, E],
 * pooled at each row's largest id (the first `<|endoftext|>`), as OpenAI's `encode_text`.
 * A pruned token table (the demo model's `token_ids`) maps tokenizer ids to rows first.
 *
 * @example
 * writeFileSync('text_model.onnx', buildClipTextOnnx(config, stateDict));
 */
export function buildClipTextOnnx(config: ClipConfig, tensors: StateDict, opts: { check?: boolean } = {}): Uint8Array {
  if (opts.check ?? true) checkClipStateDict(tensors, config);
  const c = config.text;
  const g = new OnnxGraph('clip_text');
  const b = new ClipGraph(g, tensors);
  const W = c.hiddenSize;
  const ctx = c.maxPositionEmbeddings;
  const ids = g.input(TEXT_INPUT, 'int64', ['batch', 'sequence']);

  const tableKey = 'text_model.embeddings.token_embedding.weight';
  const table = tensors.get(tableKey)!;
  const vocab = table.shape[0]!;
  const tokenIds = tensors.get(TOKEN_IDS_KEY);
  let rows = ids;
  if (tokenIds) {
    // Pruned table: tokenizer id -> row; ids past the table's end share its last entry (unknown).
    const map = tokenRowTable(tokenIds.data);
    const clipped = g.op('Clip', [ids, g.ints('id_min', [0], true), g.ints('id_max', [map.length - 1], true)], {}, 'ids_clipped');
    rows = g.op('Gather', [g.init('token_rows', map, [map.length]), clipped], { axis: 0 }, 'token_rows');
  }
  const embedded = g.op('Gather', [g.init(tableKey, f32(tensors, tableKey), [vocab, W]), rows], { axis: 0 }, 'token_embedding'); // [B, T, W]
  // positions and the causal mask, cut to this call's sequence length T
  const seqLen = g.op('Shape', [ids], { start: 1, end: 2 }, 'seq_len'); // [1] = [T]
  const zero = g.ints('zero', [0]);
  const pos = g.op('Slice', [g.init('text_model.embeddings.position_embedding.weight', f32(tensors, 'text_model.embeddings.position_embedding.weight'), [ctx, W]), zero, seqLen, zero], {}, 'positions');
  const causal = new Float32Array(ctx * ctx);
  for (let i = 0; i < ctx; i++) for (let j = i + 1; j < ctx; j++) causal[i * ctx + j] = MASKED; // token i sees 0..i
  const seqLen2 = g.op('Concat', [seqLen, seqLen], { axis: 0 }, 'mask_end');
  const mask = g.op('Slice', [g.init('causal_mask', causal, [ctx, ctx]), g.ints('zero2', [0, 0]), seqLen2, g.ints('axes01', [0, 1])], {}, 'mask'); // [T, T]
  // [B, T, W] -> [B·T, W]: every projection is then one 2-D Gemm
  const idsShape = g.op('Shape', [ids], {}, 'ids_shape'); // [B, T]
  b.headsShape = g.op('Concat', [idsShape, g.ints('heads_dims', [c.numAttentionHeads, W / c.numAttentionHeads])], { axis: 0 }, 'heads_shape');
  let x = g.op('Reshape', [g.op('Add', [embedded, pos], {}, 'embedded'), b.ints('rows_shape', [-1, W])], {}, 'rows');
  for (let l = 0; l < c.numHiddenLayers; l++) x = b.block(x, `text_model.encoder.layers.${l}`, c, mask);
  // Pool at argmax(ids) per row: indices [B, 1] -> [B, 1, 1] -> [B, 1, W], GatherElements on T of [B, T, W].
  const seq3 = g.op('Reshape', [x, g.op('Concat', [idsShape, g.ints('width', [W])], { axis: 0 })], {}, 'hidden'); // [B, T, W]
  const end = g.op('Unsqueeze', [g.op('ArgMax', [ids], { axis: 1, keepdims: 1, select_last_index: 0 }, 'eot'), g.ints('axis2', [2])]);
  const index = g.op('Expand', [end, g.ints('index_shape', [1, 1, W])], {}, 'eot_index');
  const picked = g.op('Reshape', [g.op('GatherElements', [seq3, index], { axis: 1 }), g.ints('pooled_shape', [-1, W])], {}, 'pooled'); // [B, W]
  // Layer norm is per token, so normalising only the pooled rows equals HF's norm-then-pool.
  const embeds = b.linear(b.layerNorm(picked, 'text_model.final_layer_norm', W, c.layerNormEps), 'text_projection', false);
  g.output(embeds, TEXT_OUTPUT, 'float32', ['batch', config.projectionDim]);
  return g.toModel({ producerVersion: String(CLIP_ONNX_BUILDER_VERSION), docString: 'CLIP text tower (CLIP Studio)' });
}

/**
 * Multiply-adds ×2 of the vision tower's matmuls per image (patch conv, q/k/v, attention,
 * output, MLP, projection) — what the benchmark divides by time to report GFLOP/s.
 */
export function clipVisionFlops(config: ClipConfig): number {
  const c = config.vision;
  const W = c.hiddenSize;
  const patches = (c.imageSize / c.patchSize) ** 2;
  const T = patches + 1;
  const perLayer = 2 * T * W * (3 * W) + 2 * 2 * T * T * W + 2 * T * W * W + 2 * 2 * T * W * c.intermediateSize;
  return 2 * patches * c.numChannels * c.patchSize ** 2 * W + c.numHiddenLayers * perLayer + 2 * W * config.projectionDim;
}

/** The same count for the text tower at sequence length `tokens` (default: the context length). */
export function clipTextFlops(config: ClipConfig, tokens = config.text.maxPositionEmbeddings): number {
  const c = config.text;
  const W = c.hiddenSize;
  const perLayer = 2 * tokens * W * (3 * W) + 2 * 2 * tokens * tokens * W + 2 * tokens * W * W + 2 * 2 * tokens * W * c.intermediateSize;
  return c.numHiddenLayers * perLayer + 2 * W * config.projectionDim;
}
