/**
 * Augmentations of the cutouts, as the VQGAN+CLIP notebooks apply them (their kornia
 * `RandomHorizontalFlip`, small `RandomAffine`, and per-cutout Gaussian noise with a random
 * strength up to `noise_fac` = 0.1), built from ops that have gradients on tfjs-wasm:
 * the affine part is a jittered crop window (shift and scale) over a mirror-padded image,
 * the flip is `reverse`, the noise an added tensor. Rotation is left out: tfjs's
 * `transform` has no gradient.
 *
 * Everything random is drawn here on the host from a seeded Rng, so a seed reproduces a run.
 */
import type { Rng } from '../demo/rng';
import { tf } from '../runtime/tf';

/** How strong the augmentations are (the notebooks' defaults). */
export const AUGMENT = {
  /** Flip probability. */
  flip: 0.5,
  /** Crop windows are scaled by a factor in [1 − scale, 1 + scale]. */
  scale: 0.1,
  /** …and shifted by up to this fraction of their size in each direction. */
  shift: 0.1,
  /** Noise standard deviation per cutout, uniform in [0, noise]. */
  noise: 0.1,
} as const;

/** Border added around the image (mirrored) so shifted windows stay inside, as a fraction of the side. */
export const PAD_FRACTION = 0.15;

export interface Jitter {
  /** Window side multiplier. */
  scale: number;
  /** Shift as a fraction of the window side, x and y. */
  dx: number;
  dy: number;
  flip: boolean;
  /** Noise standard deviation. */
  noise: number;
}

export const NO_JITTER: Jitter = { scale: 1, dx: 0, dy: 0, flip: false, noise: 0 };

/** One cutout's random augmentation parameters. */
export function drawJitter(rng: Rng): Jitter {
  return {
    scale: rng.range(1 - AUGMENT.scale, 1 + AUGMENT.scale),
    dx: rng.range(-AUGMENT.shift, AUGMENT.shift),
    dy: rng.range(-AUGMENT.shift, AUGMENT.shift),
    flip: rng.chance(AUGMENT.flip),
    noise: rng.range(0, AUGMENT.noise),
  };
}

/** Mirror-pad an NHWC image by `pad` on every side (reflect; needs pad < side). */
export function mirrorPadImage(x: tf.Tensor4D, pad: number): tf.Tensor4D {
  if (pad <= 0) return x;
  return tf.mirrorPad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], 'reflect');
}

/** Flip NHWC crops left–right. */
export function flipHorizontal(x: tf.Tensor4D): tf.Tensor4D {
  return tf.reverse(x, 2);
}

/**
 * Add Gaussian noise with a per-cutout standard deviation to NCHW crops [N, C, R, R].
 * The noise itself comes from `seed`, so it is the same on every run of a seed.
 */
export function addNoise(x: tf.Tensor4D, sigmas: readonly number[], seed: number): tf.Tensor4D {
  if (sigmas.every((s) => s === 0)) return x;
  return tf.tidy(() => {
    const n = tf.randomNormal(x.shape, 0, 1, 'float32', seed);
    return tf.add(x, tf.mul(n, tf.tensor4d([...sigmas], [sigmas.length, 1, 1, 1])));
  });
}
