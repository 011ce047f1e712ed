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

/**
 * Up to `n` captions composed from the interrogated terms: every template filled with every
 * combination of its categories' kept terms, ordered by the geometric mean of the terms' scores
 * times the score of the template's kind, duplicates removed.
 *
 * @example
 * composeCaptions(termSet(true), terms, 8)[0]; // "a red circle on a blue background"
 */
export function composeCaptions(set: TermSet, terms: readonly TermScore[], n: number): string[] {
  const cats = byCategory(terms);
  const scored: { text: string; score: number }[] = [];
  for (const t of set.offline) {
    const slots = [...new Set([...t.text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!))];
    const kindScore = t.kind ? (cats.get('kind')?.find((k) => k.term === t.kind)?.score ?? 0) : 1;
    // every combination of the slots' terms
    let combos: { values: Record<string, string>; score: number }[] = [{ values: {}, score: 1 }];
    for (const slot of slots) {
      const options = cats.get(slot) ?? [];
      combos = combos.flatMap((c) => options.map((o) => ({ values: { ...c.values, [slot]: o.term }, score: c.score * o.score })));
    }
    // the geometric mean of the slots' scores, so a confident extra detail raises a caption and a doubtful one lowers it
    for (const c of combos) scored.push({ text: fixArticles(t.text.replace(/\{(\w+)\}/g, (_m, k: string) => c.values[k]!)), score: kindScore * c.score ** (1 / Math.max(1, slots.length)) });
  }
  scored.sort((a, b) => b.score - a.score);
  return uniqueCaptions(scored.map((s) => s.text)).slice(0, n);
}

/**
 * Variations of `captions`: each interrogated term found in a caption swapped for the other
 * kept terms of its category ("a red circle" → "a orange circle" → "an orange circle"), in the
 * order of the captions given, the likelier swaps first. `exclude` holds keys already ranked.
 */
export function varyCaptions(captions: readonly string[], terms: readonly TermScore[], n: number, exclude: ReadonlySet<string> = new Set()): string[] {
  const cats = byCategory(terms);
  const out: { text: string; score: number }[] = [];
  captions.forEach((caption, rank) => {
    for (const list of cats.values()) {
      for (const t of list) {
        // match how the term reads ("red background"), so a colour swap leaves the background alone
        const re = new RegExp(`\\b${escapeRegExp(t.text)}\\b`, 'i');
        if (!re.test(caption)) continue;
        for (const other of list) {
          if (other === t) continue;
          // earlier captions and likelier replacement terms first
          out.push({ text: fixArticles(caption.replace(re, other.text)), score: other.score / (rank + 1) });
        }
      }
    }
  });
  out.sort((a, b) => b.score - a.score);
  return uniqueCaptions(out.map((o) => o.text)).filter((t) => !exclude.has(captionKey(t))).slice(0, n);
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
