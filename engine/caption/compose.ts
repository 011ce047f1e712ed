/**
 * The offline caption generator: what captioning does without an LLM (none configured, or it
 * failed). It fills the term set's templates ("a {color} {shape} on a {background} background",
 * "a {medium} of a {object}") with the interrogated terms, most likely combinations first, and
 * varies the best captions by swapping one term for another of its category. CLIP then ranks
 * what it wrote, exactly as it ranks an LLM's candidates.
 */
import type { TermScore, TermSet } from './terms';

/** "a orange circle" → "an orange circle"; "an red" → "a red" (by the next word's first letter). */
export function fixArticles(text: string): string {
  return text.replace(/\b([Aa])n? (?=(\w))/g, (_m, a: string, next: string) => `${a}${/[aeiou]/i.test(next) ? 'n' : ''} `);
}

/** The key two captions share when they say the same thing (case, spacing, end punctuation). */
export function captionKey(text: string): string {
  return text.toLowerCase().replace(/[.!;:,]+$/, '').replace(/\s+/g, ' ').trim();
}

/** Cleaned text, or '' when nothing is left. */
export function tidyCaption(text: string): string {
  return text.replace(/\s+/g, ' ').trim().replace(/^["'“‘`]+|["'”’`]+$/g, '').replace(/[.;:,]+$/, '').trim();
}

function byCategory(terms: readonly TermScore[]): Map<string, TermScore[]> {
  const m = new Map<string, TermScore[]>();
  for (const t of terms) m.set(t.category, [...(m.get(t.category) ?? []), t]);
  for (const list of m.values()) list.sort((a, b) => b.score - a.score);
  return m;
}

/** A composed caption and how it was filled, so a variation can refill the same template. */
export interface ComposedCaption { text: string; template: string; values: Record<string, string>; score: number }

const fillTemplate = (template: string, values: Record<string, string>) => fixArticles(template.replace(/\{(\w+)\}/g, (_m, k: string) => values[k]!));

/**
 * Every caption the templates make from the interrogated terms: each template filled with
 * every combination of its categories' kept terms, ordered by the geometric mean of the terms'
 * scores times the score of the template's kind, duplicates removed.
 */
export function composeDetailed(set: TermSet, terms: readonly TermScore[]): ComposedCaption[] {
  const cats = byCategory(terms);
  const scored: ComposedCaption[] = [];
  for (const t of set.offline) {
    const slots = [...new Set([...t.text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!))];
    const kindScore = t.kind ? (cats.get('kind')?.find((k) => k.term === t.kind)?.score ?? 0) : 1;
    // every combination of the slots' terms
    let combos: { values: Record<string, string>; score: number }[] = [{ values: {}, score: 1 }];
    for (const slot of slots) {
      const options = cats.get(slot) ?? [];
      combos = combos.flatMap((c) => options.map((o) => ({ values: { ...c.values, [slot]: o.term }, score: c.score * o.score })));
    }
    // the geometric mean, so a confident extra detail raises a caption and a doubtful one lowers it
    for (const c of combos) scored.push({ text: fillTemplate(t.text, c.values), template: t.text, values: c.values, score: kindScore * c.score ** (1 / Math.max(1, slots.length)) });
  }
  scored.sort((a, b) => b.score - a.score);
  const seen = new Set<string>();
  return scored.filter((c) => !seen.has(captionKey(c.text)) && !!seen.add(captionKey(c.text)));
}

/**
 * Up to `n` captions composed from the interrogated terms, likeliest first (composeDetailed).
 *
 * @example
 * composeCaptions(termSet(true), terms, 8)[0]; // "a red circle on a blue background"
 */
export function composeCaptions(set: TermSet, terms: readonly TermScore[], n: number): string[] {
  return composeDetailed(set, terms).slice(0, n).map((c) => c.text);
}

/**
 * Variations of `captions`, earlier captions and likelier replacement terms first. A caption
 * the offline generator composed (found in `composed`) has one slot refilled with another kept
 * term of that slot's category, so a shape is only ever swapped for a shape; any other caption
 * has a term it uses swapped for another of the same category. `exclude` holds keys already
 * ranked. New composed variations are added to `composed`, so later rounds can vary them too.
 */
export function varyCaptions(
  captions: readonly string[], terms: readonly TermScore[], n: number, exclude: ReadonlySet<string> = new Set(), composed?: Map<string, ComposedCaption>,
): string[] {
  const cats = byCategory(terms);
  const out: ComposedCaption[] = [];
  captions.forEach((caption, rank) => {
    const made = composed?.get(captionKey(caption));
    if (made) {
      for (const [slot, value] of Object.entries(made.values)) {
        for (const other of cats.get(slot) ?? []) {
          if (other.term === value) continue;
          const values = { ...made.values, [slot]: other.term };
          out.push({ text: fillTemplate(made.template, values), template: made.template, values, score: other.score / (rank + 1) });
        }
      }
      return;
    }
    for (const list of cats.values()) {
      for (const t of list) {
        // match how the term reads ("red background"), so a colour swap leaves the background alone
        const re = new RegExp(`\\b${escapeRegExp(t.text)}\\b`, 'i');
        if (!re.test(caption)) continue;
        for (const other of list) {
          if (other === t) continue;
          out.push({ text: fixArticles(caption.replace(re, other.text)), template: '', values: {}, score: other.score / (rank + 1) });
        }
      }
    }
  });
  out.sort((a, b) => b.score - a.score);
  const seen = new Set(exclude);
  const picked: string[] = [];
  for (const c of out) {
    const text = tidyCaption(c.text);
    const k = captionKey(text);
    if (!k || seen.has(k)) continue;
    seen.add(k);
    picked.push(text);
    if (c.template && composed) composed.set(k, { ...c, text });
    if (picked.length >= n) break;
  }
  return picked;
}

/** Captions in order, each meaning kept once (by `captionKey`), empty ones dropped. */
export function uniqueCaptions(captions: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const c of captions) {
    const t = tidyCaption(c);
    const k = captionKey(t);
    if (!k || seen.has(k)) continue;
    seen.add(k);
    out.push(t);
  }
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
