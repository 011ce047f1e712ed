/**
 * Generation step time on the active tfjs backend. The generation loop (engine/guide) is not
 * written yet — only the guided loss is — so a step here is what the loop will do each
 * iteration: the guided loss (decode → cutouts → CLIP image tower → spherical distance),
 * its gradient w.r.t. the latent, and an Adam update, with random weights.
 */
import {
  buildVqganWeights, disposeVqgan, guidedLoss, initBackend, loadClip, tf,
  type ClipConfig, type StateDict, type VqganConfig,
} from '../engine/index';
import { progress } from './measure';
import { randomVqganStateDict } from './weights';

export interface GenerateOptions {
  /** Crops of the decoded image fed to CLIP per step; 0: the whole image, resized to CLIP's size. */
  cutn: number;
  steps: number;
  warmup: number;
}

/**
 * `cutn` random square crops (side between CLIP's size and the image's), each resized to
 * CLIP's input: the notebooks' MakeCutouts with cut_pow 1, bilinear instead of adaptive
 * average pooling, and no augmentations.
 */
function cutouts(size: number, cutn: number, seed: number) {
  let s = seed >>> 0 || 1;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  return (image: tf.Tensor4D): tf.Tensor4D => {
    const nhwc = tf.transpose(image, [0, 2, 3, 1]) as tf.Tensor4D; // [1,3,S,S] -> [1,S,S,3]
    const side = nhwc.shape[1];
    if (cutn === 0) return tf.transpose(tf.image.resizeBilinear(nhwc, [size, size]), [0, 3, 1, 2]) as tf.Tensor4D;
    const min = Math.min(size, side);
    const crops: tf.Tensor4D[] = [];
    for (let i = 0; i < cutn; i++) {
      const c = Math.floor(rand() * (side - min + 1)) + min;
      const y = Math.floor(rand() * (side - c + 1));
      const x = Math.floor(rand() * (side - c + 1));
      crops.push(tf.image.resizeBilinear(tf.slice(nhwc, [0, y, x, 0], [1, c, c, 3]), [size, size]));
    }
    return tf.transpose(tf.concat(crops, 0), [0, 3, 1, 2]) as tf.Tensor4D; // [cutn, 3, size, size]
  };
}

/** Milliseconds per optimisation step (mean over `steps` after `warmup` untimed ones). */
export async function generateStepMs(clipConfig: ClipConfig, clipTensors: StateDict, vqganConfig: VqganConfig, opts: GenerateOptions): Promise<number> {
  await initBackend();
  const clip = await loadClip({ config: clipConfig, tensors: clipTensors });
  const vqgan = buildVqganWeights(vqganConfig, randomVqganStateDict(vqganConfig));
  const f = 2 ** (vqganConfig.ddconfig.ch_mult.length - 1);
  const side = vqganConfig.ddconfig.resolution / f;
  const z = tf.variable(tf.randomNormal([1, side, side, vqganConfig.embed_dim], 0, 1, 'float32', 7) as tf.Tensor4D);
  const textEmbeds = tf.randomNormal([1, clipConfig.projectionDim], 0, 1, 'float32', 8) as tf.Tensor2D;
  const optimizer = tf.train.adam(0.1);
  const cut = cutouts(clipConfig.vision.imageSize, opts.cutn, 3);
  const step = async () => {
    optimizer.minimize(() => guidedLoss({ vqgan, clip, z: z as unknown as tf.Tensor4D, textEmbeds, weights: [1], cutouts: cut }), false, [z]);
    await z.data(); // wait for the update
  };
  try {
    for (let i = 0; i < opts.warmup; i++) {
      progress(`generate: warm-up step ${i + 1}/${opts.warmup}`);
      await step();
    }
    const t = performance.now();
    for (let i = 0; i < opts.steps; i++) {
      progress(`generate: step ${i + 1}/${opts.steps}`);
      await step();
    }
    return (performance.now() - t) / opts.steps;
  } finally {
    optimizer.dispose();
    tf.dispose([z, textEmbeds]);
    disposeVqgan(vqgan);
    clip.dispose();
  }
}
