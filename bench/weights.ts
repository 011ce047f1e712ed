/**
 * Random CLIP weights at a given size, for benchmarks: the timing of a transformer does not
 * depend on the values, only on the shapes. uniform matrices with std 0.02, layer norms at 1 and 0,
 * so activations stay finite through every layer.
 */
import { readFileSync } from 'node:fs';
import {
  expectedClipShapes, expectedVqganKeys, parseClipConfig, parseVqganConfig, readClipConfig,
  type ClipConfig, type StateDict, type VqganConfig,
} from '../engine/index';

export interface ClipSizes {
  imageSize: number;
  patchSize: number;
  visionWidth: number;
  visionLayers: number;
  visionHeads: number;
  textWidth: number;
  textLayers: number;
  textHeads: number;
  projection: number;
  vocab: number;
}

/** openai/clip-vit-base-patch32. */
export const VITB32: ClipSizes = {
  imageSize: 224, patchSize: 32, visionWidth: 768, visionLayers: 12, visionHeads: 12,
  textWidth: 512, textLayers: 12, textHeads: 8, projection: 512, vocab: 49408,
};

export function clipConfigFor(s: ClipSizes): ClipConfig {
  return parseClipConfig({
    projection_dim: s.projection,
    text_config: {
      hidden_size: s.textWidth, intermediate_size: 4 * s.textWidth, num_attention_heads: s.textHeads, num_hidden_layers: s.textLayers,
      vocab_size: s.vocab, max_position_embeddings: 77,
    },
    vision_config: {
      hidden_size: s.visionWidth, intermediate_size: 4 * s.visionWidth, num_attention_heads: s.visionHeads, num_hidden_layers: s.visionLayers,
      image_size: s.imageSize, patch_size: s.patchSize,
    },
  });
}

/**
 * Seeded uniform noise with standard deviation `std` (xorshift32). Uniform, not normal: a
 * benchmark needs plausible magnitudes, and ViT-B/32's 150M values would take ~15 s of
 * Box–Muller on a busy machine.
 */
function noise(n: number, std: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  const scale = (std * Math.sqrt(3) * 2) / 4294967296;
  const shift = std * Math.sqrt(3);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    out[i] = (x >>> 0) * scale - shift;
  }
  return out;
}

/** A complete random state dict for `config` (HF CLIPModel names). */
export function randomClipStateDict(config: ClipConfig, seed = 1): StateDict {
  const sd: StateDict = new Map();
  let k = 0;
  for (const [key, shape] of expectedClipShapes(config)) {
    k++;
    const n = shape.reduce((a, b) => a * b, 1);
    if (key.endsWith('token_ids')) {
      // row r holds tokenizer id r·37 (distinct, spread over the vocabulary), then the start and
      // end tokens (every real table lists them), and the unknown row last
      const ids = Int32Array.from({ length: n }, (_, r) => (r === n - 1 ? -1 : r === n - 2 ? 49407 : r === n - 3 ? 49406 : r * 37));
      sd.set(key, { dtype: 'int32', storedAs: 'I32', shape, data: ids });
      continue;
    }
    let data: Float32Array;
    if (/(layer_?norm\d?|layrnorm)\.weight$/.test(key)) data = new Float32Array(n).fill(1);
    else if (key === 'logit_scale') data = Float32Array.of(Math.log(100));
    else data = noise(n, 0.02, seed * 1000 + k);
    sd.set(key, { dtype: 'float32', storedAs: 'F32', shape, data });
  }
  return sd;
}

/** A complete random VQGAN state dict (taming names); norms at 1 and 0, convs std 0.02. */
export function randomVqganStateDict(config: VqganConfig, seed = 2): StateDict {
  const sd: StateDict = new Map();
  let k = 0;
  for (const [key, shape] of expectedVqganKeys(config)) {
    k++;
    const n = shape.reduce((a, b) => a * b, 1);
    const isNormScale = /norm[^.]*\.weight$/.test(key) || /norm_out\.weight$/.test(key);
    const data = isNormScale ? new Float32Array(n).fill(1) : key === 'quantize.embedding.weight' ? noise(n, 1, seed * 1000 + k) : noise(n, 0.02, seed * 1000 + k);
    sd.set(key, { dtype: 'float32', storedAs: 'F32', shape, data });
  }
  return sd;
}

/**
 * The bundled demo models' configs, read from their model folders: the bench times the
 * shapes that ship, and a retrained demo model changes them in one place only.
 */
export function demoClipConfig(): ClipConfig {
  const dir = new URL('../models/demo-clip/', import.meta.url).pathname;
  return readClipConfig(`${dir}config.json`, `${dir}preprocessor_config.json`);
}

export function demoVqganConfig(): VqganConfig {
  return parseVqganConfig(JSON.parse(readFileSync(new URL('../models/demo-vqgan/config.json', import.meta.url), 'utf8')));
}

/** taming-transformers' vqgan_imagenet_f16_16384 (the classic notebooks' default). */
export const VQGAN_F16_16384: VqganConfig = {
  embed_dim: 256,
  n_embed: 16384,
  ddconfig: {
    double_z: false, z_channels: 256, resolution: 256, in_channels: 3, out_ch: 3,
    ch: 128, ch_mult: [1, 1, 2, 2, 4], num_res_blocks: 2, attn_resolutions: [16], dropout: 0,
  },
};
