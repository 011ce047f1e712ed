/**
 * Game scoring latency with concurrent scorers, through the path the game's judge takes
 * (server/game/judge.ts): a drawing's pixels embedded by ClipScorer (micro-batched with the
 * other scorers' drawings), its logits against the pack's prompts (text embeddings from the
 * scorer's cache after the first call) and the softmax over them. Each sample is one drawing,
 * from its preprocessed pixels to its best guess.
 *
 * Preprocessing (the 512² canvas resized to the model's size by toClipPixels) is left out of
 * the samples: it is synchronous work on the caller's thread, not the scorer's, and is
 * reported beside them (`preprocess_ms`, per drawing) so its share is not hidden.
 */
import { ClipScorer, softmax, toClipPixels, type ClipConfig, type ClipOnnxPrecision, type RgbImage, type StateDict } from '../engine/index';
import { percentile, progress } from './measure';

export interface ScoringLatency { p50_ms: number; p95_ms: number; samples: number; runs: number; prompts: number; preprocess_ms: number }

/** The game's canvas side (server/game/drawing.ts judges 512×512 drawings; the scorer scales them down). */
const CANVAS = 512;

/** A canvas with a few strokes, different per scorer and round (values matter little; sizes do). */
function drawing(s: number, r: number): RgbImage {
  const data = new Uint8Array(CANVAS * CANVAS * 3).fill(255);
  for (let k = 0; k < 6; k++) {
    const cx = (37 * (s + 1) + 53 * k + 11 * r) % CANVAS;
    const cy = (71 * (s + 2) + 29 * k + 17 * r) % CANVAS;
    for (let t = 0; t < 400; t++) {
      const x = Math.round(cx + 120 * Math.cos((t / 400) * 6.283 * (k + 1)));
      const y = Math.round(cy + 120 * Math.sin((t / 400) * 6.283));
      for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) {
        const px = x + dx, py = y + dy;
        if (px >= 0 && py >= 0 && px < CANVAS && py < CANVAS) data.fill(k * 40, (py * CANVAS + px) * 3, (py * CANVAS + px) * 3 + 3);
      }
    }
  }
  return { width: CANVAS, height: CANVAS, data };
}

/** The pack: `n` prompts in the game's style ("a drawing of a …"). */
export function promptPack(n: number): string[] {
  const things = ['house', 'tree', 'sun', 'cat', 'dog', 'fish', 'bird', 'car', 'boat', 'flower', 'star', 'moon', 'cloud', 'umbrella',
    'cup', 'key', 'clock', 'apple', 'banana', 'heart', 'bicycle', 'guitar', 'hat', 'shoe', 'snake', 'rocket', 'ladder', 'lamp'];
  return Array.from({ length: n }, (_, i) => `a drawing of a ${things[i % things.length]}${i >= things.length ? ` ${Math.floor(i / things.length) + 1}` : ''}`);
}

export async function gameScoring(
  config: ClipConfig, tensors: StateDict,
  opts: { scorers?: number; rounds?: number; prompts?: number; visionPrecision?: ClipOnnxPrecision } = {},
): Promise<ScoringLatency> {
  const scorers = opts.scorers ?? 8;
  const rounds = opts.rounds ?? 10;
  const prompts = promptPack(opts.prompts ?? 28);
  const scorer = await ClipScorer.fromWeights({ config, tensors, id: 'random' }, { embedder: { visionPrecision: opts.visionPrecision ?? 'fp32' } });
  try {
    const scoreOne = async (px: Float32Array) => {
      const [embeds, text] = await Promise.all([scorer.pixelEmbeddings(px, 1), scorer.textEmbeddings(prompts)]);
      const probs = softmax(scorer.logits(embeds, 1, text.embeds, prompts.length));
      return probs.indexOf(Math.max(...probs));
    };
    const t0 = performance.now();
    const pixels = Array.from({ length: scorers }, (_, s) => Array.from({ length: rounds + 1 }, (_, r) => toClipPixels(drawing(s, r - 1), scorer.preprocess)));
    const preprocessMs = (performance.now() - t0) / (scorers * (rounds + 1));
    // warm-up: the prompts' first (uncached) encode and one full round, not timed
    await Promise.all(Array.from({ length: scorers }, (_, s) => scoreOne(pixels[s]![0]!)));
    const runsBefore = scorer.stats.imageRuns;
    const textRunsBefore = scorer.stats.textRuns;
    progress(`game scoring: ${scorers} concurrent scorers × ${rounds} drawings (image ${config.vision.imageSize}px, width ${config.vision.hiddenSize}, ${opts.visionPrecision ?? 'fp32'})`);
    const samples: number[] = [];
    await Promise.all(Array.from({ length: scorers }, async (_, s) => {
      for (let r = 1; r <= rounds; r++) {
        const t = performance.now();
        await scoreOne(pixels[s]![r]!);
        samples.push(performance.now() - t);
      }
    }));
    if (scorer.stats.textRuns !== textRunsBefore) throw new Error('the prompts were re-encoded during the timed rounds: the text cache did not hold them');
    return { p50_ms: percentile(samples, 50), p95_ms: percentile(samples, 95), samples: samples.length, runs: scorer.stats.imageRuns - runsBefore, prompts: prompts.length, preprocess_ms: preprocessMs };
  } finally {
    await scorer.close();
  }
}
