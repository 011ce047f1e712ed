/**
 * The seeded synthetic world the bundled demo CLIP and VQGAN train on: scenes of one to
 * three coloured shapes on a plain background, and black hand-drawn doodles on white, each
 * with captions. Looks vary on purpose (anti-aliasing on or off, supersampling, rotation,
 * proportions, shades, outlines, blur, noise, stroke wobble and width) because the models are
 * checked on pictures from another renderer. The vocabulary is prompts/demo/world.json.
 */
import { readFileSync } from 'node:fs';
import type { RgbImage } from '../io/images';
import { doodleCaptions, sceneCaptions, type CaptionVocabulary, type ShapeLabel } from './captions';
import { DOODLE_SUBJECTS, drawDoodle, handDraw, type HandStyle } from './doodles';
import { createCanvas, fillPolygon, finishCanvas, strokePolyline, type Canvas, type Point, type Rgb } from './raster';
import { createRng, sampleSeed, type Rng } from './rng';
import { SHAPES, placePolygon, shapePolygon, type ShapeName } from './shapes';

export type { ShapeLabel } from './captions';
export type WorldKind = 'scene' | 'doodle';

/** What a picture shows, for tests, evaluation and the game's prompt pack. */
export interface WorldLabels {
  kind: WorldKind;
  shapes?: ShapeLabel[];
  background?: string;
  subject?: string;
}

export interface WorldSample {
  image: RgbImage;
  /** One caption, drawn at random from `captions`. */
  caption: string;
  /** Every caption the templates give this picture. */
  captions: string[];
  labels: WorldLabels;
}

export interface RenderOptions {
  /** Side of the square image in pixels, 16–1024 (e.g. 64 or 128). */
  size: number;
  /** Scene or doodle; left out, each is equally likely. */
  kind?: WorldKind;
  /** Draw this doodle subject (implies kind 'doodle'), e.g. a reference drawing for the game. */
  subject?: string;
}

/** The words of the world, for the UI and the game's prompt pack. */
export interface WorldVocabulary {
  shapes: string[];
  colors: string[];
  backgroundColors: string[];
  sizes: string[];
  positions: string[];
  subjects: string[];
}

interface WorldFile {
  shapes: { name: string; plural: string }[];
  colors: Record<string, [number, number, number][]>;
  shapeColors: string[];
  backgroundColors: string[];
  grayBackgroundChance: number;
  sizes: Record<string, [number, number]>;
  positions: Record<string, string[]>;
  counts: string[];
  subjects: string[];
  templates: { scene: string[]; doodle: string[] };
}

const POSITION_GRID = [['top left', 'top', 'top right'], ['left', 'center', 'right'], ['bottom left', 'bottom', 'bottom right']] as const;

let cached: (WorldFile & { vocab: CaptionVocabulary }) | undefined;

/** Load and check prompts/demo/world.json once. */
function world(): WorldFile & { vocab: CaptionVocabulary } {
  if (cached) return cached;
  const file = JSON.parse(readFileSync(new URL('../../prompts/demo/world.json', import.meta.url), 'utf8')) as WorldFile;
  const where = 'prompts/demo/world.json';
  for (const s of file.shapes) if (!(SHAPES as readonly string[]).includes(s.name)) throw new Error(`${where}: no geometry for shape "${s.name}".`);
  for (const s of file.subjects) if (!DOODLE_SUBJECTS.includes(s)) throw new Error(`${where}: no doodle for subject "${s}".`);
  for (const c of [...file.shapeColors, ...file.backgroundColors]) if (!file.colors[c]?.length) throw new Error(`${where}: no shades for colour "${c}".`);
  for (const cell of POSITION_GRID.flat()) if (!file.positions[cell]?.length) throw new Error(`${where}: no phrases for position "${cell}".`);
  const plurals = Object.fromEntries(file.shapes.map((s) => [s.name, s.plural]));
  cached = { ...file, vocab: { plurals, positions: file.positions, counts: file.counts, templates: file.templates } };
  return cached;
}

/**
 * The shapes, colours, sizes, positions and doodle subjects the world draws and captions.
 *
 * @example
 * worldVocabulary().subjects; // ['house', 'tree', 'sun', …]
 */
export function worldVocabulary(): WorldVocabulary {
  const w = world();
  return {
    shapes: w.shapes.map((s) => s.name), colors: [...w.shapeColors], backgroundColors: [...w.backgroundColors],
    sizes: Object.keys(w.sizes), positions: POSITION_GRID.flat(), subjects: [...w.subjects],
  };
}

const clamp255 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** A shade of `name`: one of its listed shades, brightness and channels nudged a little. */
function shade(name: string, rng: Rng): Rgb {
  const [r, g, b] = rng.pick(world().colors[name]!);
  const k = rng.range(0.92, 1.06);
  return [clamp255(r * k + rng.normal() * 5), clamp255(g * k + rng.normal() * 5), clamp255(b * k + rng.normal() * 5)];
}

const distance = (a: Rgb, b: Rgb) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

/** Supersampling, edge softness, blur and noise: the "which renderer drew this" knobs. */
function pickLook(rng: Rng, size: number): { ss: number; soft: boolean; blur: number; noiseSigma: number; noiseSeed: number } {
  // box-filtered supersampling 1× (hard, aliased edges) to 3×; 4× looks the same as 3× at twice the cost
  const ss = rng.pick([1, 2, 2, 2, 3, 3]);
  return {
    ss, soft: ss > 1, noiseSeed: rng.int(1, 2 ** 31 - 1),
    blur: rng.chance(0.25) ? rng.range(0.3, 0.9) * Math.max(1, size / 128) : 0,
    noiseSigma: rng.chance(0.3) ? rng.range(1, 6) : 0,
  };
}

/** Which of the nine cells the centre of the shape's visible bounding box falls in, and that centre. */
function positionOf(pts: readonly Point[], size: number): { position: string; center: [number, number] } {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const [x, y] of pts) {
    x0 = Math.min(x0, Math.max(0, x)); x1 = Math.max(x1, Math.min(size, x));
    y0 = Math.min(y0, Math.max(0, y)); y1 = Math.max(y1, Math.min(size, y));
  }
  const center: [number, number] = [(x0 + x1) / 2 / size, (y0 + y1) / 2 / size];
  const cell = (v: number) => Math.min(2, Math.max(0, Math.floor(3 * v)));
  return { position: POSITION_GRID[cell(center[1])]![cell(center[0])]!, center };
}

interface PlannedShape { shape: ShapeName; color: string; size: string }

function planScene(rng: Rng): PlannedShape[] {
  const w = world();
  const n = rng.chance(0.45) ? 1 : rng.chance(0.6) ? 2 : 3;
  const one = (): PlannedShape => ({ shape: rng.pick(w.shapes).name as ShapeName, color: rng.pick(w.shapeColors), size: rng.pick(Object.keys(w.sizes)) });
  const first = one();
  const plan = [first];
  const twins = n > 1 && rng.chance(0.35) ? rng.int(2, n) : 1; // "two small yellow stars"
  for (let i = 1; i < n; i++) plan.push(i < twins ? { ...first } : one());
  // two big shapes do not fit side by side: keep only the first one big
  plan.forEach((p, i) => { if (i > 0 && p.size === 'big' && plan.slice(0, i).some((q) => q.size === 'big')) p.size = 'small'; });
  if (twins > 1 && first.size === 'big') for (let i = 0; i < twins; i++) plan[i]!.size = 'small';
  return plan;
}

type Look = ReturnType<typeof pickLook>;

function renderScene(rng: Rng, size: number): { canvas: Canvas; look: Look; labels: WorldLabels } {
  const w = world();
  const plan = planScene(rng);
  const fills = plan.map((p) => shade(p.color, rng));
  const used = new Set(plan.map((p) => p.color));
  let background = rng.chance(w.grayBackgroundChance) ? 'gray' : rng.pick(w.backgroundColors.filter((c) => c !== 'gray' && !used.has(c)));
  let bg = shade(background, rng);
  for (let tries = 0; tries < 20 && fills.some((f) => distance(f, bg) < 90); tries++) {
    background = rng.pick(w.backgroundColors.filter((c) => !used.has(c)));
    bg = shade(background, rng);
  }
  const look = pickLook(rng, size);
  const canvas = createCanvas(size, look.ss, bg, look.soft);
  const placed: { x: number; y: number; r: number }[] = [];
  const shapes: ShapeLabel[] = [];
  plan.forEach((p, i) => {
    const [lo, hi] = w.sizes[p.size]!;
    const r = rng.range(lo, hi) * size;
    // the spot farthest (relative to the radii) from the shapes already placed, of up to 30 tries
    let x = size / 2, y = size / 2, best = -Infinity;
    for (let tries = 0; tries < 30 && best < 1; tries++) {
      const m = r * 0.85; // a shape may poke out of the frame a little
      const tx = rng.range(m, size - m), ty = rng.range(m, size - m);
      const room = Math.min(Infinity, ...placed.map((q) => Math.hypot(q.x - tx, q.y - ty) / (q.r + r)));
      if (room > best) { best = room; x = tx; y = ty; }
    }
    placed.push({ x, y, r });
    const tilt = rng.chance(0.85) ? rng.normal() * 0.12 : rng.range(-0.5, 0.5);
    const stretch = rng.chance(0.6) ? 1 : rng.range(0.88, 1.12);
    const mirror = rng.chance(0.5) ? -1 : 1; // a moon opens either way; a lopsided triangle leans either way
    const pts = placePolygon(shapePolygon(p.shape, rng), x, y, r, tilt, stretch * mirror);
    fillPolygon(canvas, pts, fills[i]!);
    if (rng.chance(0.2)) {
      const dark = rng.chance(0.5) ? fills[i]!.map((v) => v * 0.45) as unknown as Rgb : shade('black', rng);
      strokePolyline(canvas, pts, rng.range(0.6, 2.5) * Math.max(1, size / 128), dark, true);
    }
    shapes.push({ shape: p.shape, color: p.color, size: p.size, ...positionOf(pts, size) });
  });
  return { canvas, look, labels: { kind: 'scene', shapes, background } };
}

function renderDoodle(rng: Rng, size: number, only?: string): { canvas: Canvas; look: Look; subject: string } {
  const subject = only ?? rng.pick(world().subjects);
  const paper: Rgb = rng.chance(0.4) ? [255, 255, 255] : (() => { const v = 255 - rng.range(0, 18); return [clamp255(v + rng.normal() * 3), clamp255(v + rng.normal() * 3), clamp255(v + rng.normal() * 3)]; })();
  const inkLevel = rng.chance(0.5) ? rng.range(0, 20) : rng.range(20, 70);
  const ink: Rgb = [clamp255(inkLevel + rng.normal() * 5), clamp255(inkLevel + rng.normal() * 5), clamp255(inkLevel + rng.normal() * 5)];
  const look = pickLook(rng, size);
  const canvas = createCanvas(size, look.ss, paper, look.soft);
  const k = size / 128;
  const width = rng.range(1.5, 5) * k;
  const scale = (size / 2) * rng.range(0.55, 0.92);
  const slack = Math.max(0, size / 2 - scale * 1.1); // room to move without leaving the frame
  const cx = size / 2 + rng.range(-slack, slack), cy = size / 2 + rng.range(-slack, slack);
  const angle = Math.max(-0.45, Math.min(0.45, rng.normal() * 0.2));
  const mirror = rng.chance(0.5) ? -1 : 1, aspect = rng.range(0.85, 1.15);
  const style: HandStyle = { wobble: rng.range(0, 0.022) * size, misplace: rng.range(0, 0.012) * size, step: Math.max(1, size / 64), period: size };
  const retrace = rng.chance(0.25);
  const c = Math.cos(angle), s = Math.sin(angle);
  const toPixels = ([x, y]: Point): Point => {
    const sx = x * mirror * aspect;
    return [cx + scale * (c * sx - s * y), cy + scale * (s * sx + c * y)];
  };
  for (const stroke of drawDoodle(subject, rng)) {
    const pts = stroke.pts.map(toPixels);
    const passes = retrace && rng.chance(0.6) ? 2 : 1;
    for (let pass = 0; pass < passes; pass++) {
      strokePolyline(canvas, handDraw(pts, stroke.closed ?? false, rng, style), width * (stroke.dot ?? 1) * (pass ? 0.8 : 1), ink);
    }
  }
  return { canvas, look, subject };
}

/**
 * Render one random picture of the world with its captions and labels. Everything comes
 * from `rng`, so the same seed gives the same bytes and captions.
 *
 * @example
 * const { image, caption } = renderSampleSync(createRng(1), { size: 64, kind: 'scene' });
 * // caption: e.g. "two small yellow stars on a blue background"
 */
export function renderSampleSync(rng: Rng, opts: RenderOptions): WorldSample {
  const { size } = opts;
  if (!Number.isInteger(size) || size < 16 || size > 1024) throw new RangeError(`The \`size\` option must be an integer between 16 and 1024, got ${size}.`);
  if (opts.subject !== undefined && !world().subjects.includes(opts.subject)) {
    throw new RangeError(`The \`subject\` option must be one of ${world().subjects.join(', ')}; got "${opts.subject}".`);
  }
  const kind = opts.subject !== undefined ? 'doodle' : (opts.kind ?? (rng.chance(0.5) ? 'scene' : 'doodle'));
  const w = world();
  if (kind === 'scene') {
    const { canvas, look, labels } = renderScene(rng, size);
    const { caption, captions } = sceneCaptions(labels.shapes!, labels.background!, w.vocab, rng);
    return { image: { width: size, height: size, data: finishCanvas(canvas, look) }, caption, captions, labels };
  }
  const { canvas, look, subject } = renderDoodle(rng, size, opts.subject);
  const { caption, captions } = doodleCaptions(subject, w.vocab, rng);
  return { image: { width: size, height: size, data: finishCanvas(canvas, look) }, caption, captions, labels: { kind, subject } };
}

/**
 * `renderSampleSync` behind a promise, the shape the training loops await.
 *
 * @example
 * const sample = await renderSample(createRng(7), { size: 128 });
 */
export async function renderSample(rng: Rng, opts: RenderOptions): Promise<WorldSample> {
  return renderSampleSync(rng, opts);
}

/**
 * `n` samples from `seed`. Sample i depends only on (seed, i), so batches can be split or
 * resumed without changing a picture.
 *
 * @example
 * const batch = await renderBatch(42, 256, { size: 64 });
 */
export async function renderBatch(seed: number, n: number, opts: RenderOptions & { start?: number }): Promise<WorldSample[]> {
  const start = opts.start ?? 0;
  const out: WorldSample[] = [];
  for (let i = 0; i < n; i++) out.push(renderSampleSync(createRng(sampleSeed(seed, start + i)), opts));
  return out;
}
