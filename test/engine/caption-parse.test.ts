/**
 * The pieces of captioning that need no model: reading an LLM's answer defensively, the
 * offline generator's composition and variation, option validation, term lists from data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  composeCaptions, fixArticles, InputError, LlmAnswerError, parseCandidates, supportingTerms, termSet, validateCaptionOptions, varyCaptions,
  worldVocabulary, type TermScore,
} from '../../engine/index';

test('JSON answers: arrays, objects with a list, arrays of objects, numbered keys, fenced blocks', () => {
  assert.deepEqual(parseCandidates('["a red circle", "a blue star"]'), ['a red circle', 'a blue star']);
  assert.deepEqual(parseCandidates('{"captions": ["a red circle.", "a blue star"]}'), ['a red circle', 'a blue star']);
  assert.deepEqual(parseCandidates('[{"caption": "a red circle"}, {"text": "a blue star"}]'), ['a red circle', 'a blue star']);
  assert.deepEqual(parseCandidates('{"1": "a red circle", "2": "a dog"}'), ['a red circle', 'a dog']);
  assert.deepEqual(parseCandidates('Here you go:\n```json\n["a cat", "a dog"]\n```\nEnjoy!'), ['a cat', 'a dog']);
  assert.deepEqual(parseCandidates('Sure: ["a cat", "A cat.", "a dog"] hope it helps'), ['a cat', 'a dog'], 'duplicates (case, end punctuation) dropped');
});

test('lists and prose: numbered and bulleted items win over the prose around them', () => {
  const answer = 'Sure! Here are some captions:\n1. A red circle.\n2) "A blue star"\n- **a cat on a mat**\n• Caption 4: a dog\n\nLet me know if you want more!';
  assert.deepEqual(parseCandidates(answer), ['A red circle', 'A blue star', 'a cat on a mat', 'a dog']);
  assert.deepEqual(parseCandidates('a red circle\na blue star\n'), ['a red circle', 'a blue star'], 'plain lines');
  assert.deepEqual(parseCandidates('["a red circle", "a blue star", "a gre'), ['a red circle', 'a blue star'], 'JSON cut short keeps its complete strings');
});

test('answers without captions are an LlmAnswerError', () => {
  for (const bad of ['', '   ', '{"foo": 42}', '[1, 2, 3]', 'Here are some captions:']) {
    assert.throws(() => parseCandidates(bad), LlmAnswerError, JSON.stringify(bad));
  }
  assert.throws(() => parseCandidates(`["${'x'.repeat(400)}"]`), LlmAnswerError, 'an essay is not a caption');
});

test('articles follow the next word', () => {
  assert.equal(fixArticles('a orange circle on a red background'), 'an orange circle on a red background');
  assert.equal(fixArticles('an red square and a umbrella'), 'a red square and an umbrella');
});

const demo = termSet(true);
const term = (category: string, t: string, score: number, text = t): TermScore => ({ category, term: t, text, score });

test('the demo term set is the demo world vocabulary; the general one is read from prompts/caption/terms.json', () => {
  const v = worldVocabulary();
  const cat = (name: string) => demo.categories.find((c) => c.name === name)!;
  assert.deepEqual(cat('shape').terms, v.shapes);
  assert.deepEqual(cat('color').terms, v.colors);
  assert.deepEqual(cat('subject').terms, v.subjects);
  assert.deepEqual(cat('background').terms, v.backgroundColors);
  assert.equal(cat('background').labels[0], `${v.backgroundColors[0]} background`);
  assert.ok(cat('position').terms.includes('in the top left'));
  assert.equal(cat('color').prompts[v.colors.indexOf('orange')], 'an orange shape');
  assert.match(demo.llmHint, /circle, square/);
  const general = termSet(false);
  assert.deepEqual(general.categories.map((c) => c.name), ['object', 'scene', 'color', 'medium', 'style', 'lighting']);
  assert.equal(general.categories[0]!.prompts[general.categories[0]!.terms.indexOf('apple')], 'a photo of an apple');
});

test('the offline generator composes the likeliest combinations first, scenes and doodles weighted by kind', () => {
  const terms = [
    term('kind', 'scene', 0.9), term('kind', 'doodle', 0.1),
    term('color', 'red', 0.8), term('color', 'orange', 0.2),
    term('shape', 'circle', 0.6), term('shape', 'star', 0.4),
    term('background', 'blue', 0.9, 'blue background'), term('background', 'gray', 0.1, 'gray background'),
    term('size', 'big', 0.7), term('position', 'in the center', 0.5),
    term('subject', 'house', 0.7), term('subject', 'apple', 0.3),
  ];
  const out = composeCaptions(demo, terms, 40);
  assert.equal(out[0], 'a red circle on a blue background');
  assert.ok(out.includes('an orange star on a gray background'), 'articles fixed');
  assert.ok(out.includes('a drawing of a house') && out.includes('a drawing of an apple'));
  assert.ok(out.indexOf('a red circle on a blue background') < out.indexOf('an orange circle on a blue background'));
  assert.equal(new Set(out).size, out.length);
  assert.equal(composeCaptions(demo, terms, 3).length, 3);
  assert.deepEqual(supportingTerms('a red circle on a blue background', terms).map((t) => t.text), ['blue background', 'red', 'circle']);
  assert.deepEqual(supportingTerms('a blue circle on a red background', [term('color', 'red', 0.8), term('background', 'red', 0.5, 'red background')]).map((t) => t.text),
    ['red background'], 'the longer term claims its words');

  const varied = varyCaptions(['a red circle on a blue background'], terms, 10, new Set(['an orange circle on a blue background']));
  assert.ok(varied.includes('a red star on a blue background'));
  assert.ok(varied.includes('a red circle on a gray background'));
  assert.ok(!varied.includes('an orange circle on a blue background'), 'excluded keys are not proposed again');
  assert.ok(!varied.includes('a red circle on a blue background'));
});

test('options: defaults, and a bad value names the option and its range', () => {
  const d = validateCaptionOptions({});
  assert.equal(d.rounds, 2);
  assert.equal(d.sendImage, false);
  assert.equal(validateCaptionOptions({ rounds: 0, candidates: 8 }).candidates, 8);
  for (const [field, value] of [['rounds', 9], ['rounds', -1], ['candidates', 1], ['candidates', 2.5], ['maxTokens', 'lots'], ['sendImage', 'yes']] as const) {
    assert.throws(() => validateCaptionOptions({ [field]: value }), (e) => e instanceof InputError && e.field === field && e.message.includes(`\`${field}\``), `${field}=${value}`);
  }
  assert.throws(() => validateCaptionOptions({ rounds: 9 }), /between 0 and 8, got 9/);
});
