/**
 * Training data for the demo CLIP: batches of world pictures with one caption each, the matrix
 * of which caption fits which picture (for a contrastive loss without false negatives), and the
 * pruned vocabulary: every BPE token the world's captions can use.
 */
import { readFileSync } from 'node:fs';
import { toClipPixels, type ClipPreprocess, type RgbImage } from '../io/images';
import type { ClipTokenizer } from '../models/tokenizer';
import { createRng, sampleSeed, type Rng } from './rng';
import { renderSampleSync, worldVocabulary, type WorldSample } from './world';

const an = (w: string) => `${/^[aeiou]/.test(w) ? 'an' : 'a'} ${w}`;

/**
 * The label captions of the attribute groups the studio asks about, in column order:
 * "a {shape}", "a {color} shape", "a drawing of a {subject}", and with `background`
 * "a shape on a {color} background". Each says something true of the pictures it fits: a lone
 * red circle on gray is "a circle", "a red shape" and "a shape on a gray background".
 */
export type LabelGroupName = 'shape' | 'color' | 'subject' | 'background';

export function labelPrompts(opts: { background?: boolean } = {}): { texts: string[]; groups: { name: LabelGroupName; start: number; size: number }[] } {
  const v = worldVocabulary();
  const texts = [...v.shapes.map(an), ...v.colors.map((c) => `${an(c)} shape`), ...v.subjects.map((s) => `a drawing of ${an(s)}`)];
  const groups: { name: LabelGroupName; start: number; size: number }[] = [
    { name: 'shape', start: 0, size: v.shapes.length },
    { name: 'color', start: v.shapes.length, size: v.colors.length },
    { name: 'subject', start: v.shapes.length + v.colors.length, size: v.subjects.length },
  ];
  if (opts.background) {
    // "a shape on a gray background": the generator's prompts name the background too.
    groups.push({ name: 'background', start: texts.length, size: v.backgroundColors.length });
    texts.push(...v.backgroundColors.map((c) => `a shape on ${an(c)} background`));
  }
  return { texts, groups };
}

/** Which label caption of each group fits a picture (-1: none does, e.g. a scene of two shapes). */
export function labelTargets(s: WorldSample): Record<LabelGroupName, number> {
  const v = worldVocabulary();
  const one = s.labels.shapes?.length === 1 ? s.labels.shapes[0]! : undefined;
  return {
    shape: one ? v.shapes.indexOf(one.shape) : -1,
    color: one ? v.colors.indexOf(one.color) : -1,
    subject: s.labels.subject ? v.subjects.indexOf(s.labels.subject) : -1,
    background: s.labels.background ? v.backgroundColors.indexOf(s.labels.background) : -1,
  };
}

/** Words the caption code adds on its own (articles, lists) or our extra captions use. */
const EXTRA_WORDS = ['a', 'an', 'and', ',', 'shape', 'shapes', 'picture', 'drawing', 'of', 'on', 'background'];

/**
 * Every tokenizer id the demo model keeps a row for, in row order: the pad id 0, each token of
 * the world's vocabulary and templates (prompts/demo/world.json) and of EXTRA_WORDS, the start
 * and end tokens, and -1 last: the row every other id reads.
 *
 * @example
 * const ids = demoTokenIds(tok); // Int32Array [0, 267, 320, …, 49406, 49407, -1]
 */
export function demoTokenIds(tok: ClipTokenizer): Int32Array {
  const file = JSON.parse(readFileSync(new URL('../../prompts/demo/world.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  const texts: string[] = [...EXTRA_WORDS];
  const visit = (v: unknown, key = ''): void => {
    if (key.startsWith('$')) return; // comments are not captions
    if (typeof v === 'string') texts.push(v.replace(/\{\w+\}/g, ' '));
    else if (Array.isArray(v)) v.forEach((x) => visit(x));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) { texts.push(k); visit(x, k); }
  };
  visit(file);
  const ids = new Set<number>([0]);
  for (const t of texts) for (const id of tok.encode(t)) ids.add(id);
  return Int32Array.from([...[...ids].sort((a, b) => a - b), tok.sotToken, tok.eotToken, -1]);
}

/**
 * Captions the world does not write but the studio asks: "a red shape", "two small blue shapes"
 * (when every shape in the scene has that colour), so "a {color} shape" is a trained phrase.
 */
export function extraCaptions(s: WorldSample): string[] {
  const shapes = s.labels.shapes;
  if (!shapes?.length) return [];
  const color = shapes[0]!.color;
  if (!shapes.every((x) => x.color === color)) return [];
  const n = shapes.length;
  const count = n === 1 ? (/^[aeiou]/.test(color) ? 'an' : 'a') : n === 2 ? 'two' : 'three';
  const noun = n === 1 ? 'shape' : 'shapes';
  const out = [`${count} ${color} ${noun}`];
  const size = shapes[0]!.size;
  if (shapes.every((x) => x.size === size)) out.push(`${n === 1 ? 'a' : count} ${size} ${color} ${noun}`);
  return out;
}

/**
 * A scene's contrast twin: the same picture as dark ink on white, each pixel as dark as it is far
 * (in RGB) from the background, so every shape reads black whatever its colours. The background
 * is the median of the border pixels. Training only (TrainOptions.contrastTwins): the image tower
 * learns shape from such pictures several times faster than from the coloured ones (a supervised
 * probe, 8 shapes: 68 % after 19,200 pictures against 19 %), and the coloured picture's
 * embedding is then taught to carry what its twin's does.
 *
 * @example
 * const twin = contrastTwin(sample.image); // a red star on blue -> a black star on white
 */
export function contrastTwin(image: RgbImage): RgbImage {
  const { width: w, height: h, data } = image;
  // the median of each channel over the border pixels, from a histogram (the values are bytes)
  const hist = [new Int32Array(256), new Int32Array(256), new Int32Array(256)];
  const take = (x: number, y: number) => { for (let c = 0; c < 3; c++) hist[c]![data[(y * w + x) * 3 + c]!]!++; };
  for (let x = 0; x < w; x++) { take(x, 0); take(x, h - 1); }
  for (let y = 1; y < h - 1; y++) { take(0, y); take(w - 1, y); }
  const count = hist[0]!.reduce((n, k) => n + k, 0); // a one-row picture takes its row twice
  const bg = hist.map((hc) => {
    let v = 0;
    for (let seen = hc[0]!; seen <= count >> 1; seen += hc[++v]!);
    return v;
  });
  const ink = twinInk();
  const out = new Uint8Array(data.length);
  for (let o = 0; o < data.length; o += 3) {
    const r = data[o]! - bg[0]!, g = data[o + 1]! - bg[1]!, b = data[o + 2]! - bg[2]!;
    out[o] = out[o + 1] = out[o + 2] = ink[r * r + g * g + b * b]!;
  }
  return { width: w, height: h, data: out };
}

let inkTable: Uint8ClampedArray | undefined;

/**
 * A twin pixel's grey for each squared RGB distance from the background: 255 − 2·distance,
 * so a distance of 128 (e.g. a mid-gray shape on white) or more is full black.
 */
function twinInk(): Uint8ClampedArray {
  if (!inkTable) {
    inkTable = new Uint8ClampedArray(3 * 255 * 255 + 1);
    for (let d2 = 0; d2 < inkTable.length; d2++) inkTable[d2] = 255 - 2 * Math.sqrt(d2); // clamped and rounded as stored
  }
  return inkTable;
}

export interface ClipBatch {
  /** NCHW [B, 3, S, S], normalised. */
  pixels: Float32Array;
  /** int32 [B, T], T = the longest caption in the batch (start and end tokens included). */
  ids: Int32Array;
  tokens: number;
  /** [B, B]: 1 where caption j is a caption of picture i. */
  matches: Float32Array;
  captions: string[];
  samples: WorldSample[];
  /** [B] per group: the fitting label caption's index in its group, or -1 (labelTargets). */
  targets: Record<LabelGroupName, Int32Array>;
  /**
   * With BatchOptions.contrastTwins: the contrast twin (contrastTwin) of every single-shape
   * scene, NCHW [K, 3, S, S] normalised, and the batch index of the picture each one twins.
   */
  twins?: { pixels: Float32Array; of: Int32Array };
}

export interface BatchOptions {
  batchSize: number;
  pre: ClipPreprocess;
  tok: ClipTokenizer;
  /** Chance of drawing a picture at twice the model's size and shrinking it like an upload. */
  largeChance?: number;
  /** Chance of inserting one out-of-vocabulary token into a caption (teaches the unknown row). */
  unknownChance?: number;
  /** Chance that a scene's caption is one of extraCaptions. */
  extraChance?: number;
  /**
   * Draw scenes twice as often as doodles, and half the scenes with a single shape (so the
   * label captions of labelPrompts fit about half the batch). Otherwise the world's own mix.
   */
  labelMix?: boolean;
  /** Add the contrast twin of every single-shape scene (ClipBatch.twins). */
  contrastTwins?: boolean;
  /**
   * Weight in [0, 1] of its contrast twin blended into every scene's picture (doodles are black
   * on white already): 0 the picture as drawn, 1 the twin alone. A curriculum
   * (TrainOptions.twinCurriculum) starts high and lowers it to 0.
   */
  twinBlend?: number;
}

/** Token rows of `captions`, cut to the longest one; padding after the end token is zeros. */
export function tokenRows(tok: ClipTokenizer, captions: string[], rng?: Rng, unknownChance = 0, context = 77): { ids: Int32Array; tokens: number } {
  const seqs = captions.map((c) => {
    const body = tok.encode(c).slice(0, context - 3);
    // an id far from any caption word: it reads the unknown row
    if (rng && rng.chance(unknownChance)) body.splice(rng.int(0, body.length), 0, rng.int(2000, 40000));
    return [tok.sotToken, ...body, tok.eotToken];
  });
  const tokens = Math.max(...seqs.map((s) => s.length));
  const ids = new Int32Array(captions.length * tokens);
  seqs.forEach((s, i) => ids.set(s, i * tokens));
  return { ids, tokens };
}

/**
 * Batch `index` of the stream `seed`: pictures, one caption each, and which caption fits which
 * picture. Depends only on (seed, index).
 *
 * @example
 * const b = clipBatch(1, 0, { batchSize: 64, pre: config.preprocess, tok });
 */
export function clipBatch(seed: number, index: number, opts: BatchOptions): ClipBatch {
  const { batchSize: B, pre, tok } = opts;
  if (opts.twinBlend !== undefined && !(opts.twinBlend >= 0 && opts.twinBlend <= 1)) throw new RangeError(`twinBlend must be in [0, 1], got ${opts.twinBlend}`);
  const rng = createRng(sampleSeed(seed ^ 0x5eed, index));
  const samples: WorldSample[] = [];
  const positives: Set<string>[] = [];
  const captions: string[] = [];
  const one = 3 * pre.size * pre.size;
  const pixels = new Float32Array(B * one);
  const twins: { of: number; pixels: Float32Array }[] = [];
  for (let i = 0; i < B; i++) {
    const size = rng.chance(opts.largeChance ?? 0.5) ? pre.size * 2 : pre.size;
    const sampleRng = createRng(sampleSeed(seed, index * B + i));
    let s: WorldSample;
    if (!opts.labelMix) s = renderSampleSync(sampleRng, { size });
    else if (rng.chance(1 / 3)) s = renderSampleSync(sampleRng, { size, kind: 'doodle' });
    else {
      const single = rng.chance(0.5);
      do s = renderSampleSync(sampleRng, { size, kind: 'scene' }); while (single && s.labels.shapes!.length !== 1);
    }
    const extra = extraCaptions(s);
    samples.push(s);
    positives.push(new Set([...s.captions, ...extra]));
    captions.push(extra.length && rng.chance(opts.extraChance ?? 0.15) ? rng.pick(extra) : s.caption);
    const blend = s.labels.shapes ? opts.twinBlend ?? 0 : 0;
    const twin = (opts.contrastTwins && s.labels.shapes?.length === 1) || blend > 0 ? toClipPixels(contrastTwin(s.image), pre) : undefined;
    const picture = toClipPixels(s.image, pre);
    if (blend > 0) for (let j = 0; j < one; j++) picture[j] = (1 - blend) * picture[j]! + blend * twin![j]!;
    pixels.set(picture, i * one);
    if (opts.contrastTwins && s.labels.shapes?.length === 1) twins.push({ of: i, pixels: twin! });
  }
  const matches = new Float32Array(B * B);
  for (let i = 0; i < B; i++) for (let j = 0; j < B; j++) matches[i * B + j] = positives[i]!.has(captions[j]!) ? 1 : 0;
  const { ids, tokens } = tokenRows(tok, captions, rng, opts.unknownChance ?? 0.1);
  const t = samples.map(labelTargets);
  const targets = {
    shape: Int32Array.from(t, (x) => x.shape), color: Int32Array.from(t, (x) => x.color),
    subject: Int32Array.from(t, (x) => x.subject), background: Int32Array.from(t, (x) => x.background),
  };
  const twinPixels = new Float32Array(twins.length * one);
  twins.forEach((t, k) => twinPixels.set(t.pixels, k * one));
  return {
    pixels, ids, tokens, matches, captions, samples, targets,
    ...(opts.contrastTwins ? { twins: { pixels: twinPixels, of: Int32Array.from(twins, (t) => t.of) } } : {}),
  };
}
