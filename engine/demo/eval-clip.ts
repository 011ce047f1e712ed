/**
 * Evaluate the demo CLIP (`npm run eval:demo`) on pictures from a seed training never draws:
 *
 *   shape    single-shape scenes, labels "a {shape}"               (acceptance ≥ 95 %)
 *   colour   the same scenes, labels "a {color} shape"              (≥ 95 %)
 *   background  the same scenes, "a shape on a {color} background" (no target: generation's prompts name it)
 *   doodle   doodles, labels "a drawing of a {subject}"             (≥ 90 %)
 *   recall   text→image recall@1 over 100 random pictures and their captions (≥ 80 %): strict
 *            (the caption's own picture ranks first) and fair (the first picture is one the
 *            caption describes: two doodles of a cat both fit "a sketch of a cat")
 *   svg-*    the same label sets on flat SVG shapes and line doodles drawn by svg-proxy.ts,
 *            a stand-in for another program's pictures
 *
 * Pictures are 128×128 and go through the model's own preprocessing, like an upload.
 *
 *   npx tsx engine/demo/eval-clip.ts [--model DIR] [--n 200] [--json OUT]
 */
import { writeFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { labelLogits, labelProbabilities } from '../classify';
import { toClipPixels, type RgbImage } from '../io/images';
import { loadClip, type Clip } from '../models/clip';
import { ClipTokenizer } from '../models/tokenizer';
import { initBackend } from '../runtime/tf';
import { createRng, sampleSeed } from './rng';
import { proxySamples, PROXY_SUBJECTS } from './svg-proxy';
import { DEMO_EVAL_SEED } from './train-clip';
import { renderSampleSync, worldVocabulary, type WorldSample } from './world';

export interface AccuracyFigure {
  name: string;
  correct: number;
  total: number;
  accuracy: number;
  /** The acceptance threshold, where there is one. */
  target?: number;
  /** The most frequent mistakes, "true → predicted ×count". */
  confusions: string[];
}

export interface DemoClipEvaluation {
  model: string;
  seed: number;
  figures: AccuracyFigure[];
  seconds: number;
}

function pixelsOf(images: RgbImage[], clip: Clip): Float32Array {
  const one = 3 * clip.config.vision.imageSize ** 2;
  const out = new Float32Array(images.length * one);
  images.forEach((img, i) => out.set(toClipPixels(img, clip.config.preprocess), i * one));
  return out;
}

/** Top-1 accuracy of `truth` among `classes`, the label of class c being `label(c)`. */
async function zeroShot(
  name: string, clip: Clip, tok: ClipTokenizer, images: RgbImage[], truth: string[], classes: readonly string[], label: (c: string) => string, target?: number,
): Promise<AccuracyFigure> {
  const probs = await labelProbabilities(clip, tok, pixelsOf(images, clip), images.length, classes.map(label));
  let correct = 0;
  const mistakes = new Map<string, number>();
  probs.forEach((row, i) => {
    const best = classes[row.indexOf(Math.max(...row))]!;
    if (best === truth[i]) correct++;
    else mistakes.set(`${truth[i]} → ${best}`, (mistakes.get(`${truth[i]} → ${best}`) ?? 0) + 1);
  });
  const confusions = [...mistakes].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([k, n]) => `${k} ×${n}`);
  return { name, correct, total: images.length, accuracy: correct / images.length, ...(target ? { target } : {}), confusions };
}

/** World pictures from the evaluation seed, `n` of those `keep` accepts. */
function worldSamples(stream: number, n: number, kind: 'scene' | 'doodle' | undefined, keep: (s: WorldSample) => boolean = () => true): WorldSample[] {
  const out: WorldSample[] = [];
  for (let i = 0; out.length < n; i++) {
    const s = renderSampleSync(createRng(sampleSeed(DEMO_EVAL_SEED + stream, i)), { size: 128, ...(kind ? { kind } : {}) });
    if (keep(s)) out.push(s);
  }
  return out;
}

/** Text→image recall@1 of each picture's own caption among `samples`. */
async function recallAt1(clip: Clip, tok: ClipTokenizer, samples: WorldSample[]): Promise<AccuracyFigure[]> {
  const captions = samples.map((s) => s.caption);
  const unique = [...new Set(captions)];
  const logits = await labelLogits(clip, tok, pixelsOf(samples.map((s) => s.image), clip), samples.length, unique);
  let strict = 0, fair = 0;
  const misses: string[] = [];
  captions.forEach((c, i) => {
    const j = unique.indexOf(c);
    let best = 0;
    logits.forEach((row, k) => { if (row[j]! > logits[best]![j]!) best = k; });
    if (best === i) strict++;
    if (samples[best]!.captions.includes(c)) fair++;
    else misses.push(`"${c}" → "${samples[best]!.caption}"`);
  });
  const n = samples.length;
  return [
    { name: 'recall@1, own picture first', correct: strict, total: n, accuracy: strict / n, target: 0.8, confusions: [] },
    { name: 'recall@1, a fitting picture first', correct: fair, total: n, accuracy: fair / n, target: 0.8, confusions: misses.slice(0, 5) },
  ];
}

/**
 * Every figure of the module header for the model at `modelDir`.
 *
 * @example
 * const { figures } = await evaluateDemoClip('models/demo-clip', { n: 200 });
 */
export async function evaluateDemoClip(modelDir: string, opts: { n?: number; log?: (s: string) => void } = {}): Promise<DemoClipEvaluation> {
  const t0 = performance.now();
  const n = opts.n ?? 200;
  const log = opts.log ?? (() => {});
  await initBackend();
  const tok = await ClipTokenizer.load();
  const clip = await loadClip(modelDir);
  try {
    const v = worldVocabulary();
    const figures: AccuracyFigure[] = [];
    const single = worldSamples(1, n, 'scene', (s) => s.labels.shapes!.length === 1);
    const shapeOf = single.map((s) => s.labels.shapes![0]!);
    figures.push(await zeroShot('shape, "a {shape}"', clip, tok, single.map((s) => s.image), shapeOf.map((s) => s.shape), v.shapes, (c) => `a ${c}`, 0.95));
    log(`${figures.at(-1)!.name}: ${figures.at(-1)!.accuracy}`);
    figures.push(await zeroShot('colour, "a {color} shape"', clip, tok, single.map((s) => s.image), shapeOf.map((s) => s.color), v.colors, (c) => `${/^[aeiou]/.test(c) ? 'an' : 'a'} ${c} shape`, 0.95));
    figures.push(await zeroShot('colour, "a {color} shape" (strict article "a")', clip, tok, single.map((s) => s.image), shapeOf.map((s) => s.color), v.colors, (c) => `a ${c} shape`));
    // Not an acceptance figure, but generation prompts name the background ("… on a gray background").
    figures.push(await zeroShot('background, "a shape on a {color} background"', clip, tok, single.map((s) => s.image), single.map((s) => s.labels.background!), v.backgroundColors, (c) => `a shape on ${/^[aeiou]/.test(c) ? 'an' : 'a'} ${c} background`));
    const doodles = worldSamples(2, n, 'doodle');
    figures.push(await zeroShot('doodle, "a drawing of a {subject}"', clip, tok, doodles.map((s) => s.image), doodles.map((s) => s.labels.subject!), v.subjects, (c) => `a drawing of ${/^[aeiou]/.test(c) ? 'an' : 'a'} ${c}`, 0.9));
    log(`${figures.at(-1)!.name}: ${figures.at(-1)!.accuracy}`);
    figures.push(...await recallAt1(clip, tok, worldSamples(3, 100, undefined)));
    const shapes = await proxySamples('shape', DEMO_EVAL_SEED + 4, n);
    figures.push(await zeroShot('svg shape, "a {shape}"', clip, tok, shapes.map((s) => s.image), shapes.map((s) => s.shape!), v.shapes, (c) => `a ${c}`, 0.95));
    figures.push(await zeroShot('svg colour, "a {color} shape"', clip, tok, shapes.map((s) => s.image), shapes.map((s) => s.color!), v.colors, (c) => `${/^[aeiou]/.test(c) ? 'an' : 'a'} ${c} shape`, 0.95));
    const svgDoodles = await proxySamples('doodle', DEMO_EVAL_SEED + 5, n);
    figures.push(await zeroShot(`svg doodle (${PROXY_SUBJECTS.length} subjects), among all ${v.subjects.length}`, clip, tok, svgDoodles.map((s) => s.image), svgDoodles.map((s) => s.subject!), v.subjects, (c) => `a drawing of ${/^[aeiou]/.test(c) ? 'an' : 'a'} ${c}`, 0.9));
    return { model: modelDir, seed: DEMO_EVAL_SEED, figures, seconds: (performance.now() - t0) / 1000 };
  } finally {
    clip.dispose();
  }
}

/** The figures as a text table. */
export function formatEvaluation(e: DemoClipEvaluation): string {
  const rows = e.figures.map((f) => {
    const pass = f.target === undefined ? '' : f.accuracy >= f.target ? 'pass' : 'FAIL';
    return `${f.name.padEnd(58)} ${(f.accuracy * 100).toFixed(1).padStart(5)} %  ${String(f.correct).padStart(3)}/${f.total}  ${f.target ? `≥ ${f.target * 100} %` : ''.padEnd(6)} ${pass}`;
  });
  const notes = e.figures.filter((f) => f.confusions.length).map((f) => `  ${f.name}: ${f.confusions.join('; ')}`);
  return [`${e.model} (evaluation seed ${e.seed}, ${e.seconds.toFixed(0)} s)`, ...rows, '', 'Most frequent mistakes:', ...notes].join('\n');
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1]?.endsWith('eval-clip.ts')) {
  const model = relative(process.cwd(), resolve(arg('model') ?? 'models/demo-clip')) || '.';
  const e = await evaluateDemoClip(model, { n: Number(arg('n') ?? 200) });
  console.log(formatEvaluation(e));
  const out = arg('json') ?? 'scratch/demo-clip-eval.json';
  writeFileSync(out, `${JSON.stringify(e, null, 2)}\n`);
  console.log(`\nwrote ${out}`);
}
