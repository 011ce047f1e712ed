/**
 * Behaviour of the CLIP tokenizer beyond the reference ids: round trips, truncation,
 * empty input, the vocabulary helpers and Python-compatible HTML unescaping.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClipTokenizer, htmlUnescape, cleanText } from '../../../engine/models/tokenizer';
import { InputError } from '../../../engine/errors';

test('decode(encode(x)) gives back lower-case text, with a space after each word', async () => {
  const tok = await ClipTokenizer.load();
  for (const text of ['a photograph of an astronaut riding a horse', 'pixel art, 8 bit!', 'café crème brûlée', '東京 の 夜景']) {
    const decoded = tok.decode(tok.encode(text));
    // Word-final tokens decode with a trailing space; punctuation is its own word.
    assert.equal(decoded.replace(/\s+/g, ''), text.replace(/\s+/g, ''), text);
    assert.ok(decoded.startsWith(text.split(/[ ,!]/)[0]!), decoded);
  }
});

test('encode lowercases, collapses whitespace and unescapes HTML like the reference', async () => {
  const tok = await ClipTokenizer.load();
  assert.deepEqual(tok.encode('A  Dog\n'), tok.encode('a dog'));
  assert.deepEqual(tok.encode('&amp;amp;'), tok.encode('&'));
  assert.equal(cleanText('  Tom &amp; Jerry&nbsp;\t '), 'tom & jerry');
});

test('tokenize pads with 0, ends with <|endoftext|>, and flags truncation', async () => {
  const tok = await ClipTokenizer.load();
  assert.equal(tok.sotToken, 49406);
  assert.equal(tok.eotToken, 49407);
  assert.equal(tok.vocabSize, 49408);

  const long = Array(100).fill('dog').join(' ');
  const { ids, truncated } = tok.tokenize(['a dog', long], 77);
  assert.equal(ids.length, 2 * 77);
  assert.deepEqual(truncated, [false, true]);
  const short = Array.from(ids.subarray(0, 77));
  assert.deepEqual(short.slice(0, 4), [tok.sotToken, ...tok.encode('a dog'), tok.eotToken]);
  assert.ok(short.slice(4).every((id) => id === 0));
  const cut = Array.from(ids.subarray(77));
  assert.equal(cut[0], tok.sotToken);
  assert.equal(cut[76], tok.eotToken);
  assert.ok(cut.slice(1, 76).every((id) => id === tok.tokenIdOf('dog</w>')));

  // Exactly contextLength-2 tokens fit without truncation.
  const exact = tok.tokenize([Array(75).fill('dog').join(' ')]);
  assert.deepEqual(exact.truncated, [false]);
  assert.equal(exact.ids[76], tok.eotToken);
});

test('the empty string is <|startoftext|><|endoftext|> and padding', async () => {
  const tok = await ClipTokenizer.load();
  assert.deepEqual(tok.encode(''), []);
  assert.deepEqual(tok.encode('   \n\t'), []);
  const { ids, truncated } = tok.tokenize([''], 8);
  assert.deepEqual(Array.from(ids), [49406, 49407, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(truncated, [false]);
  assert.deepEqual(Array.from(tok.tokenize([]).ids), []);
});

test('vocabulary helpers find whole-word tokens', async () => {
  const tok = await ClipTokenizer.load();
  const dog = tok.tokenIdOf('dog</w>');
  assert.equal(typeof dog, 'number');
  assert.deepEqual(tok.encode('dog'), [dog]);
  assert.equal(tok.tokenOf(dog!), 'dog</w>');
  assert.equal(tok.tokenIdOf('<|endoftext|>'), 49407);
  assert.equal(tok.tokenIdOf('notatoken</w>'), undefined);
  assert.equal(tok.hasToken('dog'), true);
  assert.equal(tok.hasToken('supercalifragilistic'), false);
});

test('bad input is an InputError naming the field', async () => {
  const tok = await ClipTokenizer.load();
  assert.throws(() => tok.decode([49408]), (e: unknown) => e instanceof InputError && e.field === 'ids');
  assert.throws(() => tok.tokenize(['x'], 1), (e: unknown) => e instanceof InputError && e.field === 'contextLength');
});

test('load() shares one default instance; a missing file is a ModelLoadError', async () => {
  assert.equal(await ClipTokenizer.load(), await ClipTokenizer.load());
  await assert.rejects(ClipTokenizer.load('/nonexistent/bpe.txt.gz'), /Could not read the BPE vocabulary \/nonexistent/);
});

test('htmlUnescape follows Python html.unescape for numeric, named and legacy references', () => {
  // Expected strings are what CPython 3's html.unescape returns for these inputs.
  assert.equal(htmlUnescape('&lt;b&gt; &amp;amp; &AMP &quot;'), '<b> &amp; & "');
  assert.equal(htmlUnescape('&#65;&#x42;&#X43 &#128; &#0; &#1;'), 'ABC € \ufffd ');
  assert.equal(htmlUnescape('&notit; &notin; &bogus; & x'), '¬it; ∉ &bogus; & x');
  assert.equal(htmlUnescape('&#xD800; &#1114112; &eacute &hellip;'), '\ufffd \ufffd é …');
});
