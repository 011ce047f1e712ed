/**
 * `npm run eval:demo`: evaluate the bundled demo models on seeds training never used: the CLIP
 * (eval-clip.ts: the acceptance figures) and, when present, the VQGAN (eval-vqgan.ts).
 * Arguments go to both.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
let failed = 0;
for (const file of ['./eval-clip.ts', './eval-vqgan.ts']) {
  if (!existsSync(here(file))) continue;
  const run = spawnSync(process.execPath, ['--import', 'tsx', here(file), ...process.argv.slice(2)], { stdio: 'inherit' });
  if (run.status !== 0) failed = run.status ?? 1;
}
process.exit(failed);
