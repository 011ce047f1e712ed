/**
 * The CLIP-guided VQGAN loss of the classic VQGAN+CLIP notebooks (Katherine Crowson's
 * "VQGAN+CLIP" Colab and nerdyrodent/VQGAN-CLIP `generate.py`): straight-through vector
 * quantisation (`vector_quantize` + `ReplaceGrad`), `ClampWithGrad`, the spherical distance
 * of `Prompt.forward`, and the `text:weight` prompt syntax of `parse_prompt`.
 *
 * Latents are NHWC [1, h, w, embed_dim], like engine/models/vqgan.ts; CLIP wants NCHW, so the
 * decoded image is transposed once before it is normalised. `guidedLoss` is a plain function
 * of explicit tensors: call it inside `tf.valueAndGrad` / `tf.variableGrads` with `z` a
 * `tf.variable`. Random cutouts are not applied here; pass them in as `cutouts`.
 */
import { tf } from '../runtime/tf';
import { InputError, ShapeError } from '../errors';
import { encodeImage, type ClipWeights } from '../models/clip';
import { vqganDecode, vqganQuantize, nhwcToNchw, type VqganWeights } from '../models/vqgan';

/**
 * Quantise `z` to its nearest codebook vectors on the forward pass and pass the gradient
 * straight through to `z` on the backward pass (`z + stopgrad(zq − z)`; tfjs has no
 * stopGradient, so it is a customGrad). `z` is [B, h, w, embed_dim].
 *
 * @example
 * const zq = straightThroughQuantize(vqgan, z); // d zq / d z = identity
 */
export function straightThroughQuantize(w: VqganWeights, z: tf.Tensor4D): tf.Tensor4D {
  const st = tf.customGrad((...args) => ({
    value: tf.tidy(() => vqganQuantize(w, args[0] as tf.Tensor4D).zq),
    gradFunc: (dy: tf.Tensor4D) => tf.clone(dy),
  }));
  return st(z) as tf.Tensor4D;
}

/**
 * Clamp to [lo, hi] on the forward pass; on the backward pass let the gradient g through
 * wherever g·(x − clamp(x)) ≥ 0 — inside the range, or where descending would move x back
 * into it — and zero it elsewhere (the notebooks' `ClampWithGrad`).
 *
 * @example
 * const image = clampWithGrad(raw, 0, 1);
 */
export function clampWithGrad<T extends tf.Tensor>(x: T, lo: number, hi: number): T {
  const clamp = tf.customGrad((...args) => {
    const input = args[0] as tf.Tensor;
    (args[1] as tf.GradSaveFunc)([input]);
    return {
      value: tf.clipByValue(input, lo, hi),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const xs = saved[0]!;
        const outside = tf.sub(xs, tf.clipByValue(xs, lo, hi));
        return tf.mul(dy, tf.cast(tf.greaterEqual(tf.mul(dy, outside), 0), 'float32'));
      }),
    };
  });
  return clamp(x) as T;
}

/** x / max(‖x‖, 1e-12) over the last axis, as torch's F.normalize. */
function normalize(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x), -1, true)), 1e-12)));
}

/**
 * Great-circle distance, squared and doubled, between embeddings: 2·arcsin(‖â − b̂‖ / 2)² with
 * â, b̂ the unit vectors (both are normalised here). Broadcasts over leading axes; the last axis
 * is the embedding. 0 for equal directions, π²/8 for orthogonal, π²/2 for opposite.
 *
 * @example
 * sphericalDistance(imageEmbeds, textEmbeds); // [N, E], [N, E] → [N]
 */
export function sphericalDistance(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const chord = tf.sqrt(tf.sum(tf.square(tf.sub(normalize(a), normalize(b))), -1));
    return tf.mul(tf.square(tf.asin(tf.div(chord, 2))), 2);
  });
}

export interface WeightedPrompt {
  text: string;
  /** Positive pulls the image towards the text, negative pushes it away. */
  weight: number;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
/** What someone typing a weight would write, even if it is not a valid number: 2x, -, 1e999, nan, inf. */
const WEIGHT_LIKE = /^([+-]?[\d.]|[+-]?(nan|inf(inity)?)$|[+-]$)/i;

/**
 * Parse the notebooks' prompt syntax: parts separated by `|`, each `text` or `text:weight`
 * (weight 1 when absent; negative weights push away). The weight is what follows the LAST
 * colon when it parses as a finite number, so "a photo: sunset" and "a cat:abc" stay whole
 * text. A suffix that is meant as a weight but is not a finite number ("a cat:2x",
 * "a cat:1e999", "a cat:nan", "a cat:") is an InputError naming the `prompt` field, as is an
 * empty part or an empty text. Unlike the notebooks, a third `:stop` field is not supported.
 *
 * @example
 * parsePrompts('a red circle:1 | a blue square:-0.5');
 * // [{ text: 'a red circle', weight: 1 }, { text: 'a blue square', weight: -0.5 }]
 */
export function parsePrompts(input: string): WeightedPrompt[] {
  const parts = input.split('|').map((p) => p.trim());
  return parts.map((part, i) => {
    const where = parts.length > 1 ? ` (part ${i + 1} of "${input}")` : '';
    if (!part) throw new InputError('prompt', `The prompt has an empty part${where}: write text, or text:weight, between the | separators`);
    const colon = part.lastIndexOf(':');
    let text = part;
    let weight = 1;
    if (colon >= 0) {
      const suffix = part.slice(colon + 1).trim();
      if (NUMBER.test(suffix)) {
        weight = Number(suffix);
        if (!Number.isFinite(weight)) throw new InputError('prompt', `The weight of "${part}" must be a finite number, got ${suffix}`);
        text = part.slice(0, colon).trim();
      } else if (suffix === '' || WEIGHT_LIKE.test(suffix)) {
        throw new InputError('prompt', `The weight of "${part}" must be a finite number like 1 or -0.5, got "${suffix}"${where}`);
      }
    }
    if (!text) throw new InputError('prompt', `The prompt "${part}" has a weight but no text${where}`);
    return { text, weight };
  });
}

/**
 * The VQGAN latent as a CLIP-ready picture, differentiable in `z`:
 * clampWithGrad(decode(straightThroughQuantize(z))·0.5 + 0.5, 0, 1), NCHW [1, 3, S, S] in [0, 1].
 *
 * @example
 * const image = synthesizeImage(vqgan, z); // for previews: await image.data()
 */
export function synthesizeImage(vqgan: VqganWeights, z: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const raw = tf.add(tf.mul(vqganDecode(vqgan, straightThroughQuantize(vqgan, z)), 0.5), 0.5);
    return nhwcToNchw(clampWithGrad(raw as tf.Tensor4D, 0, 1)); // [1,S,S,3] -> [1,3,S,S]
  });
}

export interface GuidedLossInputs {
  vqgan: VqganWeights;
  clip: ClipWeights;
  /** The latent being optimised, NHWC [1, h, w, embed_dim] (a tf.variable when optimising). */
  z: tf.Tensor4D;
  /** Unnormalised text embeddings, one row per prompt: [P, E]. */
  textEmbeds: tf.Tensor2D;
  /** One weight per prompt (from parsePrompts); negative pushes the image away. */
  weights: readonly number[];
  /** CLIP's per-channel normalisation; defaults to the model's preprocessing config. */
  mean?: readonly number[];
  std?: readonly number[];
  /** Image NCHW [1, 3, S, S] in [0, 1] → CLIP-sized crops [N, 3, R, R]; default: the image itself. */
  cutouts?: (image: tf.Tensor4D) => tf.Tensor4D;
}

/**
 * The guided loss: Σ over prompts of |w|·mean(sign(w)·d), d the spherical distance between
 * the CLIP embedding of each crop of `synthesizeImage(vqgan, z)` and the prompt's embedding.
 * Returns a scalar; gradients flow to `z` only.
 *
 * @example
 * const z = tf.variable(vqganEncode(vqgan, init));
 * const { value, grads } = tf.variableGrads(() => guidedLoss({ vqgan, clip, z, textEmbeds, weights: [1, -0.5] }), [z]);
 */
export function guidedLoss(inputs: GuidedLossInputs): tf.Scalar {
  const { vqgan, clip, z, textEmbeds, weights } = inputs;
  const mean = inputs.mean ?? clip.config.preprocess.mean;
  const std = inputs.std ?? clip.config.preprocess.std;
  if (textEmbeds.rank !== 2 || textEmbeds.shape[0] !== weights.length) {
    throw new ShapeError(`guidedLoss needs one text embedding per weight: got text embeddings [${textEmbeds.shape}] and ${weights.length} weight(s)`);
  }
  if (weights.some((w) => !Number.isFinite(w))) throw new InputError('weights', `Prompt weights must be finite numbers, got [${weights.join(', ')}]`);
  return tf.tidy(() => {
    const image = synthesizeImage(vqgan, z);
    const crops = inputs.cutouts ? inputs.cutouts(image) : image;
    const perChannel = (v: readonly number[]) => tf.tensor4d([...v], [1, v.length, 1, 1]); // broadcasts over [N,C,R,R]
    const pixelValues = tf.div(tf.sub(crops, perChannel(mean)), perChannel(std)) as tf.Tensor4D;
    const imageEmbeds = encodeImage(clip, pixelValues); // [N, E]
    const n = imageEmbeds.shape[0];
    const p = weights.length;
    const e = imageEmbeds.shape[1];
    // [N,1,E] against [1,P,E] → distances [N,P]
    const d = sphericalDistance(tf.reshape(imageEmbeds, [n, 1, e]), tf.reshape(textEmbeds, [1, p, e]));
    const w = tf.tensor1d([...weights]);
    const perPrompt = tf.mul(tf.abs(w), tf.mean(tf.mul(tf.sign(w), d), 0)); // [P]
    return tf.sum(perPrompt) as tf.Scalar;
  });
}
