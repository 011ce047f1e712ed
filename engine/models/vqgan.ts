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
  loadVqgan, disposeVqgan, parseVqganConfig, expectedVqganKeys, buildVqganWeights, vqganStateDict,
  type VqganWeights, type VqganConfig, type VqganDdConfig, type VqganSource,
} from './vqgan-weights';

const GROUPS = 32; // taming's Normalize: GroupNorm(num_groups=32, eps=1e-6, affine=True); see VqganDdConfig.num_groups
const NORM_EPS = 1e-6;

/** [B, C, H, W] -> [B, H, W, C] */
export function nchwToNhwc(x: tf.Tensor4D): tf.Tensor4D {
  return tf.transpose(x, [0, 2, 3, 1]);
}

/** [B, H, W, C] -> [B, C, H, W] */
export function nhwcToNchw(x: tf.Tensor4D): tf.Tensor4D {
  return tf.transpose(x, [0, 3, 1, 2]);
}

/** HWIO kernel rotated 180° in H and W with in/out swapped (HWOI): the kernel of a conv's input gradient. */
function flipKernel(w: tf.Tensor4D): tf.Tensor4D {
  return tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]);
}

/**
 * A stride-1 conv with symmetric padding (k−1)/2 whose input gradient is itself a forward conv
 * (kernel rotated 180° with in/out swapped). Same maths as tfjs's own gradient, but the wasm
 * backend's Conv2DBackpropInput is a slow scalar loop (≈14× its Conv2D), and the guided loop
 * backpropagates through every decoder conv. Weights get no gradient: a loaded model's kernels
 * are constants (trainable `tf.Variable` kernels take `trainableConv` instead).
 */
function sameConvWithFastGrad(x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D {
  const pad = (w.shape[0] - 1) / 2;
  const f = tf.customGrad((...args) => ({
    value: tf.conv2d(args[0] as tf.Tensor4D, w, 1, pad),
    gradFunc: (dy: tf.Tensor) => tf.tidy(() => tf.conv2d(dy as tf.Tensor4D, flipKernel(w), 1, pad)),
  }));
  return f(x) as tf.Tensor4D;
}

/**
 * d loss / d kernel of `conv2d(x, ·, stride, pad)`. The wasm backend has no
 * Conv2DBackpropFilter kernel, so this is the classic rewrite as a forward conv: the batch axis
 * becomes the channels and dy the kernel, dilated by the stride —
 * dW[i, j, ci, co] = Σ_{b, y, x} xpad[b, s·y + i, s·x + j, ci] · dy[b, y, x, co].
 * (An im2col matMul costs 5× more on wasm: its slices, concat and transpose copy k² inputs.)
 */
function convFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, k: number, stride: number, pad: number): tf.Tensor4D {
  return tf.tidy(() => {
    const xp = pad ? tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) : x;
    const inputs = tf.transpose(xp, [3, 1, 2, 0]); // [B,Hp,Wp,Cin] -> [Cin,Hp,Wp,B]
    const kernel = tf.transpose(dy, [1, 2, 0, 3]); // [B,oh,ow,Cout] -> [oh,ow,B,Cout] (HWIO)
    let dw = tf.conv2d(inputs, kernel, 1, 'valid', 'NHWC', stride); // [Cin, k', k', Cout], k' ≥ k
    if (dw.shape[1] !== k || dw.shape[2] !== k) dw = tf.slice(dw, [0, 0, 0, 0], [-1, k, k, -1]); // rows the conv never read
    return tf.transpose(dw, [1, 2, 0, 3]); // [Cin,k,k,Cout] -> [k,k,Cin,Cout]
  });
}

/**
 * A conv whose kernel is trained: gradients for both the input and the kernel. The input
 * gradient is a forward conv of dy with the flipped kernel (for stride 2, dy is first spread
 * onto the even positions of a zero grid), since wasm's Conv2DBackpropInput is slow; the kernel
 * gradient is `convFilterGrad`. Handles what the VQGAN uses: stride 1 with pad (k−1)/2, and
 * stride 2 unpadded (`downsample`, after its own asymmetric pad).
 */
function trainableConv(x: tf.Tensor4D, w: tf.Tensor4D, stride: number, pad: number): tf.Tensor4D {
  const k = w.shape[0];
  const f = tf.customGrad((...args) => {
    const [input, kernel, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([input, kernel]);
    return {
      value: tf.conv2d(input, kernel, stride, pad),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        const g = dy as tf.Tensor4D;
        let dx: tf.Tensor4D;
        if (stride === 1) {
          dx = tf.conv2d(g, flipKernel(ws), 1, k - 1 - pad);
        } else {
          // Output o read input rows stride·o − pad + i. Spread dy to those rows (zeros between),
          // then a full correlation with the flipped kernel gives each input row its sum.
          const [b, oh, ow, c] = g.shape;
          const spread = tf.reshape(tf.pad(tf.reshape(g, [b, oh, 1, ow, 1, c]), [[0, 0], [0, 0], [0, stride - 1], [0, 0], [0, stride - 1], [0, 0]]),
            [b, oh * stride, ow * stride, c]); // [B,oh,s,ow,s,C] -> [B,oh·s,ow·s,C]
          const [, ih, iw] = xs.shape;
          const before = k - 1 - pad;
          const afterH = ih + k - 1 - before - oh * stride, afterW = iw + k - 1 - before - ow * stride;
          const fitted = tf.slice(tf.pad(spread as tf.Tensor4D, [[0, 0], [before, Math.max(0, afterH)], [before, Math.max(0, afterW)], [0, 0]]),
            [0, 0, 0, 0], [b, ih + k - 1, iw + k - 1, c]);
          dx = tf.conv2d(fitted, flipKernel(ws), 1, 'valid');
        }
        return [dx, convFilterGrad(xs, g, k, stride, pad)];
      }),
    };
  });
  return f(x, w) as tf.Tensor4D;
}

/** A conv with PyTorch-style symmetric padding (k-1)/2, or none for `valid`. */
function conv(x: tf.Tensor4D, c: Conv, stride = 1, pad: number | 'valid' = (c.w.shape[0] - 1) / 2): tf.Tensor4D {
  const same = stride === 1 && pad === (c.w.shape[0] - 1) / 2;
  let y: tf.Tensor4D;
  if (c.w instanceof tf.Variable && c.w.trainable) y = trainableConv(x, c.w, stride, pad === 'valid' ? 0 : pad);
  else y = same ? sameConvWithFastGrad(x, c.w) : tf.conv2d(x, c.w, stride, pad);
  return tf.add(y, c.b);
}

/**
 * taming's Normalize (GroupNorm, 32 groups unless the config says otherwise), with a hand-written gradient: autodiff of the
 * broadcasting mean/variance graph costs ~30 small wasm kernels per norm on the backward pass,
 * the closed form ten. With x̂ the normalised input and r = 1/√(σ² + ε) per group:
 * dx = r·(g − mean(g) − x̂·mean(g·x̂)) where g = dy·γ, means over each group; dγ = Σ dy·x̂, dβ = Σ dy.
 */
function groupNorm(x: tf.Tensor4D, n: Norm): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const groups = n.groups ?? GROUPS;
  const grouped = [b, h, w, groups, c / groups]; // [B,H,W,C] -> [B,H,W,G,C/G]
  const f = tf.customGrad((...args) => {
    const [input, gamma, beta, save] = args as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    const [normed, rstd] = tf.tidy(() => {
      const g = tf.reshape(input, grouped);
      const mean = tf.mean(g, [1, 2, 4], true);
      const centred = tf.sub(g, mean);
      const variance = tf.mean(tf.square(centred), [1, 2, 4], true); // biased, as torch
      const r = tf.rsqrt(tf.add(variance, NORM_EPS));
      return [tf.mul(centred, r), r]; // [B,H,W,G,C/G], [B,1,1,G,1]
    });
    save([normed, rstd, gamma]);
    return {
      value: tf.add(tf.mul(tf.reshape(normed, [b, h, w, c]), gamma), beta),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [xhat, r, gam] = saved as [tf.Tensor, tf.Tensor, tf.Tensor1D];
        const dyGrouped = tf.reshape(dy, grouped);
        const g = tf.reshape(tf.mul(dy, gam), grouped);
        const proj = tf.mul(xhat, tf.mean(tf.mul(g, xhat), [1, 2, 4], true));
        const dx = tf.reshape(tf.mul(tf.sub(tf.sub(g, tf.mean(g, [1, 2, 4], true)), proj), r), [b, h, w, c]);
        const dgamma = tf.reshape(tf.sum(tf.mul(dyGrouped, xhat), [0, 1, 2]), [c]); // [G,C/G] -> [C]
        const dbeta = tf.sum(tf.reshape(dy, [b * h * w, c]), 0);
        return [dx, dgamma, dbeta];
      }),
    };
  });
  return f(x, n.gamma, n.beta) as tf.Tensor4D;
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

/**
 * [B, M, K] · [B, K, N] whose gradients are untransposed matMuls of explicitly transposed
 * operands: tfjs's own matMul gradient uses transposed BatchMatMuls, which wasm runs ~10× slower.
 */
function batchMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const f = tf.customGrad((...args) => {
    const [x, y, save] = args as [tf.Tensor3D, tf.Tensor3D, tf.GradSaveFunc];
    save([x, y]);
    return {
      value: tf.matMul(x, y),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [xs, ys] = saved as [tf.Tensor3D, tf.Tensor3D];
        return [tf.matMul(dy as tf.Tensor3D, tf.transpose(ys, [0, 2, 1])), tf.matMul(tf.transpose(xs, [0, 2, 1]), dy as tf.Tensor3D)];
      }),
    };
  });
  return f(a, b) as tf.Tensor3D;
}

/** Single-head self-attention over all H·W positions, scaled by C^-0.5, plus a residual. */
function attnBlock(x: tf.Tensor4D, w: AttnBlockWeights): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, wd, c] = x.shape;
    const n = groupNorm(x, w.norm);
    const q = tf.reshape(conv(n, w.q), [b, h * wd, c]); // [B,H,W,C] -> [B,HW,C]
    const k = tf.reshape(conv(n, w.k), [b, h * wd, c]);
    const v = tf.reshape(conv(n, w.v), [b, h * wd, c]);
    const scores = tf.mul(batchMatMul(q as tf.Tensor3D, tf.transpose(k, [0, 2, 1]) as tf.Tensor3D), c ** -0.5); // [B,HW(query),HW(key)]
    const out = batchMatMul(tf.softmax(scores) as tf.Tensor3D, v as tf.Tensor3D); // softmax over keys; [B,HW,C]
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
