/**
 * The judge: CLIP (the server's shared ClipScorer, onnxruntime) scores drawings against a
 * prompt pack. A drawing's score is CLIP's probability of the round's prompt among the pack's
 * prompts — the softmax of the logits with the model's logit scale — × 100. Penalty prompts
 * ("the written word {label}") that outrank the prompt multiply it by the pack's factor;
 * moderation prompts that outrank every prompt of the pack hide the drawing. Guesses are the
 * top five of the same softmax. Text embeddings are computed once per pack and prompt.
 *
 * @example
 * const judge = new Judge(() => scoring.get());
 * const verdicts = await judge.judgeRound(pack, prompt, [{ seat: 's1', png }]);
 */
import { decodeImage, softmax, toClipPixels, type ClipScorer, type RgbImage } from '../../engine/index';
import { PLAY_LIMITS, type PlayGuess } from '../protocol';
import { BLANK_INK, inkFraction } from './drawing';
import { fillPenalty, type GamePack, type GamePrompt } from './packs';
import type { DrawingVerdict } from './scoring';

/** p50 and p95 of durations in ms (nearest rank). */
export function percentiles(samples: readonly number[]): { n: number; p50: number; p95: number } {
  if (!samples.length) return { n: 0, p50: NaN, p95: NaN };
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  return { n: s.length, p50: at(0.5), p95: at(0.95) };
}

export class Judge {
  /** Durations (ms) of live-guess scorings and of whole-round judgings, for the latency report. */
  readonly timings = { guesses: [] as number[], rounds: [] as number[] };
  private readonly texts = new Map<string, Promise<{ embeds: Float32Array; m: number }>>();

  constructor(private readonly scorer: () => Promise<ClipScorer>) {}

  /** CLIP's top guesses for one drawing among the pack's prompts. */
  async guesses(image: RgbImage, pack: GamePack, k: number = PLAY_LIMITS.guesses): Promise<PlayGuess[]> {
    const t0 = performance.now();
    const [row] = await this.logitRows([image], pack, null);
    const probs = softmax(row!.subarray(0, pack.prompts.length));
    this.record(this.timings.guesses, performance.now() - t0);
    return topGuesses(probs, pack, k);
  }

  /**
   * Verdicts for a round's drawings (PNG bytes the server re-encoded), by seat. Blank canvases
   * are not shown to CLIP: they score nothing.
   */
  async judgeRound(pack: GamePack, prompt: GamePrompt, drawings: readonly { seat: string; png: Buffer }[]): Promise<Record<string, DrawingVerdict>> {
    const t0 = performance.now();
    const promptIndex = pack.prompts.findIndex((p) => p.label === prompt.label);
    if (promptIndex < 0) throw new Error(`The prompt "${prompt.label}" is not in pack ${pack.id}.`);
    const decoded = await Promise.all(drawings.map(async (d) => {
      const image = await decodeImage(d.png, { name: `drawing of ${d.seat}` });
      return { seat: d.seat, image, blank: inkFraction(image) < BLANK_INK };
    }));
    const out: Record<string, DrawingVerdict> = {};
    for (const d of decoded.filter((x) => x.blank)) out[d.seat] = { probability: 0, clipScore: 0, guesses: [], penalty: null, moderated: false, blank: true };
    const inked = decoded.filter((x) => !x.blank);
    if (inked.length) {
      const rows = await this.logitRows(inked.map((x) => x.image), pack, prompt);
      const P = pack.prompts.length;
      const penalties = pack.penalties.prompts.map((t) => fillPenalty(t, prompt));
      inked.forEach((d, i) => {
        const row = rows[i]!;
        const probs = softmax(row.subarray(0, P));
        const probability = probs[promptIndex]!;
        // A penalty prompt (the prompt written as words, …) that CLIP prefers to the prompt itself.
        let worst = -1;
        for (let j = 0; j < penalties.length; j++) if (worst < 0 || row[P + j]! > row[P + worst]!) worst = j;
        const penalty = worst >= 0 && row[P + worst]! > row[promptIndex]! ? { prompt: penalties[worst]!, factor: pack.penalties.factor } : null;
        let bestPromptLogit = -Infinity;
        for (let j = 0; j < P; j++) bestPromptLogit = Math.max(bestPromptLogit, row[j]!);
        const moderated = pack.moderation.prompts.some((_, j) => row[P + penalties.length + j]! > bestPromptLogit);
        const factor = penalty?.factor ?? 1;
        out[d.seat] = {
          probability, clipScore: Math.round(probability * 100 * factor * 10) / 10,
          guesses: topGuesses(probs, pack, PLAY_LIMITS.guesses), penalty, moderated, blank: false,
        };
      });
    }
    this.record(this.timings.rounds, performance.now() - t0);
    return out;
  }

  latency() {
    return { guesses: percentiles(this.timings.guesses), rounds: percentiles(this.timings.rounds) };
  }

  /**
   * Logits of each image against the pack's prompts, then (with a round's prompt) its
   * penalty prompts and the moderation prompts: one row of P [+ penalties + moderation] per image.
   */
  private async logitRows(images: readonly RgbImage[], pack: GamePack, prompt: GamePrompt | null): Promise<Float32Array[]> {
    const scorer = await this.scorer();
    const texts = pack.prompts.map((p) => p.text);
    if (prompt) texts.push(...pack.penalties.prompts.map((t) => fillPenalty(t, prompt)), ...pack.moderation.prompts);
    const key = `${scorer.model.id}\n${texts.join('\n')}`;
    let txt = this.texts.get(key);
    if (!txt) {
      txt = scorer.textEmbeddings(texts).then(({ embeds }) => ({ embeds, m: texts.length }));
      txt.catch(() => this.texts.delete(key));
      this.texts.set(key, txt);
    }
    const S = scorer.preprocess.size;
    const one = 3 * S * S;
    const px = new Float32Array(images.length * one);
    images.forEach((img, i) => px.set(toClipPixels(img, scorer.preprocess), i * one));
    const [imageEmbeds, { embeds, m }] = await Promise.all([scorer.pixelEmbeddings(px, images.length), txt]);
    const logits = scorer.logits(imageEmbeds, images.length, embeds, m);
    return images.map((_, i) => logits.subarray(i * m, (i + 1) * m));
  }

  private record(list: number[], ms: number): void {
    list.push(ms);
    if (list.length > 10_000) list.splice(0, list.length - 10_000);
  }
}

function topGuesses(probs: readonly number[], pack: GamePack, k: number): PlayGuess[] {
  return probs.map((p, i) => ({ label: pack.prompts[i]!.label, probability: p }))
    .sort((a, b) => b.probability - a.probability).slice(0, k);
}
