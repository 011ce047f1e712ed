/**
 * CLIP weights: the Hugging Face `CLIPModel` state-dict names (the layout of the released
 * openai/clip-vit-base-patch32 safetensors), the shape every one must have given the config,
 * and their import into tfjs tensors. The forward pass lives in clip.ts.
 *
 * Every matrix is transposed once at load, from PyTorch's [out, in] (and the patch conv's OIHW)
 * to [in, out], so the forward pass is plain `x·w`. Measured on tfjs-wasm 4.22 (2 threads):
 * `matMul(x, w, false, true)` (transposeB) is ~10× slower than `matMul(x, w)`, transposeA ~30×,
 * and the fused matMul is *wrong* (errors ~1) when transposeB and a bias are combined.
 * The vision tower also keeps the stored [out, in] matrices (`wT`): the backward pass of
 * `x·w` w.r.t. x is `dy·wᵀ`, and generation backpropagates through the image tower every step.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelLoadError } from '../errors';
import { numel, type StateDict } from '../io/host-tensor';
import { checkStateDict, readStateDict } from '../io/weights';
import { tf } from '../runtime/tf';
import type { ClipConfig, ClipTowerConfig } from './config';

/** y = x·w + b, with w [in, out] (transposed from PyTorch's [out, in] at load). */
export interface LinearWeights {
  w: tf.Tensor2D;
  b?: tf.Tensor1D;
  /** w's transpose [out, in], kept where gradients w.r.t. x are needed (the vision tower). */
  wT?: tf.Tensor2D;
}

export interface LayerNormWeights {
  gamma: tf.Tensor1D;
  beta: tf.Tensor1D;
}

/** One pre-norm residual block: x + attn(ln1(x)), then x + mlp(ln2(x)). */
export interface ClipBlockWeights {
  ln1: LayerNormWeights;
  /**
   * q, k and v projections stacked into one [width, 3·width] linear so a block does one matmul
   * instead of three. The q rows (weight and bias) are pre-multiplied by 1/√headDim, the
   * scaling HF applies to q right after its projection.
   */
  qkv: LinearWeights;
  out: LinearWeights;
  ln2: LayerNormWeights;
  fc1: LinearWeights;
  fc2: LinearWeights;
}

export interface ClipVisionWeights {
  /**
   * The bias-free patch conv as a linear [C·P·P, width]: OIHW [width, C, P, P] flattened to
   * [width, C·P·P] (the (c, y, x) order the patches are flattened in too), then transposed.
   * A conv whose stride equals its kernel is a matmul over flattened, non-overlapping patches.
   */
  patch: LinearWeights;
  classEmbedding: tf.Tensor1D;
  /** [1 + patches, width] */
  positionEmbedding: tf.Tensor2D;
  preLn: LayerNormWeights;
  layers: ClipBlockWeights[];
  postLn: LayerNormWeights;
  /** visual_projection, [width, embed] (bias-free). */
  projection: LinearWeights;
}

export interface ClipTextWeights {
  /** [vocab, width] */
  tokenEmbedding: tf.Tensor2D;
  /**
   * With a pruned vocabulary (config `prunedVocab`): tokenizer id → row of tokenEmbedding,
   * int32 [maxId + 2]. Ids past the end are clamped to the last entry, which is the unknown row.
   */
  tokenRows?: tf.Tensor1D;
  /** [context, width] */
  positionEmbedding: tf.Tensor2D;
  layers: ClipBlockWeights[];
  finalLn: LayerNormWeights;
  /** text_projection, [width, embed] (bias-free). */
  projection: LinearWeights;
}

/** Every tensor of a CLIP model, plus the config the forward functions read their sizes from. */
export interface ClipWeights {
  config: ClipConfig;
  vision: ClipVisionWeights;
  text: ClipTextWeights;
  /** log of the softmax temperature; logits are scaled by exp(logitScale). */
  logitScale: tf.Scalar;
  /**
   * Every weight is a tf.Variable and the forward pass gives gradients w.r.t. the weights too
   * (training the demo model, engine/demo/train-clip.ts); otherwise weights are constants.
   */
  trainable?: boolean;
}

/** The state-dict key listing the tokenizer id of each row of a pruned token table (-1: unknown). */
export const TOKEN_IDS_KEY = 'text_model.embeddings.token_ids';

function towerShapes(prefix: string, c: ClipTowerConfig, into: Map<string, number[]>): void {
  const W = c.hiddenSize;
  const I = c.intermediateSize;
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `${prefix}.encoder.layers.${l}`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      into.set(`${p}.self_attn.${proj}.weight`, [W, W]);
      into.set(`${p}.self_attn.${proj}.bias`, [W]);
    }
    into.set(`${p}.layer_norm1.weight`, [W]).set(`${p}.layer_norm1.bias`, [W]);
    into.set(`${p}.mlp.fc1.weight`, [I, W]).set(`${p}.mlp.fc1.bias`, [I]);
    into.set(`${p}.mlp.fc2.weight`, [W, I]).set(`${p}.mlp.fc2.bias`, [W]);
    into.set(`${p}.layer_norm2.weight`, [W]).set(`${p}.layer_norm2.bias`, [W]);
  }
}

/**
 * The name and shape of every tensor a CLIPModel with this config has.
 *
 * @example
 * expectedClipShapes(config).get('visual_projection.weight'); // [projection_dim, vision hidden_size]
 */
export function expectedClipShapes(config: ClipConfig): Map<string, number[]> {
  const { vision: v, text: t, projectionDim: E } = config;
  const patchesPerSide = v.imageSize / v.patchSize;
  const m = new Map<string, number[]>();
  m.set('vision_model.embeddings.class_embedding', [v.hiddenSize]);
  m.set('vision_model.embeddings.patch_embedding.weight', [v.hiddenSize, v.numChannels, v.patchSize, v.patchSize]);
  m.set('vision_model.embeddings.position_embedding.weight', [1 + patchesPerSide ** 2, v.hiddenSize]);
  m.set('vision_model.pre_layrnorm.weight', [v.hiddenSize]).set('vision_model.pre_layrnorm.bias', [v.hiddenSize]); // sic: upstream spelling
  towerShapes('vision_model', v, m);
  m.set('vision_model.post_layernorm.weight', [v.hiddenSize]).set('vision_model.post_layernorm.bias', [v.hiddenSize]);
  m.set('visual_projection.weight', [E, v.hiddenSize]);
  m.set('text_model.embeddings.token_embedding.weight', [t.vocabSize, t.hiddenSize]);
  if (t.prunedVocab) m.set(TOKEN_IDS_KEY, [t.vocabSize]);
  m.set('text_model.embeddings.position_embedding.weight', [t.maxPositionEmbeddings, t.hiddenSize]);
  towerShapes('text_model', t, m);
  m.set('text_model.final_layer_norm.weight', [t.hiddenSize]).set('text_model.final_layer_norm.bias', [t.hiddenSize]);
  m.set('text_projection.weight', [E, t.hiddenSize]);
  m.set('logit_scale', []);
  return m;
}

/**
 * Check a state dict against the config (io/weights `checkStateDict`): every expected key present
 * with its shape, and no key the architecture lacks except training-only buffers such as HF's
 * `position_ids`, which are returned. Throws a ModelLoadError naming the first bad key.
 */
export function checkClipStateDict(tensors: StateDict, config: ClipConfig, source = 'CLIP weights'): string[] {
  const expected = expectedClipShapes(config);
  const { ignored } = checkStateDict(tensors, expected, { modelName: source });
  for (const key of expected.keys()) {
    const t = tensors.get(key)!;
    if (key === TOKEN_IDS_KEY) {
      checkTokenIds(t.data, t.dtype, source);
      continue;
    }
    if (t.dtype !== 'float32') throw new ModelLoadError(`${source}: ${key} is ${t.storedAs}, expected a floating-point type`);
  }
  return ignored;
}

function checkTokenIds(data: ArrayLike<number>, dtype: string, source: string): void {
  if (dtype !== 'int32') throw new ModelLoadError(`${source}: ${TOKEN_IDS_KEY} must hold integers, got ${dtype}`);
  const seen = new Set<number>();
  for (let i = 0; i < data.length; i++) {
    const id = data[i]!;
    if (id < -1 || seen.has(id)) {
      throw new ModelLoadError(`${source}: ${TOKEN_IDS_KEY}[${i}] is ${id}: ids must be distinct tokenizer ids, or -1 once for the unknown-token row`);
    }
    seen.add(id);
  }
  if (!seen.has(-1)) throw new ModelLoadError(`${source}: ${TOKEN_IDS_KEY} has no unknown-token row (-1)`);
}

/**
 * tokenizer id → row, for a pruned table whose row r holds id `tokenIds[r]` (-1: the unknown
 * row). One entry past the largest listed id stands for every id beyond it (see encodeText).
 */
export function tokenRowTable(tokenIds: ArrayLike<number>): Int32Array {
  let maxId = 0;
  let unk = 0;
  for (let r = 0; r < tokenIds.length; r++) {
    if (tokenIds[r]! > maxId) maxId = tokenIds[r]!;
    if (tokenIds[r] === -1) unk = r;
  }
  const table = new Int32Array(maxId + 2).fill(unk);
  for (let r = 0; r < tokenIds.length; r++) if (tokenIds[r]! >= 0) table[tokenIds[r]!] = r;
  return table;
}

/**
 * Turn a checked state dict into tfjs tensors (which the caller owns: see disposeClipWeights).
 * `trainable` makes every weight a tf.Variable (for training; see ClipWeights.trainable).
 */
export function clipWeightsFromStateDict(tensors: StateDict, config: ClipConfig, source?: string, opts: { trainable?: boolean } = {}): ClipWeights {
  checkClipStateDict(tensors, config, source);
  const trainable = opts.trainable ?? false;
  const created: tf.Tensor[] = [];
  const host = (key: string) => tensors.get(key)!;
  const keep = <T extends tf.Tensor>(t: T): T => {
    if (!trainable || t.dtype !== 'float32') { created.push(t); return t; }
    const v = tf.variable(t, true);
    t.dispose();
    created.push(v);
    return v as unknown as T;
  };
  const t1 = (key: string) => keep(tf.tensor1d(host(key).data as Float32Array));
  const t2 = (key: string) => keep(tf.tensor2d(host(key).data as Float32Array, host(key).shape as [number, number]));
  const ln = (p: string): LayerNormWeights => ({ gamma: t1(`${p}.weight`), beta: t1(`${p}.bias`) });
  /** A linear from a stored [out, in] matrix: w = its transpose [in, out], plus wT = itself if `keepT`. */
  const fromStored = (stored: Float32Array, out: number, inp: number, bias: Float32Array | undefined, keepT: boolean): LinearWeights => ({
    w: keep(tf.tensor2d(transposeHost(stored, out, inp), [inp, out])),
    ...(bias ? { b: keep(tf.tensor1d(bias)) } : {}),
    ...(keepT && !trainable ? { wT: keep(tf.tensor2d(stored, [out, inp])) } : {}),
  });
  const lin = (p: string, keepT: boolean, bias = true): LinearWeights => {
    const { data, shape } = host(`${p}.weight`);
    const [out, inp] = [shape[0]!, numel(shape) / shape[0]!]; // conv OIHW flattens to [O, I·H·W]
    return fromStored(data as Float32Array, out, inp, bias ? (host(`${p}.bias`).data as Float32Array) : undefined, keepT);
  };

  const block = (p: string, c: ClipTowerConfig, keepT: boolean): ClipBlockWeights => {
    const scale = 1 / Math.sqrt(c.hiddenSize / c.numAttentionHeads);
    const a = `${p}.self_attn`;
    const W = c.hiddenSize;
    // Three [W, W] weights stacked as [3W, W] (rows are output features, so this stacks the
    // q, k and v outputs). Done on the host, so no temporary tensors.
    const stacked = new Float32Array(3 * W * W);
    const bias = new Float32Array(3 * W);
    ['q_proj', 'k_proj', 'v_proj'].forEach((proj, i) => {
      const s = i === 0 ? scale : 1;
      stacked.set((host(`${a}.${proj}.weight`).data as Float32Array).map((x) => x * s), i * W * W);
      bias.set((host(`${a}.${proj}.bias`).data as Float32Array).map((x) => x * s), i * W);
    });
    return {
      ln1: ln(`${p}.layer_norm1`),
      qkv: fromStored(stacked, 3 * W, W, bias, keepT),
      out: lin(`${a}.out_proj`, keepT),
      ln2: ln(`${p}.layer_norm2`),
      fc1: lin(`${p}.mlp.fc1`, keepT),
      fc2: lin(`${p}.mlp.fc2`, keepT),
    };
  };
  const layers = (prefix: string, c: ClipTowerConfig, keepT: boolean) => Array.from({ length: c.numHiddenLayers }, (_, l) => block(`${prefix}.encoder.layers.${l}`, c, keepT));

  try {
    const vision: ClipVisionWeights = {
      patch: lin('vision_model.embeddings.patch_embedding', true, false),
      classEmbedding: t1('vision_model.embeddings.class_embedding'),
      positionEmbedding: t2('vision_model.embeddings.position_embedding.weight'),
      preLn: ln('vision_model.pre_layrnorm'),
      layers: layers('vision_model', config.vision, true),
      postLn: ln('vision_model.post_layernorm'),
      projection: lin('visual_projection', true, false),
    };
    const text: ClipTextWeights = {
      tokenEmbedding: t2('text_model.embeddings.token_embedding.weight'),
      ...(config.text.prunedVocab ? { tokenRows: keep(tf.tensor1d(tokenRowTable(host(TOKEN_IDS_KEY).data), 'int32')) } : {}),
      positionEmbedding: t2('text_model.embeddings.position_embedding.weight'),
      layers: layers('text_model', config.text, false),
      finalLn: ln('text_model.final_layer_norm'),
      projection: lin('text_projection', false, false),
    };
    const logitScale = keep(tf.scalar(host('logit_scale').data[0]!));
    return { config, vision, text, logitScale, ...(trainable ? { trainable } : {}) };
  } catch (err) {
    for (const t of created) t.dispose();
    throw err;
  }
}

/** A row-major [rows, cols] matrix -> its [cols, rows] transpose. */
function transposeHost(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c]!;
  return out;
}

/**
 * The inverse of clipWeightsFromStateDict: the weights as a Hugging Face CLIPModel state dict
 * (matrices back to [out, in], q/k/v unstacked and q's 1/√headDim scaling undone), for
 * saving a trained model. `tokenIds` is added for a pruned vocabulary.
 *
 * @example
 * writeSafetensors('model.safetensors', await clipWeightsToStateDict(weights), { float16: true });
 */
export async function clipWeightsToStateDict(w: ClipWeights, tokenIds?: Int32Array): Promise<StateDict> {
  const out: StateDict = new Map();
  const f32 = async (t: tf.Tensor) => (await t.data()) as Float32Array;
  const put = (key: string, data: Float32Array | Int32Array, shape: number[]) =>
    out.set(key, { dtype: data instanceof Int32Array ? 'int32' : 'float32', storedAs: data instanceof Int32Array ? 'I32' : 'F32', shape, data });
  const putLinear = async (p: string, l: LinearWeights) => {
    const [inp, o] = l.w.shape;
    put(`${p}.weight`, transposeHost(await f32(l.w), inp, o), [o, inp]);
    if (l.b) put(`${p}.bias`, await f32(l.b), [o]);
  };
  const putLn = async (p: string, l: LayerNormWeights) => {
    put(`${p}.weight`, await f32(l.gamma), [l.gamma.shape[0]]);
    put(`${p}.bias`, await f32(l.beta), [l.beta.shape[0]]);
  };
  const putTower = async (prefix: string, layers: ClipBlockWeights[], c: ClipTowerConfig) => {
    const W = c.hiddenSize;
    const scale = 1 / Math.sqrt(W / c.numAttentionHeads);
    for (const [l, b] of layers.entries()) {
      const p = `${prefix}.encoder.layers.${l}`;
      await putLn(`${p}.layer_norm1`, b.ln1);
      const stacked = transposeHost(await f32(b.qkv.w), W, 3 * W); // [3W, W]: q, k, v rows
      const bias = await f32(b.qkv.b!);
      ['q_proj', 'k_proj', 'v_proj'].forEach((proj, i) => {
        const s = i === 0 ? 1 / scale : 1;
        put(`${p}.self_attn.${proj}.weight`, stacked.slice(i * W * W, (i + 1) * W * W).map((x) => x * s), [W, W]);
        put(`${p}.self_attn.${proj}.bias`, bias.slice(i * W, (i + 1) * W).map((x) => x * s), [W]);
      });
      await putLinear(`${p}.self_attn.out_proj`, b.out);
      await putLn(`${p}.layer_norm2`, b.ln2);
      await putLinear(`${p}.mlp.fc1`, b.fc1);
      await putLinear(`${p}.mlp.fc2`, b.fc2);
    }
  };
  const { vision: v, text: t, config } = w;
  const C = config.vision.numChannels, P = config.vision.patchSize, VW = config.vision.hiddenSize;
  put('vision_model.embeddings.class_embedding', await f32(v.classEmbedding), [VW]);
  put('vision_model.embeddings.patch_embedding.weight', transposeHost(await f32(v.patch.w), C * P * P, VW), [VW, C, P, P]);
  put('vision_model.embeddings.position_embedding.weight', await f32(v.positionEmbedding), v.positionEmbedding.shape);
  await putLn('vision_model.pre_layrnorm', v.preLn);
  await putTower('vision_model', v.layers, config.vision);
  await putLn('vision_model.post_layernorm', v.postLn);
  await putLinear('visual_projection', v.projection);
  put('text_model.embeddings.token_embedding.weight', await f32(t.tokenEmbedding), t.tokenEmbedding.shape);
  if (tokenIds) put(TOKEN_IDS_KEY, tokenIds, [tokenIds.length]);
  put('text_model.embeddings.position_embedding.weight', await f32(t.positionEmbedding), t.positionEmbedding.shape);
  await putTower('text_model', t.layers, config.text);
  await putLn('text_model.final_layer_norm', t.finalLn);
  await putLinear('text_projection', t.projection);
  put('logit_scale', await f32(w.logitScale), []);
  return out;
}

/** Every tensor a ClipWeights holds. */
export function weightTensors(w: Omit<ClipWeights, 'config'>): tf.Tensor[] {
  const out: tf.Tensor[] = [w.logitScale];
  const visit = (o: unknown): void => {
    if (o instanceof tf.Tensor) out.push(o);
    else if (Array.isArray(o)) o.forEach(visit);
    else if (o && typeof o === 'object') Object.values(o).forEach(visit);
  };
  visit(w.vision);
  visit(w.text);
  return out;
}

/**
 * A tower's float tensors by their path in the weights object (`layers.0.qkv.w`), in a fixed
 * order: how the ONNX training graphs (engine/onnx/clip-train-onnx.ts) name their inputs.
 * The pruned vocabulary's id table (int32) and the stored transposes (`wT`, copies of weights
 * that inference keeps) are left out.
 */
export function towerTensors(w: ClipWeights, tower: 'vision' | 'text'): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  const visit = (o: unknown, path: string): void => {
    if (o instanceof tf.Tensor) {
      if (o.dtype === 'float32') out.set(path, o);
    } else if (Array.isArray(o)) o.forEach((x, i) => visit(x, `${path}.${i}`));
    else if (o && typeof o === 'object') for (const [k, x] of Object.entries(o)) if (k !== 'wT') visit(x, path ? `${path}.${k}` : k);
  };
  visit(w[tower], '');
  return out;
}

export function disposeClipWeights(w: ClipWeights): void {
  for (const t of weightTensors(w)) t.dispose();
}

/**
 * The config and weight files of a model directory: `config.json` (or `clip_config.json`), and
 * the weights of findClipWeights.
 */
export function findClipFiles(dir: string): { configPath: string; weightsPaths: string[] } {
  if (!existsSync(dir)) throw new ModelLoadError(`Model directory ${dir} does not exist`);
  const configPath = ['config.json', 'clip_config.json'].map((f) => join(dir, f)).find((p) => existsSync(p));
  if (!configPath) throw new ModelLoadError(`${dir} has no config.json (or clip_config.json)`);
  return { configPath, weightsPaths: findClipWeights(dir) };
}

/**
 * The weight files of a model directory: the shards of `model.safetensors.index.json`,
 * `model.safetensors`, `clip.safetensors`, or the directory's only `.safetensors` file.
 */
export function findClipWeights(dir: string): string[] {
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    let map: Record<string, string>;
    try {
      map = (JSON.parse(readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> }).weight_map ?? {};
    } catch (err) {
      throw new ModelLoadError(`${index} is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    return [...new Set(Object.values(map))].map((f) => join(dir, f));
  }
  for (const name of ['model.safetensors', 'clip.safetensors']) {
    if (existsSync(join(dir, name))) return [join(dir, name)];
  }
  const all = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.safetensors')) : [];
  if (all.length !== 1) {
    throw new ModelLoadError(`${dir}: cannot tell which weights to load: expected model.safetensors, clip.safetensors or a single .safetensors file, found ${all.length ? all.join(', ') : 'none'}`);
  }
  return [join(dir, all[0]!)];
}

/** Read one or more weight files (safetensors or torch zips, see io/weights) into one state dict. */
export async function readClipStateDict(weightsPaths: string[]): Promise<StateDict> {
  const merged: StateDict = new Map();
  for (const path of weightsPaths) {
    for (const [k, t] of (await readStateDict(path)).tensors) merged.set(k, t);
  }
  return merged;
}
