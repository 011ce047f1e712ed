/**
 * Captioning's acceptance figures with the bundled demo CLIP (engine/caption/eval.ts, printed
 * by `npx tsx scripts/caption-eval.ts`): on 40 held-out renders the right caption ranks first
 * among ten LLM candidates (the right one and nine that share its words, proposed by a local
 * OpenAI-compatible server over real HTTP) in ≥ 90 %; on 40 held-out single-shape scenes the
 * offline generator alone names colour and shape in ≥ 80 %.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatCaptionFigures } from '../../engine/caption/eval';
import { runCaptionEval } from '../../scripts/caption-eval';

test('caption quality with the demo CLIP on held-out renders', { timeout: 600_000 }, async () => {
  const r = await runCaptionEval(40);
  console.log(`${r.model}, ${r.seconds.toFixed(1)} s\n${formatCaptionFigures(r.figures)}`);
  assert.equal(r.requests, 40, 'one LLM request per image, over HTTP');
  const [llm, offline] = r.figures;
  assert.ok(llm!.total === 40 && llm!.accuracy >= 0.9, `right caption first among LLM candidates: ${llm!.correct}/40, need ≥ 36`);
  assert.ok(offline!.total === 40 && offline!.accuracy >= 0.8, `offline generator, colour and shape right: ${offline!.correct}/40, need ≥ 32`);
});
