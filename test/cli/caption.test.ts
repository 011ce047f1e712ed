/**
 * `clip-studio caption`: the --json shape (per image: file, captions best first, terms,
 * source), the LLM from the environment over real HTTP, the offline fallback said on stderr,
 * and usage errors naming the flag. In-process, on the bundled demo CLIP.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerCaptionCommand } from '../../cli/commands/caption';
import { encodePng, rasterizeSvg } from '../../engine/index';
import { chatAnswer, startLlmServer, type LlmServer } from '../helpers/llm-server';

let root: string;
let redCircle: string;
let greenSquare: string;
let llm: LlmServer;

const png = async (bg: string, body: string) => encodePng((await rasterizeSvg(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 128 128"><rect width="128" height="128" fill="${bg}"/>${body}</svg>`, 128)).data, 128, 128);

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'clip-studio-cli-caption-'));
  redCircle = join(root, 'red-circle.png');
  greenSquare = join(root, 'green-square.png');
  writeFileSync(redCircle, await png('#1e50dc', '<circle cx="64" cy="64" r="36" fill="#e01e1e"/>'));
  writeFileSync(greenSquare, await png('#808080', '<rect x="30" y="30" width="68" height="68" fill="#1eaa32"/>'));
  llm = await startLlmServer(() => chatAnswer(JSON.stringify(['a red circle on a blue background', 'a green square on a gray background', 'a drawing of a house'])));
});
after(async () => {
  await llm.close();
  rmSync(root, { recursive: true, force: true });
});

async function run(args: string[], env: Record<string, string> = {}): Promise<{ out: string; err: string }> {
  let out = '', err = '';
  const program = new Command('clip-studio').exitOverride().configureOutput({ writeErr: (s) => { err += s; }, writeOut: (s) => { out += s; } });
  registerCaptionCommand(program, {
    stdout: { write: (s: string) => { out += s; } }, stderr: { write: (s: string) => { err += s; } },
    env: { CLIP_STUDIO_DATA: join(root, 'data'), ...env },
  });
  await program.parseAsync(['node', 'clip-studio', 'caption', ...args]);
  return { out, err };
}

test('--json with an LLM: per image, captions best first, terms, source "llm"', async () => {
  const { out, err } = await run([redCircle, greenSquare, '--json', '--rounds', '0'], { OPENAI_BASE_URL: llm.baseUrl, OPENAI_API_KEY: 'k', CAPTION_LLM_MODEL: 'test-llm' });
  assert.match(err, /llm: test-llm at 127\.0\.0\.1/);
  const results = JSON.parse(out) as { file: string; captions: { text: string; score: number }[]; terms: { text: string; score: number }[]; source: string }[];
  assert.deepEqual(results.map((r) => r.file), [redCircle, greenSquare]);
  for (const r of results) {
    assert.deepEqual(Object.keys(r), ['file', 'captions', 'terms', 'source']);
    assert.equal(r.source, 'llm');
    assert.equal(r.captions.length, 3);
    for (const c of r.captions) assert.deepEqual(Object.keys(c), ['text', 'score']);
    for (let i = 1; i < r.captions.length; i++) assert.ok(r.captions[i - 1]!.score >= r.captions[i]!.score);
    assert.ok(r.terms.length > 5 && r.terms.every((t) => typeof t.text === 'string' && t.score > 0 && t.score <= 1));
  }
  assert.equal(results[0]!.captions[0]!.text, 'a red circle on a blue background');
  assert.equal(results[1]!.captions[0]!.text, 'a green square on a gray background');
});

test('without an LLM: the offline generator, said on stderr; text output', async () => {
  const { out, err } = await run([redCircle, '--rounds', '1', '--candidates', '6']);
  assert.match(err, /No LLM is configured/);
  assert.match(out.split('\n')[0]!, /red-circle\.png {2}\(offline generator, [12] rounds?, \d+ candidates\)/);
  assert.match(out.split('\n')[1]!, /^\s+\d+\.\d%\s+.*\bred\b/);
  assert.match(out, /terms: red \d+%/);
});

test('usage errors name the flag', async () => {
  await assert.rejects(run([redCircle, '--rounds', '9']), (e) => (e as { exitCode?: number }).exitCode === 2 && /^--rounds: .*between 0 and 8, got 9/.test((e as Error).message));
  await assert.rejects(run([redCircle, '--candidates', 'lots']), (e) => (e as { exitCode?: number }).exitCode === 2 && /^--candidates: must be a whole number/.test((e as Error).message));
  await assert.rejects(run([join(root, 'missing.png'), '--rounds', '0']), /missing\.png/);
});
