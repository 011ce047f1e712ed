/**
 * A supervised shape probe of the demo CLIP's image tower: can it learn the world's eight
 * shapes at all, and how fast? The tower (DEMO_CLIP_SIZES, from the trainer's initialisation)
 * and a cosine shape head train on single-shape scenes with their shape labels only, no text.
 * Every 10 steps it prints the accuracy over those 10 steps' pictures (before each step's update,
 * so it is held-out accuracy: no picture is drawn twice).
 *
 *   npx tsx engine/demo/probe-shape.ts [--view colour|twin|distil|doodle] [--lr X] [--steps N] [--batch B] [--warmup N] [--pull W] [--anneal N]
 *
 *   colour   the coloured scenes, as the world draws them (default)
 *   twin     their contrast twins only (clip-data.ts contrastTwin: every shape black on white)
 *   distil   half the batch coloured scenes, half their twins, with the trainer's twin term
 *            (train-clip.ts twinLoss); accuracy is printed for both
 *   doodle   doodles, with their subjects as the classes (28 of them): the same tower on
 *            pictures that are black on white already
 *   --anneal N   (colour) pictures start as their twins and fade to colour over N steps
 *
 * What it showed (README of models/demo-clip, and the commit that added --contrast-twins):
 * coloured scenes at lr 2e-4 read 27.5 % at step 590; twins at 5e-4 read 68 % by step 300.
 * Later (the commit that added --twin-curriculum): distil with --pull 10 is slower than with 1
 * (coloured 19 % / twins 30 % at step 360, against 26 % / 54 %); --anneal 250 read 42 % at
 * step 160, half blended, and 30 % at 300, on colour alone since 250, where plain colour read
 * 18.6 %; --anneal 500 read 58.6 % at 250 and 35 % at 500.
 *
 * Stop 15: two patch-embedding initialisations (scratch code, not kept) did not help plain
 * colour: every filter one spatial pattern times one colour direction read 20.0 % at step 400
 * at lr 2e-4 (20.6 % at 5e-4; plain 19.1 %), and the same with zero-mean patterns stayed at
 * 12–15 % through step 250. Doodles learn slowly too, though they have no colours to get past:
 * 32.2 % at step 400 at lr 2e-4, 36.3 % at 5e-4, 23.8 % at 1e-3 (chance 3.6 %), still rising.
 * The same 25,600 pictures in batches of 16 (--batch 16 --steps 1600) learn more: doodles
 * 40.0 % against 29.4 %, coloured shapes 22.2 % against about 20 % (means over the last
 * 3,200 pictures).
 */
import { toClipPixels } from '../io/images';
import { encodeImage } from '../models/clip';
import { clipWeightsFromStateDict, weightTensors } from '../models/clip-weights';
import { parseClipConfig } from '../models/config';
import { ClipTokenizer } from '../models/tokenizer';
import { initBackend, tf } from '../runtime/tf';
import { contrastTwin, demoTokenIds, labelTargets } from './clip-data';
import { createRng, sampleSeed } from './rng';
import { AdamW, secondsSince, warmupCosine } from './train-common';
import { AUX_SCALE, createAuxHeads, DEMO_CLIP_SIZES, DEMO_TRAIN_SEED, demoClipConfigJson, demoPreprocessorJson, initClipStateDict, twinLoss } from './train-clip';
import { renderSampleSync, worldVocabulary } from './world';

type View = 'colour' | 'twin' | 'distil' | 'doodle';

export interface ProbeOptions {
  view: View;
  lr: number;
  steps: number;
  batchSize: number;
  /** Warmup steps of the learning rate (default 20). */
  warmup?: number;
  /** Weight of the twin term's embedding distance (view 'distil'; default 1). */
  pull?: number;
  /**
   * View 'colour' only: blend each picture with its twin, the twin's weight falling linearly
   * from 1 to 0 over this many steps (the trainer's --twin-curriculum, from pure twins).
   */
  anneal?: number;
  /** Called every 10 steps with the accuracy over them (twin: only with view 'distil'). */
  report: (r: { step: number; pictures: number; accuracy: number; twinAccuracy?: number; perSecond: number }) => void;
}

/** Train the probe; pictures come from a stream of their own (DEMO_TRAIN_SEED + 99). */
export async function probeShape(o: ProbeOptions): Promise<void> {
  await initBackend();
  const sizes = DEMO_CLIP_SIZES;
  const tok = await ClipTokenizer.load();
  const ids = demoTokenIds(tok);
  const config = parseClipConfig(demoClipConfigJson(sizes, ids.length), demoPreprocessorJson(sizes));
  const weights = clipWeightsFromStateDict(initClipStateDict(config, 1, ids), config, 'shape probe', { trainable: true });
  // The text tower's variables get no gradient and so no update.
  const vars = weightTensors(weights).filter((t): t is tf.Variable => t instanceof tf.Variable);
  // Classes: the eight shapes, or (view 'doodle') the doodle subjects.
  const shapes = o.view === 'doodle' ? worldVocabulary().subjects.length : worldVocabulary().shapes.length;
  const heads = createAuxHeads(sizes.projection, [shapes], 1, { predictor: o.view === 'distil' });
  const trained = [...vars, ...heads.weights, ...(heads.predictor ? [heads.predictor] : [])];
  const opt = new AdamW(trained, new Set(), { weightDecay: 0 });
  const S = sizes.imageSize, one = 3 * S * S;
  const perStep = o.view === 'distil' ? o.batchSize / 2 : o.batchSize; // scenes per step
  let hits = 0, twinHits = 0, seen = 0;
  const t0 = performance.now();
  for (let step = 0; step < o.steps; step++) {
    const colour = new Float32Array(perStep * one), twin = new Float32Array(perStep * one);
    const labels = new Float32Array(perStep * shapes), truth: number[] = [];
    const blend = o.view === 'colour' && o.anneal ? Math.max(0, 1 - step / o.anneal) : 0;
    for (let i = 0; i < perStep; i++) {
      const rng = createRng(sampleSeed(DEMO_TRAIN_SEED + 99, step * perStep + i));
      let s;
      if (o.view === 'doodle') s = renderSampleSync(rng, { size: rng.chance(0.5) ? 2 * S : S, kind: 'doodle' });
      else do s = renderSampleSync(rng, { size: rng.chance(0.5) ? 2 * S : S, kind: 'scene' }); while (s.labels.shapes!.length !== 1);
      const k = o.view === 'doodle' ? labelTargets(s).subject : labelTargets(s).shape;
      labels[i * shapes + k] = 1;
      truth.push(k);
      if (o.view !== 'twin') colour.set(toClipPixels(s.image, config.preprocess), i * one);
      if (o.view === 'twin' || o.view === 'distil') twin.set(toClipPixels(contrastTwin(s.image), config.preprocess), i * one);
      else if (blend > 0) {
        const t = toClipPixels(contrastTwin(s.image), config.preprocess);
        for (let j = 0; j < one; j++) colour[i * one + j] = (1 - blend) * colour[i * one + j]! + blend * t[j]!;
      }
    }
    const main = tf.tensor4d(o.view === 'twin' ? twin : colour, [perStep, 3, S, S]);
    const twins = o.view === 'distil'
      ? { pixels: tf.tensor4d(twin, [perStep, 3, S, S]), of: tf.eye(perStep) as tf.Tensor2D, shapes: tf.tensor2d(labels, [perStep, shapes]) }
      : undefined;
    const y = tf.tensor2d(labels, [perStep, shapes]);
    let predicted: tf.Tensor | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const all = encodeImage(weights, twins ? tf.concat([main, twins.pixels], 0) : main);
      const unit = tf.div(all, tf.norm(all, 2, 1, true));
      const logits = tf.mul(tf.matMul(unit, heads.weights[0]!), AUX_SCALE); // [B or 2B, shapes]
      predicted = tf.keep(tf.argMax(logits, 1));
      const mainLogits = tf.slice(logits, [0, 0], [perStep, -1]);
      const ce = tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(mainLogits, 1)), 1)));
      if (!twins) return ce as tf.Scalar;
      const images = tf.slice(all, [0, 0], [perStep, -1]) as tf.Tensor2D;
      return tf.add(ce, twinLoss(images, tf.slice(all, [perStep, 0], [-1, -1]) as tf.Tensor2D, twins, heads, o.pull ?? 1)) as tf.Scalar;
    }, trained);
    opt.step(grads, warmupCosine(step, o.lr, o.warmup ?? 20, o.steps));
    const p = await predicted!.data();
    for (let i = 0; i < perStep; i++) {
      if (p[i] === truth[i]) hits++;
      if (twins && p[perStep + i] === truth[i]) twinHits++;
    }
    seen += perStep;
    tf.dispose([main, y, value, predicted!, ...Object.values(grads), ...(twins ? [twins.pixels, twins.of, twins.shapes] : [])]);
    if ((step + 1) % 10 === 0) {
      o.report({
        step: step + 1, pictures: (step + 1) * perStep, accuracy: hits / seen, ...(twins ? { twinAccuracy: twinHits / seen } : {}),
        perSecond: ((step + 1) * o.batchSize) / secondsSince(t0),
      });
      hits = twinHits = seen = 0;
    }
  }
  opt.dispose();
  tf.dispose([...weightTensors(weights), ...heads.weights, ...(heads.predictor ? [heads.predictor] : [])]);
}

if (process.argv[1]?.endsWith('probe-shape.ts')) {
  const arg = (name: string, fallback: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1]! : fallback;
  };
  const view = arg('view', 'colour') as View;
  if (!['colour', 'twin', 'distil', 'doodle'].includes(view)) throw new RangeError(`--view must be colour, twin, distil or doodle, got ${view}`);
  const lr = Number(arg('lr', '2e-4')), steps = Number(arg('steps', '600')), batchSize = Number(arg('batch', '64'));
  if (!(lr > 0 && lr < 1)) throw new RangeError(`--lr must be a number in (0, 1), got ${arg('lr', '')}`);
  if (!Number.isInteger(steps) || steps < 10) throw new RangeError(`--steps must be an integer ≥ 10, got ${arg('steps', '')}`);
  if (!Number.isInteger(batchSize) || batchSize < 2 || batchSize % 2) throw new RangeError(`--batch must be an even integer ≥ 2, got ${arg('batch', '')}`);
  const warmup = Number(arg('warmup', '20')), pull = Number(arg('pull', '1')), anneal = Number(arg('anneal', '0'));
  if (!Number.isInteger(anneal) || anneal < 0 || (anneal > 0 && view !== 'colour')) throw new RangeError(`--anneal must be a whole number of steps ≥ 0, with --view colour, got ${arg('anneal', '')} (view ${view})`);
  if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`--warmup must be an integer ≥ 0, got ${arg('warmup', '')}`);
  if (!(pull >= 0)) throw new RangeError(`--pull must be a number ≥ 0, got ${arg('pull', '')}`);
  await probeShape({
    view, lr, steps, batchSize, warmup, pull, anneal,
    report: (r) => console.log(`step ${r.step} (${r.pictures} pictures) ${view === 'doodle' ? 'subject' : 'shape'} accuracy ${(100 * r.accuracy).toFixed(1)} %` +
      `${r.twinAccuracy !== undefined ? `, twins ${(100 * r.twinAccuracy).toFixed(1)} %` : ''} (${r.perSecond.toFixed(1)} pictures/s)`),
  });
}
