/**
 * Random CLIP weights at a given size, for benchmarks: the timing of a transformer does not
 * depend on the values, only on the shapes. uniform matrices with std 0.02, layer norms at 1 and 0,
 * so activations stay finite through every layer.
 */
import { expectedClipShapes, expectedVqganKeys, parseClipConfig, type ClipConfig, type StateDict, type VqganConfig } from '../engine/index';

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
  /** Rows of a pruned token table (the demo model); 0: the full vocabulary. */
  prunedRows?: number;
}

/** openai/clip-vit-base-patch32. */
export const VITB32: ClipSizes = {
  imageSize: 224, patchSize: 32, visionWidth: 768, visionLayers: 12, visionHeads: 12,
  textWidth: 512, textLayers: 12, textHeads: 8, projection: 512, vocab: 49408,
};

/**
 * The bundled demo model's sizes (engine/demo/train-clip.ts DEMO_CLIP_SIZES, copied: that file
 * is the trainer, not an API), with a pruned table of about the demo vocabulary's size.
 */
export const DEMO: ClipSizes = {
  imageSize: 64, patchSize: 8, visionWidth: 128, visionLayers: 4, visionHeads: 4,
  textWidth: 128, textLayers: 3, textHeads: 4, projection: 128, vocab: 49408, prunedRows: 400,
};

export function clipConfigFor(s: ClipSizes): ClipConfig {
  const pruned = (s.prunedRows ?? 0) > 0;
  return parseClipConfig({
    projection_dim: s.projection,
    text_config: {
      hidden_size: s.textWidth, intermediate_size: 4 * s.textWidth, num_attention_heads: s.textHeads, num_hidden_layers: s.textLayers,
      vocab_size: pruned ? s.prunedRows : s.vocab, max_position_embeddings: 77, ...(pruned ? { pruned_vocab: true } : {}),
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

/** The demo VQGAN (engine/demo/train-vqgan.ts DEMO_VQGAN_CONFIG, copied: that file is the trainer). */
export const DEMO_VQGAN: VqganConfig = {
  embed_dim: 16,
  n_embed: 512,
  ddconfig: {
    double_z: false, z_channels: 16, resolution: 32, in_channels: 3, out_ch: 3,
    ch: 32, ch_mult: [1, 1], num_res_blocks: 1, attn_resolutions: [], dropout: 0,
  },
};

/** taming-transformers' vqgan_imagenet_f16_16384 (the classic notebooks' default). */
export const VQGAN_F16_16384: VqganConfig = {
  embed_dim: 256,
  n_embed: 16384,
  ddconfig: {
    double_z: false, z_channels: 256, resolution: 256, in_channels: 3, out_ch: 3,
    ch: 128, ch_mult: [1, 1, 2, 2, 4], num_res_blocks: 2, attn_resolutions: [16], dropout: 0,
  },
};
