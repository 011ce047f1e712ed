/**
 * `clip-studio models list | fetch ID [--force] | verify ID`: the model registry from the shell.
 * Paths and the hub endpoint/token come from the server's config module (CLIP_STUDIO_DATA,
 * CLIP_STUDIO_MODELS, HF_ENDPOINT, HF_TOKEN); the token is never printed. Progress goes to
 * stderr (one rewritten line on a TTY, a line per quarter otherwise); results go to stdout.
 * `verify` exits 1 when a file does not match.
 */
import type { Command } from 'commander';
import {
  fetchModel, getModel, listModels, verifyModel,
  type DownloadProgress, type ModelEntry, type ModelVerification, type RegistryOptions,
} from '../../engine/index';
import { loadConfig } from '../../server/config';
import { CliError } from '../errors';

/** Where the command writes and what it reads; tests pass their own. */
export interface ModelsCommandContext {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; isTTY?: boolean };
  env: Record<string, string | undefined>;
  /** Directory of model manifests; default the repo's models/. */
  manifestsDir?: string;
}

function registryOptions(ctx: ModelsCommandContext): RegistryOptions & { hfEndpoint: string; hfToken?: string } {
  const config = loadConfig(ctx.env as NodeJS.ProcessEnv);
  return { modelsDir: ctx.manifestsDir, dataDir: config.dataDir, installDir: config.modelsDir,
    hfEndpoint: config.hf.endpoint, hfToken: config.hf.token };
}

/** Bytes as a short human string: 605.2 MB. */
export function formatBytes(n: number | null): string {
  if (n === null) return '?';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** The `models list` table: id, family, status, size (on disk, or ~expected when not installed). */
export function formatModelTable(models: ModelEntry[]): string {
  const rows = models.map((m) => [
    m.id, m.family, m.bundled ? `${m.status} (bundled)` : m.status,
    m.status === 'installed' || m.sizeOnDisk > 0 ? formatBytes(m.sizeOnDisk) : m.expectedSize !== null ? `~${formatBytes(m.expectedSize)}` : '?',
  ]);
  const header = ['ID', 'FAMILY', 'STATUS', 'SIZE'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  return [header, ...rows].map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

export function formatVerification(v: ModelVerification): string {
  const lines = [`${v.id} in ${v.dir}`];
  for (const f of v.files) {
    const detail = f.status === 'mismatch'
      ? `sha256 ${f.sha256}, expected ${f.expected} (${f.expectedFrom})${f.expectedSize !== undefined && f.size !== f.expectedSize ? `; ${f.size} bytes, expected ${f.expectedSize}` : ''}`
      : f.status === 'ok' ? `${formatBytes(f.size)}, sha256 matches the ${f.expectedFrom === 'manifest' ? 'manifest' : 'recorded checksum'}`
      : f.status === 'unchecked' ? `${formatBytes(f.size)}, no checksum to compare with`
      : f.status === 'missing' ? 'required, not on disk' : 'optional, not on disk';
    lines.push(`  ${f.status.toUpperCase().padEnd(9)} ${f.path}: ${detail}`);
  }
  lines.push(v.ok ? 'OK' : 'FAILED');
  return lines.join('\n');
}

/** A progress reporter for stderr: a bar rewritten in place on a TTY, a line per 25% otherwise. */
export function progressPrinter(stderr: ModelsCommandContext['stderr']): (p: DownloadProgress & { file: string }) => void {
  let lastDraw = 0;
  let lastFile = '';
  let lastQuarter = -1;
  let started = Date.now();
  return (p) => {
    if (p.file !== lastFile) {
      if (lastFile && stderr.isTTY) stderr.write('\n');
      lastFile = p.file;
      lastQuarter = -1;
      started = Date.now();
    }
    const done = p.total !== null && p.received >= p.total;
    const pct = p.total ? Math.floor((100 * p.received) / p.total) : null;
    const rate = (p.received - p.resumedFrom) / Math.max(0.001, (Date.now() - started) / 1000);
    const amount = `${formatBytes(p.received)}${p.total !== null ? ` / ${formatBytes(p.total)}` : ''}`;
    if (stderr.isTTY) {
      const now = Date.now();
      if (!done && now - lastDraw < 100) return;
      lastDraw = now;
      const width = 24;
      const fill = pct === null ? 0 : Math.round((width * pct) / 100);
      stderr.write(`\r${p.file} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${pct ?? '?'}% ${amount} ${formatBytes(rate)}/s\x1b[K`);
      if (done) { stderr.write('\n'); lastFile = ''; }
      return;
    }
    const quarter = pct === null ? (done ? 4 : 0) : Math.floor(pct / 25);
    if (quarter === lastQuarter) return;
    lastQuarter = quarter;
    stderr.write(`${p.file}: ${pct ?? '?'}% ${amount}${p.resumedFrom && quarter === 0 ? ` (resumed at ${formatBytes(p.resumedFrom)})` : ''}\n`);
  };
}

/**
 * Add `models list`, `models fetch` and `models verify` to a commander program.
 *
 * @example
 * const program = new Command('clip-studio');
 * registerModelsCommand(program);
 * await program.parseAsync(['models', 'list', '--json'], { from: 'user' });
 */
export function registerModelsCommand(program: Command, context: Partial<ModelsCommandContext> = {}): void {
  const ctx: ModelsCommandContext = { stdout: process.stdout, stderr: process.stderr, env: process.env, ...context };
  const models = program.command('models').description('list, fetch and verify models');

  models.command('list')
    .description('every known model: id, family, status (installed / partial / missing), size')
    .option('--json', 'print the entries as JSON')
    .action((o: { json?: boolean }) => {
      const entries = listModels(registryOptions(ctx));
      if (o.json) {
        ctx.stdout.write(`${JSON.stringify(entries.map(({ manifest, ...e }) => ({ ...e, license: manifest.license })), null, 2)}\n`);
      } else {
        ctx.stdout.write(`${formatModelTable(entries)}\n`);
      }
    });

  models.command('fetch')
    .description('download a model (resumes an interrupted download, verifies checksums)')
    .argument('<id>', 'model id, as `models list` shows it')
    .option('--force', 'download again even when the files are present')
    .action(async (id: string, o: { force?: boolean }) => {
      const opts = registryOptions(ctx);
      const entry = getModel(id, opts); // an unknown id fails here, listing the known ones
      if (entry.bundled) {
        ctx.stdout.write(`${id} is bundled with the studio (${entry.dir}); nothing to fetch.\n`);
        return;
      }
      const abort = new AbortController();
      const onSigint = () => abort.abort();
      process.once('SIGINT', onSigint);
      try {
        const r = await fetchModel(id, { ...opts, force: o.force, signal: abort.signal, onProgress: progressPrinter(ctx.stderr) });
        for (const f of r.files) {
          ctx.stdout.write(f.action === 'present'
            ? `${f.path}: already present (use --force to download again)\n`
            : `${f.path}: downloaded, sha256 ${f.sha256} (${f.checksumSource === 'none' ? 'no checksum published; recorded for verify' : `checked against the ${f.checksumSource === 'pinned' ? 'manifest' : "hub's ETag"}`})\n`);
        }
        ctx.stdout.write(`${id} is installed in ${r.dir}\n`);
      } finally {
        process.removeListener('SIGINT', onSigint);
      }
    });

  models.command('verify')
    .description('hash every file of an installed model and compare with the pinned or recorded sha256 (exit 1 on mismatch)')
    .argument('<id>', 'model id')
    .option('--json', 'print the result as JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const v = await verifyModel(id, registryOptions(ctx));
      ctx.stdout.write(o.json ? `${JSON.stringify(v, null, 2)}\n` : `${formatVerification(v)}\n`);
      if (!v.files.some((f) => f.present)) {
        throw new CliError(`model ${id} is not installed in ${v.dir}; run \`clip-studio models fetch ${id}\``, 1);
      }
      if (!v.ok) {
        const bad = v.files.filter((f) => f.status === 'mismatch' || f.status === 'missing').map((f) => `${f.path} (${f.status})`);
        throw new CliError(`model ${id} failed verification: ${bad.join(', ') || 'not installed'}`, 1);
      }
    });
}
