/**
 * The server's one CLIP scorer (onnxruntime; engine/scorer.ts), shared by everything that
 * scores without a gradient: caption ranking, game scoring and live guesses. Opened on first
 * use (building and caching the model's ONNX graphs under the data directory), with text
 * embeddings persisted in SQLite so a restart does not re-embed every prompt.
 *
 * @example
 * const scoring = new ScoringService(config);
 * const ranking = await (await scoring.get()).rank(png, ['a house', 'a boat']);
 */
import { join } from 'node:path';
import { ClipScorer, type ClipOnnxPrecision, type RegistryOptions } from '../engine/index';
import type { StudioConfig } from './config';
import { SqliteTextStore } from './store/text-embeddings';

export class ScoringService {
  private opening?: Promise<ClipScorer>;

  constructor(
    private readonly config: StudioConfig,
    /**
     * `manifestsDir`: where the model manifests are (default the repo's models/; tests point it elsewhere).
     * `visionPrecision`: `int8` runs the vision tower with int8 weights (about 2× faster on a CPU,
     * embeddings within a cosine of ~0.9998 of fp32's; bench/quantize.ts) — for the game on a
     * ViT-B-sized model, where fp32 cannot score 8 drawings in 150 ms on a few cores. Default fp32.
     */
    private readonly opts: { model?: string; manifestsDir?: string; visionPrecision?: ClipOnnxPrecision } = {},
  ) {}

  /** The scorer, opening it on the first call; a failed open is retried on the next call. */
  get(): Promise<ClipScorer> {
    if (!this.opening) {
      const registry: RegistryOptions = {
        dataDir: this.config.dataDir, installDir: this.config.modelsDir,
        ...(this.opts.manifestsDir ? { modelsDir: this.opts.manifestsDir } : {}),
      };
      const textStore = new SqliteTextStore(join(this.config.dataDir, 'text-embeddings.db'));
      this.opening = ClipScorer.open({
        ...(this.opts.model ? { model: this.opts.model } : {}),
        registry,
        dataDir: this.config.dataDir,
        textStore,
        ...(this.opts.visionPrecision ? { embedder: { visionPrecision: this.opts.visionPrecision } } : {}),
      });
      this.opening.catch(() => {
        textStore.close(); // the scorer that would have owned it never opened
        this.opening = undefined;
      });
    }
    return this.opening;
  }

  async close(): Promise<void> {
    const opening = this.opening;
    this.opening = undefined;
    if (opening) await (await opening.catch(() => undefined))?.close();
  }
}
