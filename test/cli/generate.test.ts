import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerGenerateCommand, parseImagePrompt, progressLine } from '../../cli/commands/generate';
import { CliError } from '../../cli/errors';
import { unloadGenerateModels } from '../../engine/index';
import { fixtureManifests } from '../helpers/generate-models';

describe('clip-studio generate', () => {
  let manifests: string;
  let dir: string;
  before(() => {
    manifests = fixtureManifests();
    dir = mkdtempSync(join(tmpdir(), 'clip-studio-cli-gen-'));
  });
  after(() => {
    unloadGenerateModels();
    rmSync(manifests, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  async function cli(...args: string[]): Promise<{ stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const program = new Command('clip-studio').exitOverride();
    registerGenerateCommand(program, {
      stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) },
      env: { CLIP_STUDIO_DATA: dir }, manifestsDir: manifests,
    });
    await program.parseAsync(['node', 'clip-studio', 'generate', ...args]);
    return { stdout, stderr };
  }

  it('writes the PNG, shows progress on stderr and prints the recipe with --json', async () => {
    const out = join(dir, 'out.png');
    const r = await cli('a red circle | blue:-0.5', '-o', out, '--steps', '3', '--seed', '9', '--size', '16', '--cutn', '1', '--cut-pow', '2',
      '--model', 'fixture-clip', '--vqgan', 'fixture-vqgan', '--animation', join(dir, 'out.webp'), '--json');
    const png = readFileSync(out);
    assert.equal(png.subarray(1, 4).toString(), 'PNG');
    assert.match(r.stderr, /\[#+-*\] 3\/3 loss \d/);
    assert.match(r.stderr, /wrote .*out\.png \(16×16, seed 9, \d+ ms\/step/);
    const recipe = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(recipe.seed, 9);
    assert.equal(recipe.cutPow, 2);
    assert.deepEqual(recipe.prompts, [{ text: 'a red circle', weight: 1 }, { text: 'blue', weight: -0.5 }]);
    assert.ok(readFileSync(join(dir, 'out.webp')).subarray(8, 12).toString() === 'WEBP');
  });

  it('bad values exit 2 naming the option', async () => {
    const out = join(dir, 'x.png');
    const fails = async (args: string[], pattern: RegExp) => {
      await assert.rejects(cli(...args, '-o', out, '--model', 'fixture-clip', '--vqgan', 'fixture-vqgan'),
        (e: unknown) => e instanceof CliError && e.exitCode === 2 && pattern.test(e.message));
    };
    await fails(['x', '--steps', '0'], /^--steps: The `steps` option must be an integer between 1 and 2000, got "0"/);
    await fails(['x', '--steps', '1e6'], /^--steps: .*got "1e6"/);
    await fails(['x', '--size', '18'], /^--size: .*multiple of 4/);
    await fails([''], /^prompt: .*empty/);
    await fails(['a'.repeat(2000)], /^prompt: .*at most 1000/);
    await fails(['a cat:abc'], /^prompt: The weight of "a cat:abc"/);
    await fails(['x', '--init', join(dir, 'missing.png')], /^--init: /);
  });

  it('parses image prompts and draws the progress bar', () => {
    assert.deepEqual(parseImagePrompt('cat.png:0.5'), { path: 'cat.png', weight: 0.5 });
    assert.deepEqual(parseImagePrompt('cat.png'), { path: 'cat.png', weight: 1 });
    assert.equal(progressLine({ step: 5, total: 10, loss: 0.5, elapsedMs: 1, etaMs: 2100 }, 10), '[#####-----] 5/10 loss 0.5000 ETA 3s');
  });
});
