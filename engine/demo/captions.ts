/**
 * Captions for the demo world's pictures, from the templates in prompts/demo/world.json:
 * "a red circle on a blue background", "two small yellow stars", "a big green triangle in
 * the top left", "a sketch of a fish". Identical shapes are counted, different ones listed.
 */
import type { Rng } from './rng';

/** One shape as drawn in a scene. */
export interface ShapeLabel {
  shape: string;
  color: string;
  size: string;
  /** The cell of a 3×3 grid holding the centre of the shape's visible bounding box. */
  position: string;
  /** That centre as fractions of the image side, [x, y]. */
  center: [number, number];
}

/** What the caption builder needs from the vocabulary file. */
export interface CaptionVocabulary {
  plurals: Record<string, string>;
  positions: Record<string, string[]>;
  counts: string[];
  templates: { scene: string[]; doodle: string[] };
}

/** "a" or "an" before `word` (by its first letter, which suffices for this vocabulary). */
export function article(word: string): string {
  return /^[aeiou]/i.test(word) ? 'an' : 'a';
}

/** "A", "A and B", "A, B and C". */
function listPhrase(items: string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

function fill(template: string, slots: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, key: string) => {
    const v = slots[key];
    if (v === undefined) throw new RangeError(`Caption template "${template}" uses an unknown slot ${m}.`);
    return v;
  });
}

interface Group { label: ShapeLabel; count: number }

/** Shapes the caption's words cannot tell apart, counted together: with only shape and
 *  colour named, a big and a small red square are "two red squares". */
function groupShapes(shapes: readonly ShapeLabel[], key: (s: ShapeLabel) => string): Group[] {
  const groups: Group[] = [];
  for (const s of shapes) {
    const g = groups.find((x) => key(x.label) === key(s));
    if (g) g.count++;
    else groups.push({ label: s, count: 1 });
  }
  return groups;
}

/** A centre at least 4% of the side away from the grid lines at 1/3 and 2/3. */
function clearlyInCell([x, y]: [number, number]): boolean {
  const margin = 0.04;
  return [x, y].every((v) => Math.abs(v - 1 / 3) >= margin && Math.abs(v - 2 / 3) >= margin);
}

type Detail = 'full' | 'color' | 'shape' | 'placed' | 'placedColor';
const DETAIL_WEIGHTS: [Detail, number][] = [['full', 0.4], ['placed', 0.2], ['color', 0.2], ['placedColor', 0.1], ['shape', 0.1]];

const KEYS: Record<Detail, (s: ShapeLabel) => string> = {
  full: (s) => `${s.shape} ${s.color} ${s.size}`,
  color: (s) => `${s.shape} ${s.color}`,
  shape: (s) => s.shape,
  placed: (s) => `${s.shape} ${s.color} ${s.size} ${s.center.join()}`, // every shape on its own
  placedColor: (s) => `${s.shape} ${s.color} ${s.size} ${s.center.join()}`,
};

function thingsPhrase(shapes: readonly ShapeLabel[], detail: Detail, vocab: CaptionVocabulary, where: Map<ShapeLabel, string>): string {
  return listPhrase(groupShapes(shapes, KEYS[detail]).map((g) => {
    const words: string[] = [];
    if (detail === 'full' || detail === 'placed') words.push(g.label.size);
    if (detail !== 'shape') words.push(g.label.color);
    words.push(g.count === 1 ? g.label.shape : (vocab.plurals[g.label.shape] ?? `${g.label.shape}s`));
    const count = g.count === 1 ? article(words[0]!) : (vocab.counts[g.count - 1] ?? String(g.count));
    const phrase = `${count} ${words.join(' ')}`;
    return detail === 'placed' || detail === 'placedColor' ? `${phrase} ${where.get(g.label)}` : phrase;
  }));
}

/**
 * Every caption this vocabulary gives a scene, and one of them drawn at random (weighted
 * toward the fully specific ones). Positions are named only when each shape is alone in its
 * group, so "two stars" never claims one place, and sits clearly inside its grid cell.
 *
 * @example
 * sceneCaptions([{ shape: 'circle', color: 'red', size: 'big', position: 'center' }], 'blue', vocab, rng);
 * // { caption: 'a big red circle on a blue background', captions: [...] }
 */
export function sceneCaptions(
  shapes: readonly ShapeLabel[], background: string, vocab: CaptionVocabulary, rng: Rng,
): { caption: string; captions: string[] } {
  const placeable = groupShapes(shapes, KEYS.full).every((g) => g.count === 1) && shapes.every((s) => clearlyInCell(s.center));
  const where = new Map(shapes.map((s) => [s, rng.pick(vocab.positions[s.position] ?? [`in the ${s.position}`])]));
  const details = DETAIL_WEIGHTS.filter(([d]) => placeable || !d.startsWith('placed'));
  const byDetail = new Map<Detail, string[]>();
  for (const [d] of details) {
    const things = thingsPhrase(shapes, d, vocab, where);
    const slots = { things, background, a_background: `${article(background)} ${background}` };
    byDetail.set(d, [...new Set(vocab.templates.scene.map((t) => fill(t, slots)))]);
  }
  let u = rng.next() * details.reduce((a, [, w]) => a + w, 0);
  let chosen = details[0]![0];
  for (const [d, w] of details) { if ((u -= w) < 0) { chosen = d; break; } }
  const caption = rng.pick(byDetail.get(chosen)!);
  return { caption, captions: [...new Set([...byDetail.values()].flat())] };
}

/**
 * Every caption for a doodle of `subject`, and one drawn at random.
 *
 * @example
 * doodleCaptions('fish', vocab, rng).caption; // e.g. "a sketch of a fish"
 */
export function doodleCaptions(subject: string, vocab: CaptionVocabulary, rng: Rng): { caption: string; captions: string[] } {
  const slots = { subject, a_subject: `${article(subject)} ${subject}` };
  const captions = [...new Set(vocab.templates.doodle.map((t) => fill(t, slots)))];
  return { caption: rng.pick(captions), captions };
}
