/**
 * `clip-studio caption IMAGE... [--rounds N] [--candidates N] [--no-llm] [--send-image] [--model ID] [--json]`:
 * describe images. CLIP reads each image against term lists, the configured LLM
 * (OPENAI_BASE_URL, OPENAI_API_KEY, CAPTION_LLM_MODEL) proposes candidates, CLIP ranks them
 * and the LLM refines the best; without an LLM the offline generator writes the candidates
 * (said on stderr, and in `source`). `--json` prints, per image,
 * {file, captions: [{text, score}], terms: [{text, score}], source}, captions best first.
 */
import type { Command } from 'commander';
import {
  captionImage, CaptionLlm, ClipScorer, defaultModel, InputError, validateCaptionOptions, type CaptionResult, type RegistryOptions,
} from '../../engine/index';
import { loadConfig } from '../../server/config';
import { CliError } from '../errors';

export interface CaptionCommandContext {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env: Record<string, string | undefined>;
  /** Directory of model manifests; default the repo's models/. */
  manifestsDir?: string;
}

const defaultContext = (): CaptionCommandContext => ({ stdout: process.stdout, stderr: process.stderr, env: process.env });

export interface CaptionJson {
  file: string;
  captions: { text: string; score: number }[];
  terms: { text: string; score: number }[];
  source: 'llm' | 'offline';
}

/** The `--json` shape of one image's result. */
export function captionJson(file: string, r: CaptionResult): CaptionJson {
  return {
    file,
    captions: r.captions.map((c) => ({ text: c.text, score: c.score })),
    terms: r.terms.filter((t) => t.category !== 'kind').map((t) => ({ text: t.text, score: t.score })),
    source: r.source,
  };
}

/** Human output: the best captions with their scores, then the terms CLIP read. */
export function formatCaptions(file: string, r: CaptionResult, top = 5): string {
  const pct = (s: number) => `${(s * 100).toFixed(1).padStart(5)}%`;
  return [
    `${file}  (${r.source === 'llm' ? 'LLM' : 'offline generator'}, ${r.rounds.length} round${r.rounds.length === 1 ? '' : 's'}, ${r.captions.length} candidates)`,
    ...r.captions.slice(0, top).map((c) => `  ${pct(c.score)}  ${c.text}${c.truncated ? '  (over 77 tokens, truncated)' : ''}`),
    `  terms: ${r.terms.filter((t) => t.category !== 'kind').slice(0, 12).map((t) => `${t.text} ${Math.round(t.score * 100)}%`).join(', ')}`,
  ].join('\n');
}

/** A whole number from a flag, or a usage error naming the flag. */
function intFlag(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^-?\d+$/.test(raw.trim())) throw new CliError(`${flag}: must be a whole number, got ${JSON.stringify(raw)}`, 2);
  return Number(raw);
}

export function registerCaptionCommand(program: Command, ctx: CaptionCommandContext = defaultContext()): void {
  program
    .command('caption')
    .description('describe images: CLIP ranks candidate captions an LLM (or the offline generator) writes')
    .argument('<images...>', 'image files (PNG, JPEG, WebP or GIF, any size)')
    .option('--rounds <n>', 'refinement rounds after the first proposal (0–8, default 2)')
    .option('--candidates <n>', 'candidates per round (2–64, default 12)')
    .option('--no-llm', 'do not ask the configured LLM; the offline generator only')
    .option('--send-image', 'also send the image to the LLM (for models that accept images)')
    .option('--model <id>', 'a CLIP model id (see `clip-studio models list`) or a model directory')
    .option('--json', 'print [{file, captions: [{text, score}], terms: [{text, score}], source}]')
    .action(async (images: string[], opts: { rounds?: string; candidates?: string; llm: boolean; sendImage?: boolean; model?: string; json?: boolean }) => {
      let options;
      try {
        options = validateCaptionOptions({ rounds: intFlag('--rounds', opts.rounds), candidates: intFlag('--candidates', opts.candidates), sendImage: opts.sendImage ?? false });
      } catch (err) {
        if (err instanceof InputError) throw new CliError(`--${err.field === 'sendImage' ? 'send-image' : err.field}: ${err.message}`, 2);
        throw err;
      }
      const config = loadConfig(ctx.env as NodeJS.ProcessEnv);
      const registry: RegistryOptions = { modelsDir: ctx.manifestsDir, dataDir: config.dataDir, installDir: config.modelsDir };
      if (!opts.model) ctx.stderr.write(`model: ${defaultModel('clip', registry).reason}\n`);
      const { llm: l } = config;
      const llm = opts.llm && l.model && (l.baseUrl || l.apiKey)
        ? new CaptionLlm({ model: l.model, ...(l.timeoutMs ? { timeoutMs: l.timeoutMs } : {}), ...(l.baseUrl ? { baseUrl: l.baseUrl } : {}), ...(l.apiKey ? { apiKey: l.apiKey } : {}) })
        : undefined;
      if (llm) ctx.stderr.write(`llm: ${llm.model} at ${llm.host}\n`);
      const scorer = await ClipScorer.open({ ...(opts.model ? { model: opts.model } : {}), registry, dataDir: config.dataDir });
      try {
        const out: CaptionJson[] = [];
        for (const file of images) {
          const result = await captionImage(scorer, file, options, {
            ...(llm ? { llm } : {}),
            onEvent: (e) => { if (e.type === 'notice') ctx.stderr.write(`${file}: ${e.message}\n`); },
          });
          if (opts.json) out.push(captionJson(file, result));
          else ctx.stdout.write(`${formatCaptions(file, result)}\n\n`);
        }
        if (opts.json) ctx.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      } finally {
        await scorer.close();
      }
    });
}
