/**
 * `MakeCutouts` of the VQGAN+CLIP notebooks: `cutn` random square crops of the generated image,
 * each resized to CLIP's input size, so CLIP judges many views of the picture at once.
 *
 * Crop sides are `min + (max − min)·u^cut_pow` with u uniform in [0, 1), max the image side and
 * min = min(side, CLIP's input size), as in the notebooks; each crop is placed uniformly, then
 * (with augmentations) jittered, flipped and noised (augment.ts). Resizing is average pooling by
 * the whole factor (the notebooks' `adaptive_avg_pool2d`) followed by bilinear resizing, since
 * both have gradients on tfjs-wasm (crop-and-resize and gather do not).
 *
 * The plan (sizes, offsets, jitter) is drawn on the host from a seeded Rng; `cutoutsFromPlan`
 * turns it into tensors.
 */
import type { Rng } from '../demo/rng';
import { tf } from '../runtime/tf';
import { PAD_FRACTION, NO_JITTER, addNoise, drawJitter, flipHorizontal, mirrorPadImage, type Jitter } from './augment';

export interface CutoutSpec {
  /** Top-left corner and side of the window in the padded image's pixels. */
  x: number;
  y: number;
  size: number;
  flip: boolean;
  noise: number;
}

export interface CutoutPlan {
  /** Mirror padding added around the image before cropping. */
  pad: number;
  cutSize: number;
  cuts: CutoutSpec[];
  /** Seeds the noise tensor. */
  noiseSeed: number;
}

export interface CutoutOptions {
  cutn: number;
  cutPow: number;
  /** CLIP's input size. */
  cutSize: number;
  augment: boolean;
}

/**
 * Draw the crops for one step.
 *
 * @example
 * const plan = planCutouts(32, { cutn: 8, cutPow: 1, cutSize: 64, augment: true }, rng);
 */
export function planCutouts(side: number, opts: CutoutOptions, rng: Rng): CutoutPlan {
  const pad = opts.augment ? Math.min(side - 1, Math.ceil(side * PAD_FRACTION)) : 0;
  const maxSize = side;
  const minSize = Math.min(side, opts.cutSize);
  const cuts: CutoutSpec[] = [];
  for (let i = 0; i < opts.cutn; i++) {
    const base = Math.floor(rng.next() ** opts.cutPow * (maxSize - minSize) + minSize);
    const x0 = rng.int(0, side - base);
    const y0 = rng.int(0, side - base);
    const j: Jitter = opts.augment ? drawJitter(rng) : NO_JITTER;
    // The jittered window, kept inside the padded image.
    const size = Math.max(2, Math.min(side + 2 * pad, Math.round(base * j.scale)));
    const clampTo = (v: number) => Math.max(0, Math.min(side + 2 * pad - size, v));
    const x = clampTo(Math.round(pad + x0 + (base - size) / 2 + j.dx * base));
    const y = clampTo(Math.round(pad + y0 + (base - size) / 2 + j.dy * base));
    cuts.push({ x, y, size, flip: j.flip, noise: j.noise });
  }
  return { pad, cutSize: opts.cutSize, cuts, noiseSeed: rng.int(0, 2 ** 31 - 1) };
}

/** Resize a square NHWC crop to `target`: average-pool by the whole factor first when shrinking, then bilinear. */
function resizeTo(crop: tf.Tensor4D, target: number): tf.Tensor4D {
  const side = crop.shape[1];
  if (side === target) return crop;
  const k = Math.floor(side / target);
  const pooled = k >= 2 ? tf.avgPool(crop, k, k, 'valid') : crop;
  return pooled.shape[1] === target ? pooled : tf.image.resizeBilinear(pooled, [target, target]);
}

/**
 * The crops of `plan` from an NCHW image [1, C, S, S]: NCHW [cutn, C, cutSize, cutSize].
 * Differentiable w.r.t. the image.
 */
export function cutoutsFromPlan(image: tf.Tensor4D, plan: CutoutPlan): tf.Tensor4D {
  return tf.tidy(() => {
    const nhwc = mirrorPadImage(tf.transpose(image, [0, 2, 3, 1]), plan.pad); // [1,C,S,S] -> [1,S+2p,S+2p,C]
    const c = nhwc.shape[3];
    const crops = plan.cuts.map((cut) => {
      const crop = resizeTo(tf.slice(nhwc, [0, cut.y, cut.x, 0], [1, cut.size, cut.size, c]), plan.cutSize);
      return cut.flip ? flipHorizontal(crop) : crop;
    });
    const batch = tf.transpose(crops.length === 1 ? crops[0]! : tf.concat(crops, 0), [0, 3, 1, 2]) as tf.Tensor4D; // [N,R,R,C] -> [N,C,R,R]
    return addNoise(batch, plan.cuts.map((cut) => cut.noise), plan.noiseSeed);
  });
}

/**
 * A `guidedLoss` cutouts hook that draws a new plan from `rng` on every call.
 *
 * @example
 * guidedLoss({ …, cutouts: makeCutouts({ cutn: 8, cutPow: 1, cutSize: 64, augment: true }, rng) });
 */
export function makeCutouts(opts: CutoutOptions, rng: Rng): (image: tf.Tensor4D) => tf.Tensor4D {
  return (image) => cutoutsFromPlan(image, planCutouts(image.shape[2], opts, rng));
}
