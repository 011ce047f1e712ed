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
import { ClipScorer, type RegistryOptions } from '../engine/index';
import type { StudioConfig } from './config';
import { SqliteTextStore } from './store/text-embeddings';

export class ScoringService {
  private opening?: Promise<ClipScorer>;

  constructor(
    private readonly config: StudioConfig,
    /** `manifestsDir`: where the model manifests are (default the repo's models/; tests point it elsewhere). */
    private readonly opts: { model?: string; manifestsDir?: string } = {},
  ) {}

  /** The scorer, opening it on the first call; a failed open is retried on the next call. */
  get(): Promise<ClipScorer> {
    if (!this.opening) {
      const registry: RegistryOptions = {
        dataDir: this.config.dataDir, installDir: this.config.modelsDir,
        ...(this.opts.manifestsDir ? { modelsDir: this.opts.manifestsDir } : {}),
      };
      this.opening = ClipScorer.open({
        ...(this.opts.model ? { model: this.opts.model } : {}),
        registry,
        dataDir: this.config.dataDir,
        textStore: new SqliteTextStore(join(this.config.dataDir, 'text-embeddings.db')),
      });
      this.opening.catch(() => { this.opening = undefined; });
    }
    return this.opening;
  }

  async close(): Promise<void> {
    const opening = this.opening;
    this.opening = undefined;
    if (opening) await (await opening.catch(() => undefined))?.close();
  }
}
