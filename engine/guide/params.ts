/**
 * The parameters of VQGAN+CLIP generation: defaults, allowed ranges, and one validator that
 * names the field and the range when a value is wrong. Pure data and checks (no tensors), so
 * the server's protocol, the CLI and the worker job share the same limits.
 *
 * Names follow the notebooks' `args` (`cutn`, `cut_pow`, `step_size` → `lr`, `init_weight` →
 * `initStrength`); `size` is the side of the square output in pixels.
 */
import { InputError } from '../errors';
import { parsePrompts, type WeightedPrompt } from './loss';

/** An image to aim at: its CLIP embedding becomes a target like a text prompt's. */
export interface ImagePromptSpec {
  /** A path the engine can read (the server stores uploads under its data directory). */
  path: string;
  /** As a text prompt's weight; negative pushes away. */
  weight: number;
}

export interface GenerateParams {
  /** Text prompts: `text` or `text:weight` parts separated by `|`. */
  prompt: string;
  imagePrompts: ImagePromptSpec[];
  /** A picture to start from (its VQGAN latent), or none for a random latent. */
  initImage?: string;
  /**
   * The random start without an init image: `codes`, random codebook entries (the notebooks'
   * choice), or `smooth`, the encoding of a seeded low-frequency colour field (like later
   * notebooks' "pixels"/"perlin" inits), which starts without the codes' high-frequency texture.
   */
  start: GenerateStart;
  /** 0–1: how much of the init image the start latent keeps, and how strongly the loss holds it there. */
  initStrength: number;
  /** Side of the square output in pixels; a multiple of the VQGAN's downsampling factor. Undefined: the VQGAN's training resolution. */
  size?: number;
  steps: number;
  /** Adam's step size on the latent. */
  lr: number;
  /** Seeds the start latent, the cutouts and the augmentations. */
  seed: number;
  /** Random cutouts per step, each one CLIP image embedding. */
  cutn: number;
  /** Cutout size distribution: sizes are min + (max − min)·u^cutPow, so larger values favour small cutouts. */
  cutPow: number;
  /** Random flips, small shifts and scales, and noise on the cutouts. */
  augment: boolean;
  /** Send a preview (and keep an animation frame) every this many steps; 0 for none. */
  previewEvery: number;
}

export const GENERATE_STARTS = ['codes', 'smooth'] as const;
export type GenerateStart = (typeof GENERATE_STARTS)[number];
export const DEFAULT_START: GenerateStart = 'smooth';

interface NumberLimit { min: number; max: number; integer: boolean; default: number }

/** Allowed ranges and defaults. Defaults are tuned for the bundled demo models on two CPU cores. */
export const GENERATE_LIMITS = {
  steps: { min: 1, max: 2000, integer: true, default: 60 },
  lr: { min: 0.0001, max: 10, integer: false, default: 0.2 },
  seed: { min: 0, max: 2 ** 32 - 1, integer: true, default: 0 },
  cutn: { min: 1, max: 128, integer: true, default: 8 },
  cutPow: { min: 0.1, max: 10, integer: false, default: 1 },
  size: { min: 8, max: 1024, integer: true, default: 0 },
  previewEvery: { min: 0, max: 2000, integer: true, default: 5 },
  initStrength: { min: 0, max: 1, integer: false, default: 0.5 },
  imageWeight: { min: -10, max: 10, integer: false, default: 1 },
} as const satisfies Record<string, NumberLimit>;

export const PROMPT_MAX_LENGTH = 1000;
export const MAX_IMAGE_PROMPTS = 4;

/** The words a person uses for each field in messages (the CLI's flag names where they differ). */
function describe(name: keyof typeof GENERATE_LIMITS): string {
  return `\`${name}\``;
}

/** The range sentence every message about a number uses: "must be an integer between 1 and 2000". */
export function rangeText(name: keyof typeof GENERATE_LIMITS): string {
  const l: NumberLimit = GENERATE_LIMITS[name];
  return `must be ${l.integer ? 'an integer' : 'a number'} between ${l.min} and ${l.max}`;
}

function checkNumber(name: keyof typeof GENERATE_LIMITS, value: unknown, field: string = name): number {
  const l: NumberLimit = GENERATE_LIMITS[name];
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || (l.integer && !Number.isInteger(n)) || n < l.min || n > l.max) {
    throw new InputError(field, `The ${describe(name)} option ${rangeText(name)}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/**
 * The notebooks' `text:weight | text:weight` syntax (parsePrompts), stricter about one thing:
 * a colon followed directly by a word with no space ("a cat:abc") is read as a weight that is
 * not a number, and refused, since that is what the `|`/`:` syntax help teaches. Text with a
 * colon in it keeps working with a space after the colon ("a photo: sunset").
 *
 * @example
 * parseGeneratePrompt('a red circle | a blue background:0.5'); // two prompts
 * parseGeneratePrompt('a cat:abc'); // InputError('prompt', 'The weight of "a cat:abc" must be a number …')
 */
export function parseGeneratePrompt(prompt: unknown): WeightedPrompt[] {
  if (typeof prompt !== 'string') throw new InputError('prompt', `The \`prompt\` must be text, got ${typeof prompt}`);
  const trimmed = prompt.trim();
  if (!trimmed) throw new InputError('prompt', 'The `prompt` is empty: describe the picture, e.g. "a red circle on a blue background"');
  if (prompt.length > PROMPT_MAX_LENGTH) {
    throw new InputError('prompt', `The \`prompt\` must be at most ${PROMPT_MAX_LENGTH} characters, got ${prompt.length}`);
  }
  const parsed = parsePrompts(trimmed);
  for (const part of parsed) {
    const m = /:(\S+)$/.exec(part.text);
    if (m) throw new InputError('prompt', `The weight of "${part.text}" must be a number like 1 or -0.5, got "${m[1]}" (for a colon inside the text, put a space after it)`);
  }
  if (!parsed.some((p) => p.weight !== 0)) throw new InputError('prompt', 'Every prompt weight is 0: give at least one part a non-zero weight');
  return parsed;
}

/** Draw a seed when none is given (recorded in the recipe, so the image can be made again). */
export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 32) >>> 0;
}

/**
 * Fill in defaults and check every field, throwing InputError that names the first wrong one
 * and its allowed range. `size` is checked against the model later (`checkSize`), since the
 * VQGAN's factor is known only then. A missing seed is drawn at random.
 *
 * @example
 * const p = validateGenerateParams({ prompt: 'a red circle', steps: 30 });
 * validateGenerateParams({ prompt: 'x', steps: 0 }); // InputError: The `steps` option must be an integer between 1 and 2000, got 0
 */
export function validateGenerateParams(raw: unknown): GenerateParams {
  if (!raw || typeof raw !== 'object') throw new InputError('params', 'Generation parameters must be an object');
  const r = raw as Record<string, unknown>;
  parseGeneratePrompt(r.prompt);
  const num = (name: keyof typeof GENERATE_LIMITS) => (r[name] === undefined || r[name] === null ? GENERATE_LIMITS[name].default : checkNumber(name, r[name]));
  const imagePrompts: ImagePromptSpec[] = [];
  if (r.imagePrompts !== undefined) {
    if (!Array.isArray(r.imagePrompts)) throw new InputError('imagePrompts', 'The `imagePrompts` must be a list of {path, weight}');
    if (r.imagePrompts.length > MAX_IMAGE_PROMPTS) throw new InputError('imagePrompts', `At most ${MAX_IMAGE_PROMPTS} image prompts, got ${r.imagePrompts.length}`);
    r.imagePrompts.forEach((p: unknown, i) => {
      const ip = p as { path?: unknown; weight?: unknown };
      if (!ip || typeof ip.path !== 'string' || !ip.path) throw new InputError(`imagePrompts.${i}`, `Image prompt ${i + 1} has no image`);
      const weight = ip.weight === undefined ? 1 : checkNumber('imageWeight', ip.weight, `imagePrompts.${i}.weight`);
      imagePrompts.push({ path: ip.path, weight });
    });
  }
  if (r.initImage !== undefined && r.initImage !== null && (typeof r.initImage !== 'string' || !r.initImage)) {
    throw new InputError('initImage', 'The `initImage` must name an image file');
  }
  if (typeof r.augment !== 'undefined' && typeof r.augment !== 'boolean') {
    throw new InputError('augment', `The \`augment\` option must be true or false, got ${JSON.stringify(r.augment)}`);
  }
  if (r.start !== undefined && r.start !== null && !(GENERATE_STARTS as readonly unknown[]).includes(r.start)) {
    throw new InputError('start', `The \`start\` option must be one of ${GENERATE_STARTS.join(', ')}, got ${JSON.stringify(r.start)}`);
  }
  const size = r.size === undefined || r.size === null ? undefined : checkNumber('size', r.size);
  return {
    prompt: (r.prompt as string).trim(),
    imagePrompts,
    ...(typeof r.initImage === 'string' ? { initImage: r.initImage } : {}),
    start: (r.start as GenerateStart | undefined | null) ?? DEFAULT_START,
    initStrength: num('initStrength'),
    ...(size !== undefined ? { size } : {}),
    steps: num('steps'),
    lr: num('lr'),
    seed: r.seed === undefined || r.seed === null ? randomSeed() : checkNumber('seed', r.seed),
    cutn: num('cutn'),
    cutPow: num('cutPow'),
    augment: (r.augment as boolean | undefined) ?? true,
    previewEvery: num('previewEvery'),
  };
}

/**
 * The output size for a VQGAN with downsampling `factor` and training resolution `native`:
 * `size` itself when it is a multiple of the factor, else an InputError naming `size`.
 */
export function checkSize(size: number | undefined, factor: number, native: number): number {
  const s = size ?? native;
  if (s % factor !== 0) {
    const lower = Math.max(factor, s - (s % factor));
    throw new InputError('size', `The \`size\` option must be a multiple of ${factor} (this VQGAN's downsampling factor), got ${s}; try ${lower} or ${lower + factor}`);
  }
  if (s < factor) throw new InputError('size', `The \`size\` option must be at least ${factor}, got ${s}`);
  return s;
}
