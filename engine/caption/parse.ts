/**
 * Candidate captions out of an LLM's answer, read defensively: models asked for a JSON array
 * also answer with a JSON object ({"captions": [...]}, {"1": "..."}), an array of objects
 * ([{"caption": "..."}]), a fenced code block, a numbered or bulleted list, or a list wrapped
 * in prose ("Sure! Here are some captions: ..."). What cannot be read as captions is an
 * LlmAnswerError, and the pipeline falls back to the offline generator.
 */
import { ClipStudioError } from '../errors';
import { tidyCaption, uniqueCaptions } from './compose';

/** The LLM answered, but nothing in the answer reads as captions. */
export class LlmAnswerError extends ClipStudioError {
  override readonly code = 'LLM_ANSWER';
}

/** Longest caption kept, in characters (a caption is a sentence, not an essay). */
export const MAX_CAPTION_CHARS = 300;

const CAPTION_KEYS = ['caption', 'text', 'description', 'alt', 'content'];

/** Strings inside a parsed JSON value: arrays of strings, objects with caption-like keys, nested lists. */
function stringsOf(value: unknown, depth = 0): string[] {
  if (depth > 4) return [];
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap((v) => stringsOf(v, depth + 1));
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    for (const k of CAPTION_KEYS) if (typeof obj[k] === 'string') return [obj[k]];
    // {"captions": [...]} or {"candidates": [...]}: the first array inside
    const list = Object.values(obj).find((v) => Array.isArray(v));
    if (list) return stringsOf(list, depth + 1);
    // {"1": "...", "2": "..."} or {"caption1": "..."}; not {"error": "..."}
    return Object.entries(obj).filter(([k, v]) => typeof v === 'string' && /^\d+$|caption|candidate|option/i.test(k)).map(([, v]) => v as string);
  }
  return [];
}

/** The first JSON array or object in `text` that parses, or undefined. */
function findJson(text: string): unknown {
  const fenced = /```(?:json)?\s*([\s\S]*?)```/i.exec(text);
  const sources = fenced ? [fenced[1]!, text] : [text];
  for (const src of sources) {
    const trimmed = src.trim();
    try { return JSON.parse(trimmed) as unknown; } catch { /* look inside */ }
    for (const [open, close] of [['[', ']'], ['{', '}']] as const) {
      const start = trimmed.indexOf(open);
      const end = trimmed.lastIndexOf(close);
      if (start >= 0 && end > start) {
        try { return JSON.parse(trimmed.slice(start, end + 1)) as unknown; } catch { /* not this one */ }
      }
    }
  }
  return undefined;
}

const preview = (answer: string) => `${JSON.stringify(answer.slice(0, 120))}${answer.length > 120 ? '…' : ''}`;

const LIST_ITEM = /^\s*(?:\d{1,3}\s*[.):\]-]|[-*•·–]|\(\d{1,3}\))\s+(.+)$/;

/** Prose around a list, not a caption: "Here are 8 captions:", "Sure!", "Let me know …". */
function looksLikeProse(line: string): boolean {
  return /:\s*$/.test(line) || /^(sure|certainly|of course|here (are|is)|i hope|let me|note|these captions|hope this)/i.test(line);
}

/** A list item's caption: drops "**Caption:**" labels, bold markers and quotes. */
function cleanItem(item: string): string {
  return tidyCaption(item.replace(/\*\*/g, '').replace(/^(caption|candidate)\s*\d*\s*[:-]\s*/i, ''));
}

/**
 * The captions an LLM answer holds, in its order, duplicates and empty ones dropped.
 *
 * @example
 * parseCandidates('["a red circle", "a blue star"]');        // ['a red circle', 'a blue star']
 * parseCandidates('Here you go:\n1. A red circle.\n2. "A blue star"'); // ['A red circle', 'A blue star']
 */
export function parseCandidates(answer: string): string[] {
  if (typeof answer !== 'string' || !answer.trim()) throw new LlmAnswerError('The LLM answered with nothing.');
  // an error page from a proxy in front of the model, not an answer
  if (/^\s*<(!doctype|html|\?xml|head|body)\b/i.test(answer)) throw new LlmAnswerError(`The LLM answered with markup, not captions: ${preview(answer)}`);
  let items: string[] = [];
  const json = findJson(answer);
  if (json !== undefined) {
    items = stringsOf(json).map(tidyCaption);
    if (!items.filter(Boolean).length) throw new LlmAnswerError(`The LLM answered with JSON that holds no captions: ${preview(answer)}`);
  } else if (/^\s*(```\w*\s*)?[[{]/.test(answer)) {
    // JSON cut short (the token limit): keep the complete strings in it
    items = [...answer.matchAll(/"((?:[^"\\]|\\.){3,})"\s*[,\]}]/g)].map((m) => tidyCaption(m[1]!)).filter((c) => !CAPTION_KEYS.includes(c.toLowerCase()));
  }
  if (!items.filter(Boolean).length) {
    const lines = answer.replace(/```\w*/g, '').split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !/^[[\]{}]/.test(l));
    const listed = lines.map((l) => LIST_ITEM.exec(l)?.[1]).filter((x): x is string => !!x);
    // a list wins over the prose around it; without one, every line that is not prose
    items = (listed.length ? listed : lines.filter((l) => !looksLikeProse(l))).map(cleanItem);
  }
  const captions = uniqueCaptions(items).filter((c) => c.length <= MAX_CAPTION_CHARS && /[a-z]/i.test(c));
  if (!captions.length) throw new LlmAnswerError(`The LLM's answer holds no captions: ${preview(answer)}`);
  return captions;
}
