/**
 * A pixel-colour judge for generated pictures of the demo world (no CLIP involved): every pixel
 * is given the nearest of the world's named colours (the mean of each colour's shades in
 * prompts/demo/world.json), and a picture passes when the two most frequent colours are the
 * prompted foreground and background colours.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRng, worldVocabulary } from '../../engine/index';
import { REPO_ROOT } from './fixtures';

interface WorldColours { colors: Record<string, [number, number, number][]>; shapeColors: string[]; backgroundColors: string[] }

export function worldColours(): { palette: { name: string; rgb: [number, number, number] }[]; shapeColors: string[]; backgroundColors: string[] } {
  const w = JSON.parse(readFileSync(join(REPO_ROOT, 'prompts/demo/world.json'), 'utf8')) as WorldColours;
  const palette = Object.entries(w.colors).map(([name, shades]) => ({
    name, rgb: [0, 1, 2].map((c) => shades.reduce((s, x) => s + x[c]!, 0) / shades.length) as [number, number, number],
  }));
  return { palette, shapeColors: w.shapeColors, backgroundColors: w.backgroundColors };
}

export interface ColourVerdict {
  pass: boolean;
  /** Share of pixels per named colour, largest first. */
  shares: { name: string; share: number }[];
}

/** Judge interleaved RGB bytes against the prompted colours. */
export function judgeColours(rgb: Uint8Array, foreground: string, background: string): ColourVerdict {
  const { palette } = worldColours();
  const counts = new Map<string, number>(palette.map((p) => [p.name, 0]));
  const n = rgb.length / 3;
  for (let i = 0; i < n; i++) {
    let best = palette[0]!, bestD = Infinity;
    for (const p of palette) {
      const d = (rgb[3 * i]! - p.rgb[0]) ** 2 + (rgb[3 * i + 1]! - p.rgb[1]) ** 2 + (rgb[3 * i + 2]! - p.rgb[2]) ** 2;
      if (d < bestD) { bestD = d; best = p; }
    }
    counts.set(best.name, counts.get(best.name)! + 1);
  }
  const shares = [...counts].map(([name, c]) => ({ name, share: c / n })).sort((a, b) => b.share - a.share);
  const top2 = new Set(shares.slice(0, 2).map((s) => s.name));
  return { pass: top2.has(foreground) && top2.has(background), shares };
}

/** English's article, as the demo captions write it ("an orange star"). */
const an = (word: string) => (/^[aeiou]/.test(word) ? 'an' : 'a');

/** The prompts: seeded picks of (foreground colour, shape, background colour), colours distinct. */
export function acceptancePrompts(n: number): { prompt: string; fg: string; bg: string }[] {
  const v = worldVocabulary();
  const { shapeColors, backgroundColors } = worldColours();
  const rng = createRng(20260601);
  const out: { prompt: string; fg: string; bg: string }[] = [];
  while (out.length < n) {
    const fg = rng.pick(shapeColors);
    const bg = rng.pick(backgroundColors);
    if (fg === bg) continue;
    out.push({ prompt: `${an(fg)} ${fg} ${rng.pick(v.shapes)} on ${an(bg)} ${bg} background`, fg, bg });
  }
  return out;
}
