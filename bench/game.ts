/**
 * Game scoring latency with concurrent scorers. The game (server/game) does not exist yet, so
 * this measures the path it is to use: each scorer embeds one drawing with OrtClipEmbedder
 * (micro-batched with the other scorers' drawings) and compares it with the round's prompt
 * embeddings (cached text embeddings) — decoding and resizing the drawing are not included.
 */
import { OrtClipEmbedder, similarityLogits, type ClipConfig, type StateDict } from '../engine/index';
import { randomIds } from './inference';
import { percentile, progress } from './measure';

export interface ScoringLatency { p50_ms: number; p95_ms: number; samples: number; runs: number }

export async function gameScoring(config: ClipConfig, tensors: StateDict, opts: { scorers?: number; rounds?: number; prompts?: number } = {}): Promise<ScoringLatency> {
  const scorers = opts.scorers ?? 8;
  const rounds = opts.rounds ?? 10;
  const P = opts.prompts ?? 28; // the synthetic world's subjects
  const e = await OrtClipEmbedder.fromWeights({ config, tensors });
  try {
    const prompts = await e.embedTexts(randomIds(P, config, 99), P);
    const R = config.vision.imageSize;
    const size = config.vision.numChannels * R * R;
    const drawing = (s: number, r: number) => new Float32Array(size).map((_, i) => Math.sin(i * 0.01 * (s + 1) + r));
    // warm-up: one full round, not timed
    await Promise.all(Array.from({ length: scorers }, (_, s) => e.embedImages(drawing(s, -1), 1)));
    const runsBefore = e.stats.imageRuns;
    progress(`game scoring: ${scorers} concurrent scorers × ${rounds} drawings (image ${R}px, width ${config.vision.hiddenSize})`);
    const samples: number[] = [];
    await Promise.all(Array.from({ length: scorers }, async (_, s) => {
      for (let r = 0; r < rounds; r++) {
        const px = drawing(s, r);
        const t = performance.now();
        const img = await e.embedImages(px, 1);
        const logits = similarityLogits(img, 1, prompts, P, e.info.logitScale);
        let best = 0;
        for (let j = 1; j < P; j++) if (logits[j]! > logits[best]!) best = j;
        samples.push(performance.now() - t);
        void best;
      }
    }));
    return { p50_ms: percentile(samples, 50), p95_ms: percentile(samples, 95), samples: samples.length, runs: e.stats.imageRuns - runsBefore };
  } finally {
    await e.close();
  }
}
