/**
 * `clip-studio classify IMAGE... --labels "a red circle,a blue star" [--model ID] [--json]`:
 * zero-shot classification. Every image is scored against every label; scores are softmax
 * probabilities over the labels with the model's logit scale. Without --model the default
 * CLIP model is used (the bundled demo when no real one is installed; said on stderr).
 * `--json` prints [{file, ranking: [{label, score}]}], each ranking best first. Runs on
 * onnxruntime (engine/classify.ts).
 */
import type { Command } from 'commander';
import { classify, defaultModel, type ClassifyResult, type RegistryOptions } from '../../engine/index';
import { loadConfig } from '../../server/config';
import { CliError } from '../errors';

export interface ClassifyCommandContext {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env: Record<string, string | undefined>;
  /** Directory of model manifests; default the repo's models/. */
  manifestsDir?: string;
}

const defaultContext = (): ClassifyCommandContext => ({ stdout: process.stdout, stderr: process.stderr, env: process.env });

/** "a red circle, a blue star" → ['a red circle', 'a blue star']; empty items dropped. */
export function parseLabels(list: string): string[] {
  return list.split(',').map((s) => s.trim()).filter(Boolean);
}

/** Human output: per image, every label with its probability, best first. */
export function formatClassification(results: ClassifyResult[]): string {
  return results.map((r) => [r.file, ...r.ranking.map((x) => `  ${(x.score * 100).toFixed(1).padStart(5)}%  ${x.label}`)].join('\n')).join('\n\n');
}

export function registerClassifyCommand(program: Command, ctx: ClassifyCommandContext = defaultContext()): void {
  program
    .command('classify')
    .description('score images against text labels with CLIP (zero-shot classification)')
    .argument('<images...>', 'image files (PNG, JPEG, WebP or GIF, any size)')
    .requiredOption('--labels <list>', 'comma-separated labels, e.g. "a red circle,a blue star"')
    .option('--model <id>', 'a CLIP model id (see `clip-studio models list`) or a model directory')
    .option('--json', 'print [{file, ranking: [{label, score}]}]')
    .action(async (images: string[], opts: { labels: string; model?: string; json?: boolean }) => {
      const labels = parseLabels(opts.labels);
      if (labels.length < 1) throw new CliError('--labels needs at least one label (comma-separated)', 2);
      const config = loadConfig(ctx.env as NodeJS.ProcessEnv);
      const registry: RegistryOptions = { modelsDir: ctx.manifestsDir, dataDir: config.dataDir, installDir: config.modelsDir };
      if (!opts.model) ctx.stderr.write(`model: ${defaultModel('clip', registry).reason}\n`);
      // Built ONNX graphs are cached under the data directory, so only the first run builds them.
      const results = await classify(images, labels, { model: opts.model, registry, dataDir: config.dataDir });
      ctx.stdout.write(`${opts.json ? JSON.stringify(results, null, 2) : formatClassification(results)}\n`);
    });
}
