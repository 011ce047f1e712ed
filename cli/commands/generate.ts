/**
 * `clip-studio generate "prompt" -o out.png [--steps N --seed N --size N --lr X --cutn N
 *  --cut-pow X --init IMG --init-strength X --image-prompt IMG[:weight]… --model ID --vqgan ID
 *  --no-augment --animation out.webp --json]`: VQGAN+CLIP in this process, with a progress bar
 * on stderr. `--json` prints the recipe (every parameter, the seed, model ids and checksums,
 * backend, timings) on stdout. Bad values exit 2 with a message naming the option.
 */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { generateJob, InputError, type GenerateProgress, type RegistryOptions } from '../../engine/index';
import { loadConfig } from '../../server/config';
import { CliError } from '../errors';

export interface GenerateCommandContext {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; isTTY?: boolean };
  env: Record<string, string | undefined>;
  /** Directory of model manifests; default the repo's models/. */
  manifestsDir?: string;
}

const defaultContext = (): GenerateCommandContext => ({ stdout: process.stdout, stderr: process.stderr, env: process.env });

/** Engine field → the flag a CLI user typed. */
const FLAGS: Record<string, string> = {
  prompt: 'prompt', steps: '--steps', seed: '--seed', size: '--size', lr: '--lr', cutn: '--cutn', cutPow: '--cut-pow',
  initImage: '--init', start: '--start', initStrength: '--init-strength', previewEvery: '--preview-every', clipModel: '--model', vqganModel: '--vqgan',
};
const flagOf = (field: string) => FLAGS[field] ?? (field.startsWith('imagePrompts') ? '--image-prompt' : field);

/** "cat.png:0.5" → {path, weight}; a Windows-free split on the last colon when what follows is a number. */
export function parseImagePrompt(spec: string): { path: string; weight: number } {
  const m = /^(.*):([+-]?(\d+\.?\d*|\.\d+))$/.exec(spec);
  return m ? { path: m[1]!, weight: Number(m[2]) } : { path: spec, weight: 1 };
}

/** `[#####-----] 12/60 loss 0.8123 ETA 14s` */
export function progressLine(p: GenerateProgress, width = 24): string {
  const done = Math.round((p.step / p.total) * width);
  return `[${'#'.repeat(done)}${'-'.repeat(width - done)}] ${p.step}/${p.total} loss ${p.loss.toFixed(4)} ETA ${Math.ceil(p.etaMs / 1000)}s`;
}

interface GenerateOpts {
  output: string; steps?: string; seed?: string; size?: string; lr?: string; cutn?: string; cutPow?: string;
  init?: string; initStrength?: string; imagePrompt?: string[]; model?: string; vqgan?: string; augment: boolean;
  previewEvery?: string; animation?: string; json?: boolean; start?: string;
}

export function registerGenerateCommand(program: Command, ctx: GenerateCommandContext = defaultContext()): void {
  program
    .command('generate')
    .description('make an image from a text prompt with VQGAN+CLIP')
    .argument('<prompt>', 'text, or text:weight parts separated by | (negative weights push away)')
    .requiredOption('-o, --output <file>', 'where to write the PNG')
    .option('--steps <n>', 'optimisation steps')
    .option('--seed <n>', 'random seed (default: drawn, and printed in the recipe)')
    .option('--size <px>', "side of the square image, a multiple of the VQGAN's factor (default: its training size)")
    .option('--lr <x>', "Adam's step size on the latent")
    .option('--cutn <n>', 'random cutouts per step')
    .option('--cut-pow <x>', 'cutout size power (larger: smaller cutouts)')
    .option('--init <image>', 'start from this image')
    .option('--init-strength <x>', 'how much of the init image to keep, 0–1')
    .option('--image-prompt <image[:weight]>', 'aim at this image too (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--model <id>', 'CLIP model id or directory (default: the installed one, else the bundled demo)')
    .option('--vqgan <id>', 'VQGAN model id or directory (default: as --model)')
    .option('--no-augment', 'no flips, shifts or noise on the cutouts')
    .option('--start <kind>', 'random start without --init: smooth (a seeded colour field, default) or codes (random codebook entries, as the notebooks)')
    .option('--preview-every <n>', 'animation frame every n steps (0: none)')
    .option('--animation <file>', 'also write the progress animation (animated WebP)')
    .option('--json', 'print the recipe as JSON on stdout')
    .action(async (prompt: string, opts: GenerateOpts) => {
      const config = loadConfig(ctx.env as NodeJS.ProcessEnv);
      const registry: RegistryOptions = { modelsDir: ctx.manifestsDir, dataDir: config.dataDir, installDir: config.modelsDir };
      const num = (v: string | undefined) => (v === undefined ? undefined : v);
      const params = {
        prompt, steps: num(opts.steps), seed: num(opts.seed), size: num(opts.size), lr: num(opts.lr), cutn: num(opts.cutn),
        cutPow: num(opts.cutPow), start: opts.start, initStrength: num(opts.initStrength), previewEvery: num(opts.previewEvery), augment: opts.augment,
        ...(opts.init ? { initImage: opts.init } : {}),
        imagePrompts: (opts.imagePrompt ?? []).map(parseImagePrompt),
        clipModel: opts.model, vqganModel: opts.vqgan,
      };
      const tty = !!ctx.stderr.isTTY;
      let last = '';
      try {
        const result = await generateJob(params, {
          registry,
          backend: config.backend,
          checkpoint: async () => {},
          progress: (p) => {
            const line = progressLine(p);
            if (tty) ctx.stderr.write(`\r${line}`);
            else if (p.step === p.total || p.step % Math.max(1, Math.round(p.total / 10)) === 0) ctx.stderr.write(`${line}\n`);
            last = line;
          },
        });
        if (tty && last) ctx.stderr.write('\n');
        await writeFile(opts.output, result.png);
        if (opts.animation) await writeFile(opts.animation, result.animation);
        const t = result.recipe.timings;
        ctx.stderr.write(`wrote ${opts.output} (${result.width}×${result.height}, seed ${result.recipe.seed}, ${t.msPerStep.toFixed(0)} ms/step, ${(t.totalMs / 1000).toFixed(1)} s)\n`);
        if (opts.json) ctx.stdout.write(`${JSON.stringify(result.recipe, null, 2)}\n`);
      } catch (err) {
        if (tty && last) ctx.stderr.write('\n');
        if (err instanceof InputError) throw new CliError(`${flagOf(err.field)}: ${err.message}`, 2);
        throw err;
      }
    });
}
