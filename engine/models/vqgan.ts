/**
 * The taming-transformers VQGAN (Esser, Rombach & Ommer, "Taming Transformers for
 * High-Resolution Image Synthesis") in TensorFlow.js, matching the reference
 * `taming/modules/diffusionmodules/model.py` (ResnetBlock, AttnBlock, Downsample, Upsample,
 * Encoder, Decoder) and `taming/modules/vqvae/quantize.py` (VectorQuantizer), defined bottom-up.
 *
 * Layout: every tensor here is NHWC, tfjs's native conv layout — images [B, S, S, 3] in
 * [-1, 1], latents [B, S/f, S/f, embed_dim]. PyTorch (and the reference fixtures) are NCHW;
 * convert at the boundary with `nchwToNhwc` / `nhwcToNchw`. Every size comes from the config
 * (`ddconfig`) or the weight shapes. Forward functions are plain functions of explicit weights
 * and run inside `tf.tidy`, so they are safe to call under `tf.valueAndGrad`.
 */
import { tf } from '../runtime/tf';
import { ShapeError } from '../errors';
import type { AttnBlockWeights, CoderWeights, Conv, Norm, ResnetBlockWeights, VqganWeights } from './vqgan-weights';

export {
  loadVqgan, disposeVqgan, parseVqganConfig, expectedVqganKeys,
  type VqganWeights, type VqganConfig, type VqganDdConfig, type VqganSource,
} from './vqgan-weights';

const GROUPS = 32; // taming's Normalize: GroupNorm(num_groups=32, eps=1e-6, affine=True)
const NORM_EPS = 1e-6;

/** [B, C, H, W] -> [B, H, W, C] */
export function nchwToNhwc(x: tf.Tensor4D): tf.Tensor4D {
  return tf.transpose(x, [0, 2, 3, 1]);
}

/** [B, H, W, C] -> [B, C, H, W] */
export function nhwcToNchw(x: tf.Tensor4D): tf.Tensor4D {
  return tf.transpose(x, [0, 3, 1, 2]);
}

/**
 * A stride-1 conv with symmetric padding (k−1)/2 whose input gradient is itself a forward conv
 * (kernel rotated 180° with in/out swapped). Same maths as tfjs's own gradient, but the wasm
 * backend's Conv2DBackpropInput is a slow scalar loop (≈14× its Conv2D), and the guided loop
 * backpropagates through every decoder conv. Weights get no gradient: they are never trained here.
 */
function sameConvWithFastGrad(x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D {
  const pad = (w.shape[0] - 1) / 2;
  const f = tf.customGrad((...args) => ({
    value: tf.conv2d(args[0] as tf.Tensor4D, w, 1, pad),
    // HWIO -> rotate H and W by 180° -> HWOI
    gradFunc: (dy: tf.Tensor) => tf.tidy(() => tf.conv2d(dy as tf.Tensor4D, tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]), 1, pad)),
  }));
  return f(x) as tf.Tensor4D;
}

/** A conv with PyTorch-style symmetric padding (k-1)/2, or none for `valid`. */
function conv(x: tf.Tensor4D, c: Conv, stride = 1, pad: number | 'valid' = (c.w.shape[0] - 1) / 2): tf.Tensor4D {
  const y = stride === 1 && pad === (c.w.shape[0] - 1) / 2 ? sameConvWithFastGrad(x, c.w) : tf.conv2d(x, c.w, stride, pad);
  return tf.add(y, c.b);
}

function groupNorm(x: tf.Tensor4D, n: Norm): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const g = tf.reshape(x, [b, h, w, GROUPS, c / GROUPS]); // [B,H,W,C] -> [B,H,W,G,C/G]
    const mean = tf.mean(g, [1, 2, 4], true);
    const centred = tf.sub(g, mean);
    const variance = tf.mean(tf.square(centred), [1, 2, 4], true); // biased, as torch
    const normed = tf.reshape(tf.div(centred, tf.sqrt(tf.add(variance, NORM_EPS))), [b, h, w, c]); // back to [B,H,W,C]
    return tf.add(tf.mul(normed, n.gamma), n.beta);
  });
}

/** taming's `nonlinearity`: x·sigmoid(x). */
function swish(x: tf.Tensor4D): tf.Tensor4D {
  return tf.mul(x, tf.sigmoid(x));
}

/** norm → swish → conv, twice, plus a (1×1 `nin_shortcut` when channels change) residual. */
function resnetBlock(x: tf.Tensor4D, w: ResnetBlockWeights): tf.Tensor4D {
  return tf.tidy(() => {
    let h = conv(swish(groupNorm(x, w.norm1)), w.conv1);
    h = conv(swish(groupNorm(h, w.norm2)), w.conv2); // dropout is identity at inference
    const shortcut = w.ninShortcut ? conv(x, w.ninShortcut) : x;
    return tf.add(shortcut, h);
  });
}

/** Single-head self-attention over all H·W positions, scaled by C^-0.5, plus a residual. */
function attnBlock(x: tf.Tensor4D, w: AttnBlockWeights): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, wd, c] = x.shape;
    const n = groupNorm(x, w.norm);
    const q = tf.reshape(conv(n, w.q), [b, h * wd, c]); // [B,H,W,C] -> [B,HW,C]
    const k = tf.reshape(conv(n, w.k), [b, h * wd, c]);
    const v = tf.reshape(conv(n, w.v), [b, h * wd, c]);
    const scores = tf.mul(tf.matMul(q, k, false, true), c ** -0.5); // [B,HW(query),HW(key)]
    const out = tf.matMul(tf.softmax(scores), v); // softmax over keys; [B,HW,C]
    return tf.add(x, conv(tf.reshape(out, [b, h, wd, c]), w.projOut)); // [B,HW,C] -> [B,H,W,C]
  });
}

/** Pad right and bottom by one (torch pad (0,1,0,1)), then a stride-2 3×3 conv: asymmetric, as taming. */
function downsample(x: tf.Tensor4D, c: Conv): tf.Tensor4D {
  return tf.tidy(() => conv(tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]]), c, 2, 'valid'));
}

/** Nearest-neighbour ×2 (output pixel i reads input i/2), then a 3×3 conv. */
function upsample(x: tf.Tensor4D, c: Conv): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    return conv(tf.image.resizeNearestNeighbor(x, [2 * h, 2 * w]), c);
  });
}

function midBlock(x: tf.Tensor4D, w: CoderWeights['mid']): tf.Tensor4D {
  return tf.tidy(() => resnetBlock(attnBlock(resnetBlock(x, w.block1), w.attn1), w.block2));
}

/** taming `Encoder.forward`: conv_in, levels of blocks (+attn) with downsampling, mid, norm, swish, conv_out. */
function encoder(x: tf.Tensor4D, w: CoderWeights): tf.Tensor4D {
  return tf.tidy(() => {
    let h = conv(x, w.convIn);
    for (const level of w.levels) {
      level.blocks.forEach((block, j) => {
        h = resnetBlock(h, block);
        if (level.attns.length) h = attnBlock(h, level.attns[j]!);
      });
      if (level.resample) h = downsample(h, level.resample);
    }
    h = midBlock(h, w.mid);
    return conv(swish(groupNorm(h, w.normOut)), w.convOut);
  });
}

/** taming `Decoder.forward`: conv_in, mid, levels from the coarsest up with upsampling, norm, swish, conv_out. */
function decoder(z: tf.Tensor4D, w: CoderWeights): tf.Tensor4D {
  return tf.tidy(() => {
    let h = midBlock(conv(z, w.convIn), w.mid);
    for (let i = w.levels.length - 1; i >= 0; i--) {
      const level = w.levels[i]!;
      level.blocks.forEach((block, j) => {
        h = resnetBlock(h, block);
        if (level.attns.length) h = attnBlock(h, level.attns[j]!);
      });
      if (level.resample) h = upsample(h, level.resample);
    }
    return conv(swish(groupNorm(h, w.normOut)), w.convOut);
  });
}

function checkImage(x: tf.Tensor, channels: number, what: string): asserts x is tf.Tensor4D {
  if (x.rank !== 4 || x.shape[3] !== channels) {
    throw new ShapeError(`${what} must be NHWC [B, H, W, ${channels}], got [${x.shape}]`);
  }
}

/**
 * Encode images to pre-quantisation latents: `quant_conv(encoder(x))`.
 * `x` is NHWC [B, S, S, in_channels] in [-1, 1]; returns [B, S/f, S/f, embed_dim], f = 2^(levels−1).
 *
 * @example
 * const h = vqganEncode(vqgan, nchwToNhwc(x)); // x: [1,3,256,256] → h: [1,16,16,256]
 */
export function vqganEncode(w: VqganWeights, x: tf.Tensor4D): tf.Tensor4D {
  checkImage(x, w.config.ddconfig.in_channels, 'vqganEncode input');
  const levels = w.config.ddconfig.ch_mult.length;
  const f = 2 ** (levels - 1);
  if (x.shape[1] % f !== 0 || x.shape[2] % f !== 0) {
    throw new ShapeError(`vqganEncode input height and width must be multiples of ${f}, got ${x.shape[1]}×${x.shape[2]}`);
  }
  return tf.tidy(() => conv(encoder(x, w.encoder), w.quantConv));
}

/**
 * Look codebook vectors up by index: [B, h, w] int32 → [B, h, w, embed_dim].
 * Uses gather, so it carries no gradient (see `straightThroughQuantize` for that).
 *
 * @example
 * const zq = vqganCodebookLookup(vqgan, tf.tensor3d([[[0, 5]]], [1, 1, 2], 'int32'));
 */
export function vqganCodebookLookup(w: VqganWeights, indices: tf.Tensor3D): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, wd] = indices.shape;
    const flat = tf.gather(w.codebook, tf.reshape(indices, [-1])); // [B·h·w, D]
    return tf.reshape(flat, [b, h, wd, w.config.embed_dim]); // [B·h·w, D] -> [B,h,w,D]
  });
}

/**
 * Nearest codebook entry per latent position, as taming's VectorQuantizer:
 * argmin over e of ‖h‖² + ‖e‖² − 2 h·e (the product by matMul). `h` is [B, h, w, embed_dim];
 * returns `zq` (same shape) and `indices` [B, h, w] int32. Both are new tensors to dispose.
 *
 * @example
 * const { zq, indices } = vqganQuantize(vqgan, vqganEncode(vqgan, x));
 */
export function vqganQuantize(w: VqganWeights, h: tf.Tensor4D): { zq: tf.Tensor4D; indices: tf.Tensor3D } {
  const d = w.config.embed_dim;
  if (h.rank !== 4 || h.shape[3] !== d) throw new ShapeError(`vqganQuantize input must be [B, h, w, ${d}], got [${h.shape}]`);
  const indices = tf.tidy(() => {
    const [b, hh, ww] = h.shape;
    const flat = tf.reshape(h, [-1, d]); // [B,h,w,D] -> [N,D]
    const hNorm = tf.sum(tf.square(flat), 1, true); // [N,1]
    const eNorm = tf.sum(tf.square(w.codebook), 1); // [n_embed]
    const dist = tf.sub(tf.add(hNorm, eNorm), tf.mul(2, tf.matMul(flat, w.codebook, false, true))); // [N,n_embed]
    return tf.reshape(tf.argMin(dist, 1), [b, hh, ww]) as tf.Tensor3D; // [N] -> [B,h,w]
  });
  return { zq: vqganCodebookLookup(w, indices), indices };
}

/**
 * Decode latents to images: `decoder(post_quant_conv(zq))`. `zq` is [B, h, w, embed_dim];
 * returns NHWC [B, h·f, w·f, out_ch], roughly in [-1, 1] (not clamped).
 *
 * @example
 * const image = vqganDecode(vqgan, zq); // [1,16,16,256] → [1,256,256,3]
 */
export function vqganDecode(w: VqganWeights, zq: tf.Tensor4D): tf.Tensor4D {
  if (zq.rank !== 4 || zq.shape[3] !== w.config.embed_dim) {
    throw new ShapeError(`vqganDecode input must be [B, h, w, ${w.config.embed_dim}], got [${zq.shape}]`);
  }
  return tf.tidy(() => decoder(conv(zq, w.postQuantConv), w.decoder));
}
