/**
 * VQGAN config and weight import: the taming-transformers `VQModel` hyperparameters
 * (`embed_dim`, `n_embed`, `ddconfig`) and its state dict, turned into the typed weight tree
 * that `vqgan.ts` runs. Key names and layouts follow taming-transformers
 * (`taming/models/vqgan.py`, `taming/modules/diffusionmodules/model.py`,
 * `taming/modules/vqvae/quantize.py`).
 *
 * Every expected key and shape is derived from the config and checked (engine/io/weights.ts
 * `checkStateDict`) before any tensor is created; the first missing or wrong one is named.
 * Training-only keys (`loss.*`: the discriminator and LPIPS of a Lightning checkpoint) are
 * ignored and listed.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../runtime/tf';
import { ModelLoadError } from '../errors';
import type { HostTensor, StateDict } from '../io/host-tensor';
import { checkStateDict, readStateDict } from '../io/weights';

/** taming `ddconfig`: the Encoder/Decoder hyperparameters. */
export interface VqganDdConfig {
  double_z: boolean;
  z_channels: number;
  resolution: number;
  in_channels: number;
  out_ch: number;
  ch: number;
  ch_mult: number[];
  num_res_blocks: number;
  attn_resolutions: number[];
  dropout: number;
  /**
   * GroupNorm groups; taming hard-codes 32 and has no such key (its Encoder ignores unknown
   * keys). Only the demo model sets it: with ch = 32, 32 groups are one channel each, and an
   * instance-normalised channel carries no trace of a flat colour, so the tiny demo model uses 8.
   */
  num_groups?: number;
}

/** taming `VQModel` params. */
export interface VqganConfig {
  embed_dim: number;
  n_embed: number;
  ddconfig: VqganDdConfig;
}

/** A conv layer: `w` is HWIO (tfjs layout), `b` is [out]. */
export interface Conv { w: tf.Tensor4D; b: tf.Tensor1D }
/** GroupNorm affine parameters, [C] each. */
export interface Norm { gamma: tf.Tensor1D; beta: tf.Tensor1D; /** GroupNorm groups (taming: 32). */ groups?: number }
export interface ResnetBlockWeights { norm1: Norm; conv1: Conv; norm2: Norm; conv2: Conv; ninShortcut?: Conv }
export interface AttnBlockWeights { norm: Norm; q: Conv; k: Conv; v: Conv; projOut: Conv }
export interface MidWeights { block1: ResnetBlockWeights; attn1: AttnBlockWeights; block2: ResnetBlockWeights }
/** One resolution level: `blocks`, optional `attns` (one per block), optional resampling conv. */
export interface LevelWeights { blocks: ResnetBlockWeights[]; attns: AttnBlockWeights[]; resample?: Conv }
export interface CoderWeights { convIn: Conv; levels: LevelWeights[]; mid: MidWeights; normOut: Norm; convOut: Conv }

export interface VqganWeights {
  config: VqganConfig;
  /** `levels[i]` is taming's `encoder.down[i]`. */
  encoder: CoderWeights;
  /** `levels[i]` is taming's `decoder.up[i]` (run from the last level to the first). */
  decoder: CoderWeights;
  quantConv: Conv;
  postQuantConv: Conv;
  /** `quantize.embedding.weight`, [n_embed, embed_dim]. */
  codebook: tf.Tensor2D;
  /** State-dict keys that were present but ignored (training-only `loss.*`). */
  ignoredKeys: string[];
}

function fail(option: string, rule: string, got: unknown): never {
  throw new ModelLoadError(`The VQGAN config option \`${option}\` must be ${rule}, got ${JSON.stringify(got)}`);
}
const posInt = (v: unknown, option: string): number =>
  Number.isInteger(v) && (v as number) > 0 ? (v as number) : fail(option, 'a positive integer', v);
const intList = (v: unknown, option: string, minLen: number): number[] => {
  if (!Array.isArray(v) || v.length < minLen) fail(option, `a list of at least ${minLen} positive integers`, v);
  return (v as unknown[]).map((x, i) => posInt(x, `${option}[${i}]`));
};

/**
 * Validate a VQGAN config: the flat `{embed_dim, n_embed, ddconfig}` form, or taming's
 * yaml layout converted to JSON (`{model: {params: {...}}}` or `{params: {...}}`).
 *
 * @example
 * const config = parseVqganConfig(JSON.parse(readFileSync('vqgan_config.json', 'utf8')));
 */
export function parseVqganConfig(raw: unknown): VqganConfig {
  let p = raw as Record<string, any>;
  if (p?.model?.params) p = p.model.params;
  else if (p?.params && !p.ddconfig) p = p.params;
  if (!p || typeof p !== 'object' || !p.ddconfig || typeof p.ddconfig !== 'object') fail('ddconfig', 'an object', p?.ddconfig);
  const d = p.ddconfig as Record<string, unknown>;
  const ddconfig: VqganDdConfig = {
    double_z: d.double_z === undefined ? false : d.double_z === true ? true : d.double_z === false ? false : fail('ddconfig.double_z', 'a boolean', d.double_z),
    z_channels: posInt(d.z_channels, 'ddconfig.z_channels'),
    resolution: posInt(d.resolution, 'ddconfig.resolution'),
    in_channels: posInt(d.in_channels, 'ddconfig.in_channels'),
    out_ch: posInt(d.out_ch, 'ddconfig.out_ch'),
    ch: posInt(d.ch, 'ddconfig.ch'),
    ch_mult: intList(d.ch_mult, 'ddconfig.ch_mult', 1),
    num_res_blocks: posInt(d.num_res_blocks, 'ddconfig.num_res_blocks'),
    attn_resolutions: d.attn_resolutions === undefined ? [] : intList(d.attn_resolutions, 'ddconfig.attn_resolutions', 0),
    dropout: typeof d.dropout === 'number' && d.dropout >= 0 && d.dropout < 1 ? d.dropout : d.dropout === undefined ? 0 : fail('ddconfig.dropout', 'a number in [0, 1)', d.dropout),
    ...(d.num_groups !== undefined ? { num_groups: posInt(d.num_groups, 'ddconfig.num_groups') } : {}),
  };
  // GroupNorm(groups) needs every channel count to be a multiple of the group count.
  const groups = ddconfig.num_groups ?? 32;
  for (const m of [1, ...ddconfig.ch_mult]) {
    if ((ddconfig.ch * m) % groups !== 0) fail('ddconfig.ch', `such that ch × every ch_mult is a multiple of ${groups} (GroupNorm has ${groups} groups)`, ddconfig.ch);
  }
  return { embed_dim: posInt(p.embed_dim, 'embed_dim'), n_embed: posInt(p.n_embed, 'n_embed'), ddconfig };
}

/**
 * Every key the taming `VQModel` state dict holds for this config, with its PyTorch shape.
 * Mirrors the constructors of taming's `Encoder` and `Decoder` (channel bookkeeping included).
 */
export function expectedVqganKeys(config: VqganConfig): Map<string, number[]> {
  const { ch, ch_mult, num_res_blocks, attn_resolutions, in_channels, out_ch, z_channels, resolution, double_z } = config.ddconfig;
  const keys = new Map<string, number[]>();
  const conv = (name: string, cout: number, cin: number, k: number) => {
    keys.set(`${name}.weight`, [cout, cin, k, k]);
    keys.set(`${name}.bias`, [cout]);
  };
  const norm = (name: string, c: number) => { keys.set(`${name}.weight`, [c]); keys.set(`${name}.bias`, [c]); };
  const resnet = (name: string, cin: number, cout: number) => {
    norm(`${name}.norm1`, cin); conv(`${name}.conv1`, cout, cin, 3);
    norm(`${name}.norm2`, cout); conv(`${name}.conv2`, cout, cout, 3);
    if (cin !== cout) conv(`${name}.nin_shortcut`, cout, cin, 1);
  };
  const attn = (name: string, c: number) => {
    norm(`${name}.norm`, c);
    for (const p of ['q', 'k', 'v', 'proj_out']) conv(`${name}.${p}`, c, c, 1);
  };
  const mid = (name: string, c: number) => { resnet(`${name}.block_1`, c, c); attn(`${name}.attn_1`, c); resnet(`${name}.block_2`, c, c); };
  const levels = ch_mult.length;
  const inChMult = [1, ...ch_mult];

  // Encoder: conv_in, per level num_res_blocks blocks (+ attn at attn_resolutions), downsample but last.
  conv('encoder.conv_in', ch, in_channels, 3);
  let res = resolution;
  let blockIn = ch;
  for (let i = 0; i < levels; i++) {
    blockIn = ch * inChMult[i]!;
    const blockOut = ch * ch_mult[i]!;
    for (let j = 0; j < num_res_blocks; j++) {
      resnet(`encoder.down.${i}.block.${j}`, blockIn, blockOut);
      blockIn = blockOut;
      if (attn_resolutions.includes(res)) attn(`encoder.down.${i}.attn.${j}`, blockIn);
    }
    if (i !== levels - 1) { conv(`encoder.down.${i}.downsample.conv`, blockIn, blockIn, 3); res = Math.floor(res / 2); }
  }
  mid('encoder.mid', blockIn);
  norm('encoder.norm_out', blockIn);
  conv('encoder.conv_out', double_z ? 2 * z_channels : z_channels, blockIn, 3);

  // Decoder: built from the coarsest level up, num_res_blocks + 1 blocks per level.
  blockIn = ch * ch_mult[levels - 1]!;
  res = Math.floor(resolution / 2 ** (levels - 1));
  conv('decoder.conv_in', blockIn, z_channels, 3);
  mid('decoder.mid', blockIn);
  for (let i = levels - 1; i >= 0; i--) {
    const blockOut = ch * ch_mult[i]!;
    for (let j = 0; j < num_res_blocks + 1; j++) {
      resnet(`decoder.up.${i}.block.${j}`, blockIn, blockOut);
      blockIn = blockOut;
      if (attn_resolutions.includes(res)) attn(`decoder.up.${i}.attn.${j}`, blockIn);
    }
    if (i !== 0) { conv(`decoder.up.${i}.upsample.conv`, blockIn, blockIn, 3); res *= 2; }
  }
  norm('decoder.norm_out', blockIn);
  conv('decoder.conv_out', out_ch, blockIn, 3);

  conv('quant_conv', config.embed_dim, z_channels, 1);
  conv('post_quant_conv', z_channels, config.embed_dim, 1);
  keys.set('quantize.embedding.weight', [config.n_embed, config.embed_dim]);
  return keys;
}

/** Build the tf weight tree from a checked state dict. Conv kernels become HWIO. */
export function buildVqganWeights(config: VqganConfig, sd: StateDict, ignoredKeys: string[] = []): VqganWeights {
  const host = (key: string): HostTensor => sd.get(key)!;
  const vec = (key: string) => tf.tensor1d(host(key).data as Float32Array);
  // PyTorch stores conv kernels OIHW; tf.conv2d wants HWIO (and tfjs runs NHWC activations).
  const conv = (name: string): Conv => {
    const t = host(`${name}.weight`);
    const w = tf.tidy(() => tf.transpose(tf.tensor4d(t.data as Float32Array, t.shape as [number, number, number, number]), [2, 3, 1, 0]));
    return { w: w as tf.Tensor4D, b: vec(`${name}.bias`) };
  };
  const groups = config.ddconfig.num_groups ?? 32;
  const norm = (name: string): Norm => ({ gamma: vec(`${name}.weight`), beta: vec(`${name}.bias`), groups });
  const resnet = (name: string): ResnetBlockWeights => ({
    norm1: norm(`${name}.norm1`), conv1: conv(`${name}.conv1`), norm2: norm(`${name}.norm2`), conv2: conv(`${name}.conv2`),
    ...(sd.has(`${name}.nin_shortcut.weight`) ? { ninShortcut: conv(`${name}.nin_shortcut`) } : {}),
  });
  const attn = (name: string): AttnBlockWeights => ({
    norm: norm(`${name}.norm`), q: conv(`${name}.q`), k: conv(`${name}.k`), v: conv(`${name}.v`), projOut: conv(`${name}.proj_out`),
  });
  const mid = (name: string): MidWeights => ({ block1: resnet(`${name}.block_1`), attn1: attn(`${name}.attn_1`), block2: resnet(`${name}.block_2`) });
  const { ch_mult, num_res_blocks } = config.ddconfig;
  const levels = (prefix: string, blocks: number, resample: string): LevelWeights[] =>
    ch_mult.map((_, i) => {
      const at = `${prefix}.${i}`;
      return {
        blocks: Array.from({ length: blocks }, (_, j) => resnet(`${at}.block.${j}`)),
        attns: sd.has(`${at}.attn.0.q.weight`) ? Array.from({ length: blocks }, (_, j) => attn(`${at}.attn.${j}`)) : [],
        ...(sd.has(`${at}.${resample}.conv.weight`) ? { resample: conv(`${at}.${resample}.conv`) } : {}),
      };
    });
  const coder = (name: 'encoder' | 'decoder'): CoderWeights => ({
    convIn: conv(`${name}.conv_in`),
    levels: name === 'encoder' ? levels('encoder.down', num_res_blocks, 'downsample') : levels('decoder.up', num_res_blocks + 1, 'upsample'),
    mid: mid(`${name}.mid`),
    normOut: norm(`${name}.norm_out`),
    convOut: conv(`${name}.conv_out`),
  });
  const e = host('quantize.embedding.weight');
  return {
    config,
    encoder: coder('encoder'),
    decoder: coder('decoder'),
    quantConv: conv('quant_conv'),
    postQuantConv: conv('post_quant_conv'),
    codebook: tf.tensor2d(e.data as Float32Array, e.shape as [number, number]),
    ignoredKeys,
  };
}

/**
 * The inverse of `buildVqganWeights`: the taming state dict (PyTorch key names, OIHW conv
 * kernels) of a weight tree, e.g. one just trained, ready for `writeSafetensors`. Reads every
 * tensor back to the host.
 *
 * @example
 * writeSafetensors('models/demo-vqgan/model.safetensors', vqganStateDict(vqgan), { float16: true });
 */
export function vqganStateDict(w: VqganWeights): StateDict {
  const sd: StateDict = new Map();
  const put = (key: string, t: tf.Tensor) => sd.set(key, { dtype: 'float32', storedAs: 'F32', shape: [...t.shape], data: t.dataSync() as Float32Array });
  // HWIO (tfjs) -> OIHW (PyTorch)
  const conv = (name: string, c: Conv) => {
    const oihw = tf.transpose(c.w, [3, 2, 0, 1]);
    put(`${name}.weight`, oihw);
    oihw.dispose();
    put(`${name}.bias`, c.b);
  };
  const norm = (name: string, n: Norm) => { put(`${name}.weight`, n.gamma); put(`${name}.bias`, n.beta); };
  const resnet = (name: string, r: ResnetBlockWeights) => {
    norm(`${name}.norm1`, r.norm1); conv(`${name}.conv1`, r.conv1); norm(`${name}.norm2`, r.norm2); conv(`${name}.conv2`, r.conv2);
    if (r.ninShortcut) conv(`${name}.nin_shortcut`, r.ninShortcut);
  };
  const attn = (name: string, a: AttnBlockWeights) => {
    norm(`${name}.norm`, a.norm); conv(`${name}.q`, a.q); conv(`${name}.k`, a.k); conv(`${name}.v`, a.v); conv(`${name}.proj_out`, a.projOut);
  };
  const coder = (name: 'encoder' | 'decoder', c: CoderWeights) => {
    conv(`${name}.conv_in`, c.convIn);
    const [levelName, resample] = name === 'encoder' ? ['down', 'downsample'] : ['up', 'upsample'];
    c.levels.forEach((level, i) => {
      const at = `${name}.${levelName}.${i}`;
      level.blocks.forEach((b, j) => resnet(`${at}.block.${j}`, b));
      level.attns.forEach((a, j) => attn(`${at}.attn.${j}`, a));
      if (level.resample) conv(`${at}.${resample}.conv`, level.resample);
    });
    resnet(`${name}.mid.block_1`, c.mid.block1); attn(`${name}.mid.attn_1`, c.mid.attn1); resnet(`${name}.mid.block_2`, c.mid.block2);
    norm(`${name}.norm_out`, c.normOut);
    conv(`${name}.conv_out`, c.convOut);
  };
  coder('encoder', w.encoder);
  coder('decoder', w.decoder);
  conv('quant_conv', w.quantConv);
  conv('post_quant_conv', w.postQuantConv);
  put('quantize.embedding.weight', w.codebook);
  return sd;
}

export type VqganSource = string | { configPath: string; weightsPath: string };

const CONFIG_NAMES = ['vqgan_config.json', 'config.json'];
const WEIGHT_NAMES = ['vqgan.safetensors', 'model.safetensors', 'vqgan.ckpt', 'model.ckpt', 'last.ckpt'];

function resolveSource(source: VqganSource): { configPath: string; weightsPath: string } {
  if (typeof source !== 'string') return source;
  if (!existsSync(source) || !statSync(source).isDirectory()) throw new ModelLoadError(`VQGAN directory ${source} does not exist`);
  const pick = (names: string[], what: string) => {
    const found = names.map((n) => join(source, n)).find((p) => existsSync(p));
    if (!found) throw new ModelLoadError(`${source} holds no VQGAN ${what} (looked for ${names.join(', ')})`);
    return found;
  };
  return { configPath: pick(CONFIG_NAMES, 'config'), weightsPath: pick(WEIGHT_NAMES, 'weights') };
}

/**
 * Load a taming-transformers VQGAN: config JSON plus weights as `.safetensors` or a
 * (Lightning) torch checkpoint. Call `initBackend()` first; free with `disposeVqgan`.
 *
 * @example
 * await initBackend();
 * const vqgan = await loadVqgan('models/vqgan-imagenet-f16-1024');
 * const h = vqganEncode(vqgan, imageNHWC);
 */
export async function loadVqgan(source: VqganSource): Promise<VqganWeights> {
  const { configPath, weightsPath } = resolveSource(source);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (err) {
    throw new ModelLoadError(`Cannot read the VQGAN config ${configPath}: ${(err as Error).message}`, { cause: err });
  }
  const config = parseVqganConfig(raw);
  const { tensors } = await readStateDict(weightsPath); // safetensors or a (Lightning) torch zip
  const expected = expectedVqganKeys(config);
  // Training-only `loss.*` (discriminator, LPIPS) are ignored and listed; any other stray key is an error.
  const { ignored } = checkStateDict(tensors, expected, { modelName: `VQGAN (${weightsPath})`, ignorePrefixes: ['loss.'] });
  for (const key of expected.keys()) {
    const t = tensors.get(key)!;
    if (t.dtype !== 'float32') throw new ModelLoadError(`VQGAN (${weightsPath}): ${key} has dtype ${t.storedAs}, expected a float type`);
  }
  return buildVqganWeights(config, tensors, ignored);
}

/** Free every tensor of a loaded VQGAN. */
export function disposeVqgan(w: VqganWeights): void {
  const all: tf.Tensor[] = [];
  const walk = (v: unknown) => {
    if (v instanceof tf.Tensor) all.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk({ ...w, config: undefined, ignoredKeys: undefined });
  tf.dispose(all);
}
