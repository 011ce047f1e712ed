/**
 * `npm run train:demo`: train the bundled demo models from their seeds, one after the other
 * (each uses both cores): the CLIP (train-clip.ts → models/demo-clip), then the VQGAN
 * (train-vqgan.ts → models/demo-vqgan). Arguments after `--` go to both; `--only clip|vqgan`
 * runs one. Each runs in its own process so a crash in one leaves the other's output intact.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const rest = args.filter((a, i) => a !== '--only' && args[i - 1] !== '--only');

for (const [name, file] of [['clip', './train-clip.ts'], ['vqgan', './train-vqgan.ts']] as const) {
  if (only && only !== name) continue;
  if (!existsSync(here(file))) { console.error(`train:demo: ${file} not found, skipping the ${name}`); continue; }
  console.error(`train:demo: training the demo ${name} (${file})`);
  const run = spawnSync(process.execPath, ['--import', 'tsx', here(file), ...rest], { stdio: 'inherit' });
  if (run.status !== 0) {
    console.error(`train:demo: the ${name} trainer failed (exit ${run.status ?? run.signal})`);
    process.exit(run.status ?? 1);
  }
}
