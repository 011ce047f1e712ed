/**
 * Parity with OpenAI CLIP's SimpleTokenizer / clip.tokenize: every case of every fixture
 * set's tokenizer_cases.json must give identical ids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtureDirs } from '../helpers/fixtures';
import { ClipTokenizer } from '../../engine/models/tokenizer';

interface TokenizerCase { text: string; ids: number[] }

for (const dir of fixtureDirs()) {
  test(`tokenizer ids match the reference (${dir})`, async () => {
    const cases = JSON.parse(readFileSync(join(dir, 'tokenizer_cases.json'), 'utf8')) as TokenizerCase[];
    assert.ok(cases.length > 0, 'tokenizer_cases.json holds no cases');
    const tok = await ClipTokenizer.load();
    for (const c of cases) {
      const { ids } = tok.tokenize([c.text], c.ids.length);
      assert.deepEqual(Array.from(ids), c.ids, `ids for ${JSON.stringify(c.text)}`);
    }
    // The batch path gives the same rows as one text at a time.
    const ctx = cases[0]!.ids.length;
    const batch = tok.tokenize(cases.map((c) => c.text), ctx).ids;
    assert.deepEqual(Array.from(batch), cases.flatMap((c) => c.ids));
  });
}
