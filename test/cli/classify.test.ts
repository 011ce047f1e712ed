/**
 * `clip-studio classify`: JSON and text output, the default-model notice, usage errors.
 * Runs the command in-process against the bundled demo CLIP with an empty data directory, so
 * no downloaded model is picked.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { parseLabels, registerClassifyCommand } from '../../cli/commands/classify';
import { encodePng, rasterizeSvg, ModelLoadError } from '../../engine/index';

let root: string;
let redCircle: string;
let blueStar: string;

const png = async (body: string) => encodePng((await rasterizeSvg(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 128 128"><rect width="128" height="128" fill="#fff"/>${body}</svg>`, 128)).data, 128, 128);

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'clip-studio-cli-classify-'));
  redCircle = join(root, 'red-circle.png');
  blueStar = join(root, 'blue-star.png');
  writeFileSync(redCircle, await png('<circle cx="64" cy="64" r="42" fill="#e53935"/>'));
  writeFileSync(blueStar, await png('<polygon points="64,14 76,48 112,48 83,70 94,106 64,84 34,106 45,70 16,48 52,48" fill="#1e88e5"/>'));
});
after(() => rmSync(root, { recursive: true, force: true }));

async function run(args: string[]): Promise<{ out: string; err: string }> {
  let out = '', err = '';
  const program = new Command('clip-studio').exitOverride().configureOutput({ writeErr: (s) => { err += s; }, writeOut: (s) => { out += s; } });
  registerClassifyCommand(program, {
    stdout: { write: (s: string) => { out += s; } }, stderr: { write: (s: string) => { err += s; } },
    env: { CLIP_STUDIO_DATA: join(root, 'data') },
  });
  await program.parseAsync(['node', 'clip-studio', 'classify', ...args]);
  return { out, err };
}

test('--json prints every image with every label ranked best first, scores summing to 1', async () => {
  const { out, err } = await run([redCircle, blueStar, '--labels', 'a red circle, a blue star', '--json']);
  assert.match(err, /demo-clip/, 'says which model it fell back to');
  const results = JSON.parse(out) as { file: string; ranking: { label: string; score: number }[] }[];
  assert.deepEqual(results.map((r) => r.file), [redCircle, blueStar]);
  assert.deepEqual(results.map((r) => r.ranking[0]!.label), ['a red circle', 'a blue star']);
  for (const r of results) {
    assert.deepEqual(Object.keys(r), ['file', 'ranking']);
    assert.ok(Math.abs(r.ranking[0]!.score + r.ranking[1]!.score - 1) < 1e-5);
    assert.ok(r.ranking[0]!.score >= r.ranking[1]!.score);
  }
});

test('text output lists percentages per image; --model takes an id', async () => {
  const { out } = await run([redCircle, '--labels', 'a blue star,a red circle', '--model', 'demo-clip']);
  const lines = out.trim().split('\n');
  assert.equal(lines[0], redCircle);
  assert.match(lines[1]!, /^\s+\d+\.\d%\s+a red circle$/);
  assert.match(lines[2]!, /^\s+\d+\.\d%\s+a blue star$/);
});

test('usage errors: no labels, an unknown model', async () => {
  await assert.rejects(run([redCircle]), (e) => e instanceof CommanderError && /--labels/.test(e.message));
  await assert.rejects(run([redCircle, '--labels', ' , ']), (e) => (e as { exitCode?: number }).exitCode === 2);
  await assert.rejects(run([redCircle, '--labels', 'a cat', '--model', 'no-such-model']), (e) => e instanceof ModelLoadError && /no-such-model/.test(e.message));
  assert.deepEqual(parseLabels('a red circle, a blue star,,'), ['a red circle', 'a blue star']);
});
