import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkSize, createRng, InputError, parseGeneratePrompt, planCutouts, validateGenerateParams } from '../../../engine/index';

function inputError(fn: () => unknown, field: string, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InputError, `expected an InputError, got ${String(err)}`);
    assert.equal(err.field, field);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('generate parameters', () => {
  it('fills defaults and draws a seed when none is given', () => {
    const p = validateGenerateParams({ prompt: 'a red circle' });
    assert.equal(p.steps, 60);
    assert.equal(p.augment, true);
    assert.ok(Number.isInteger(p.seed) && p.seed >= 0);
    assert.equal(validateGenerateParams({ prompt: 'x', seed: 7 }).seed, 7);
  });

  it('refuses out-of-range numbers with a message naming the field and the range', () => {
    inputError(() => validateGenerateParams({ prompt: 'x', steps: 0 }), 'steps', /`steps` option must be an integer between 1 and 2000, got 0/);
    inputError(() => validateGenerateParams({ prompt: 'x', steps: 1e6 }), 'steps', /between 1 and 2000, got 1000000/);
    inputError(() => validateGenerateParams({ prompt: 'x', steps: 2.5 }), 'steps', /integer/);
    inputError(() => validateGenerateParams({ prompt: 'x', lr: -1 }), 'lr', /`lr`/);
    inputError(() => validateGenerateParams({ prompt: 'x', cutn: 'many' }), 'cutn', /got "many"/);
    inputError(() => validateGenerateParams({ prompt: 'x', imagePrompts: [{ path: 'a.png', weight: 'abc' }] }), 'imagePrompts.0.weight', /number/);
    inputError(() => validateGenerateParams({ prompt: 'x', augment: 'yes' }), 'augment', /true or false/);
    inputError(() => validateGenerateParams({ prompt: 'x', start: 'perlin' }), 'start', /one of codes, smooth/);
    assert.equal(validateGenerateParams({ prompt: 'x', start: 'codes' }).start, 'codes');
  });

  it('refuses empty, overlong and badly weighted prompts', () => {
    inputError(() => validateGenerateParams({ prompt: '   ' }), 'prompt', /empty/);
    inputError(() => validateGenerateParams({ prompt: 'a'.repeat(2000) }), 'prompt', /at most 1000 characters, got 2000/);
    inputError(() => parseGeneratePrompt('a cat:abc'), 'prompt', /weight of "a cat:abc" must be a number.*got "abc"/);
    inputError(() => parseGeneratePrompt('a cat:2x'), 'prompt', /weight/);
    inputError(() => parseGeneratePrompt('a cat | | a dog'), 'prompt', /empty part/);
    inputError(() => parseGeneratePrompt('a cat:0'), 'prompt', /non-zero/);
    assert.deepEqual(parseGeneratePrompt('a photo: sunset | dark:-0.5'), [{ text: 'a photo: sunset', weight: 1 }, { text: 'dark', weight: -0.5 }]);
  });

  it('checks the size against the VQGAN factor, defaulting to its resolution', () => {
    assert.equal(checkSize(undefined, 2, 32), 32);
    assert.equal(checkSize(48, 16, 256), 48);
    inputError(() => checkSize(30, 4, 64), 'size', /multiple of 4.*got 30; try 28 or 32/);
  });
});

describe('cutouts', () => {
  it('follows the notebook sizes, stays inside the padded image, and is reproducible from the seed', () => {
    const opts = { cutn: 16, cutPow: 1, cutSize: 24, augment: true };
    const a = planCutouts(64, opts, createRng(5));
    assert.deepEqual(planCutouts(64, opts, createRng(5)), a);
    assert.notDeepEqual(planCutouts(64, opts, createRng(6)), a);
    for (const c of a.cuts) {
      assert.ok(c.size >= Math.floor(24 * 0.9) - 1 && c.size <= 64 + 2 * a.pad, `size ${c.size}`);
      assert.ok(c.x >= 0 && c.y >= 0 && c.x + c.size <= 64 + 2 * a.pad && c.y + c.size <= 64 + 2 * a.pad);
    }
    assert.ok(a.cuts.some((c) => c.flip) && a.cuts.some((c) => !c.flip), 'some flipped, some not');
    const plain = planCutouts(64, { ...opts, augment: false }, createRng(5));
    assert.equal(plain.pad, 0);
    for (const c of plain.cuts) assert.ok(c.size >= 24 && c.size <= 64 && !c.flip && c.noise === 0);
    // A larger cut_pow favours small cutouts.
    const mean = (p: number) => planCutouts(64, { ...opts, augment: false, cutPow: p, cutn: 64 }, createRng(1)).cuts.reduce((s, c) => s + c.size, 0) / 64;
    assert.ok(mean(4) < mean(1) - 5, `cut_pow 4 mean ${mean(4)} vs cut_pow 1 mean ${mean(1)}`);
  });
});
