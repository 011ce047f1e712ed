/**
 * Captioning's quality checks with the bundled demo CLIP, on held-out renders of the demo
 * world (seeds derived from DEMO_EVAL_SEED, which training never draws; streams 60 and 61, which
 * the demo CLIP's own evaluation does not use):
 *
 *   llm       40 renders (scenes and doodles); an "LLM" proposes the right caption among
 *             distractors that share its words (another colour, shape, size, background or
 *             subject); does CLIP rank the right one first? (acceptance: ≥ 90 %)
 *   offline   40 single-shape scenes, no LLM: does the offline generator's best caption name
 *             the shape's colour and shape? (acceptance: ≥ 80 %)
 *
 * The LLM is whatever endpoint `llm` talks to; `propose(candidates)` tells that endpoint what to
 * answer next (scripts/caption-eval.ts and test/acceptance/caption-quality.test.ts run a local
 * OpenAI-compatible server, so the candidates travel over real HTTP through the `openai` package).
 */
import { encodePng } from '../io/images';
import type { ClipScorer } from '../scorer';
import { createRng, sampleSeed, type Rng } from '../demo/rng';
import { DEMO_EVAL_SEED } from '../demo/train-clip';
import { renderSampleSync, worldVocabulary, type WorldSample } from '../demo/world';
import { fixArticles } from './compose';
import type { CaptionLlm } from './llm';
import { captionImage } from './pipeline';

export const CAPTION_EVAL_STREAMS = { llm: 60, offline: 61 } as const;

export interface CaptionFigure {
  name: string;
  correct: number;
  total: number;
  accuracy: number;
  target: number;
  /** Up to 8 misses, "truth → chosen". */
  misses: string[];
}

/** `n` held-out renders of `stream` that `keep` accepts. */
export function heldOutSamples(stream: number, n: number, opts: { kind?: 'scene' | 'doodle'; keep?: (s: WorldSample) => boolean } = {}): WorldSample[] {
  const out: WorldSample[] = [];
  for (let i = 0; out.length < n; i++) {
    const s = renderSampleSync(createRng(sampleSeed(DEMO_EVAL_SEED + stream, i)), { size: 128, ...(opts.kind ? { kind: opts.kind } : {}) });
    if (!opts.keep || opts.keep(s)) out.push(s);
  }
  return out;
}

/**
 * Wrong captions that share the right one's words: one colour, shape, size or doodle subject
 * swapped for another of the vocabulary. None is a caption the picture also fits.
 *
 * @example
 * demoDistractors(sample, createRng(1), 9); // "a blue circle on a red background" → "a green circle on a red background", …
 */
export function demoDistractors(sample: WorldSample, rng: Rng, n: number): string[] {
  const v = worldVocabulary();
  const plural = (s: string) => (s === 'cross' ? 'crosses' : `${s}s`);
  // a scene's colours, shapes and sizes; a doodle's subject (its template's "black and white" stays)
  const swaps: [string[], string[]][] = sample.labels.kind === 'scene'
    ? [[v.colors, v.colors], [v.backgroundColors, v.backgroundColors], [v.shapes, v.shapes], [v.shapes.map(plural), v.shapes.map(plural)], [v.sizes, v.sizes]]
    : [[[sample.labels.subject!], v.subjects]];
  const fits = new Set(sample.captions);
  const found = new Set<string>();
  for (const [words, options] of swaps) {
    for (const w of words) {
      const re = new RegExp(`\\b${w}\\b`, 'g');
      for (const m of sample.caption.matchAll(re)) {
        for (const o of options) {
          if (o === w) continue;
          const text = fixArticles(sample.caption.slice(0, m.index) + o + sample.caption.slice(m.index! + w.length));
          if (!fits.has(text)) found.add(text);
        }
      }
    }
  }
  return shuffle([...found], rng).slice(0, n);
}

/** Fisher–Yates, in place, from `rng`. */
function shuffle<T>(items: T[], rng: Rng): T[] {
  for (let j = items.length - 1; j > 0; j--) {
    const r = rng.int(0, j);
    [items[j], items[r]] = [items[r]!, items[j]!];
  }
  return items;
}

async function pngOf(s: WorldSample): Promise<Buffer> {
  return encodePng(s.image.data, s.image.width, s.image.height);
}

/**
 * The "LLM candidates" figure: for each render the endpoint proposes the right caption and
 * `candidates - 1` distractors (shuffled), CLIP ranks them (no refinement rounds).
 */
export async function evaluateLlmRanking(scorer: ClipScorer, llm: CaptionLlm, propose: (candidates: string[]) => void, opts: { n?: number; candidates?: number } = {}): Promise<CaptionFigure> {
  const n = opts.n ?? 40;
  const k = opts.candidates ?? 10;
  const samples = heldOutSamples(CAPTION_EVAL_STREAMS.llm, n);
  let correct = 0;
  const misses: string[] = [];
  for (const [i, s] of samples.entries()) {
    const rng = createRng(sampleSeed(DEMO_EVAL_SEED + CAPTION_EVAL_STREAMS.llm, 10_000 + i));
    const candidates = shuffle([s.caption, ...demoDistractors(s, rng, k - 1)], rng);
    propose(candidates);
    const result = await captionImage(scorer, await pngOf(s), { rounds: 0, candidates: k }, { llm });
    if (result.source !== 'llm' || result.captions.length < Math.min(8, k)) throw new Error(`Image ${i}: the LLM's candidates were not used (${result.notices.join(' ')})`);
    if (result.captions[0]!.text === s.caption) correct++;
    else if (misses.length < 8) misses.push(`"${s.caption}" → "${result.captions[0]!.text}"`);
  }
  return { name: `right caption first among ${k} LLM candidates`, correct, total: n, accuracy: correct / n, target: 0.9, misses };
}

/** The offline figure: single-shape scenes, no LLM, default rounds; the best caption must say "{colour} {shape}". */
export async function evaluateOffline(scorer: ClipScorer, opts: { n?: number } = {}): Promise<CaptionFigure[]> {
  const n = opts.n ?? 40;
  const samples = heldOutSamples(CAPTION_EVAL_STREAMS.offline, n, { kind: 'scene', keep: (s) => s.labels.shapes!.length === 1 });
  let both = 0, colour = 0, shape = 0;
  const misses: string[] = [];
  const v = worldVocabulary();
  for (const s of samples) {
    const truth = s.labels.shapes![0]!;
    const best = (await captionImage(scorer, await pngOf(s))).captions[0]!.text;
    // the colour word right before the shape word, as the offline templates write them
    const m = new RegExp(`\\b(${v.colors.join('|')}) (${v.shapes.join('|')})\\b`).exec(best);
    const okColour = m?.[1] === truth.color, okShape = m?.[2] === truth.shape;
    if (okColour) colour++;
    if (okShape) shape++;
    if (okColour && okShape) both++;
    else if (misses.length < 8) misses.push(`${truth.color} ${truth.shape} → "${best}"`);
  }
  return [
    { name: 'offline: colour and shape right', correct: both, total: n, accuracy: both / n, target: 0.8, misses },
    { name: 'offline: colour right', correct: colour, total: n, accuracy: colour / n, target: 0, misses: [] },
    { name: 'offline: shape right', correct: shape, total: n, accuracy: shape / n, target: 0, misses: [] },
  ];
}

/** The figures as lines of text. */
export function formatCaptionFigures(figures: CaptionFigure[]): string {
  return figures.map((f) => [
    `${f.name}: ${f.correct}/${f.total} = ${(f.accuracy * 100).toFixed(1)}%${f.target ? ` (target ≥ ${f.target * 100}%: ${f.accuracy >= f.target ? 'met' : 'NOT met'})` : ''}`,
    ...f.misses.map((m) => `    ${m}`),
  ].join('\n')).join('\n');
}
