/**
 * A stand-in for "pictures drawn by another program": flat SVG shapes and line doodles,
 * written from scratch here (none of the world's geometry, palette, jitter or rasteriser) and
 * rasterised by librsvg through sharp. eval-clip.ts scores the demo CLIP on them, as the
 * acceptance check scores it on 128×128 PNGs from a program this project never sees.
 */
import { rasterizeSvg, type RgbImage } from '../io/images';
import { createRng, type Rng } from './rng';

/** A CSS-ish palette, deliberately not the world's shades. */
const PALETTE: Record<string, string[]> = {
  red: ['#e53935', '#d50000', '#f44336'],
  orange: ['#fb8c00', '#ff9800', '#f57c00'],
  yellow: ['#fdd835', '#ffeb3b', '#ffd600'],
  green: ['#43a047', '#4caf50', '#2e7d32'],
  blue: ['#1e88e5', '#2962ff', '#1565c0'],
  purple: ['#8e24aa', '#9c27b0', '#6a1b9a'],
  black: ['#000000', '#212121'],
  white: ['#ffffff', '#fafafa'],
};
const BACKGROUNDS = ['#ffffff', '#eeeeee', '#9e9e9e', '#263238', '#bbdefb', '#c8e6c9', '#fff9c4'];

export const PROXY_SHAPES = ['circle', 'square', 'triangle', 'star', 'heart', 'cross', 'diamond', 'moon'] as const;
export const PROXY_COLORS = Object.keys(PALETTE);

/** SVG markup of one shape centred at (cx, cy) with half-extent r. */
function shapeSvg(shape: string, cx: number, cy: number, r: number, fill: string): string {
  const pts = (list: [number, number][]) => `<polygon points="${list.map(([x, y]) => `${(cx + x * r).toFixed(1)},${(cy + y * r).toFixed(1)}`).join(' ')}" fill="${fill}"/>`;
  switch (shape) {
    case 'circle': return `<circle cx="${cx}" cy="${cy}" r="${r}" fill="${fill}"/>`;
    case 'square': return `<rect x="${cx - r}" y="${cy - r}" width="${2 * r}" height="${2 * r}" fill="${fill}"/>`;
    case 'triangle': return pts([[0, -1], [1, 0.8], [-1, 0.8]]);
    case 'diamond': return pts([[0, -1], [0.7, 0], [0, 1], [-0.7, 0]]);
    case 'cross': { const a = 0.33; return pts([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1], [-a, a], [-1, a], [-1, -a], [-a, -a]]); }
    case 'star': return pts(Array.from({ length: 10 }, (_, i) => {
      const rr = i % 2 ? 0.42 : 1, a = -Math.PI / 2 + (i * Math.PI) / 5;
      return [rr * Math.cos(a), rr * Math.sin(a) + 0.1] as [number, number];
    }));
    case 'heart': {
      const s = r / 1;
      return `<path d="M ${cx} ${cy + 0.9 * s} C ${cx - 1.3 * s} ${cy} ${cx - 1.1 * s} ${cy - 1.1 * s} ${cx} ${cy - 0.45 * s} C ${cx + 1.1 * s} ${cy - 1.1 * s} ${cx + 1.3 * s} ${cy} ${cx} ${cy + 0.9 * s} Z" fill="${fill}"/>`;
    }
    case 'moon': // the outer circle's left part, bitten by an inner arc (a crescent opening right)
      return `<path d="M ${cx + 0.3 * r} ${cy - 0.95 * r} A ${r} ${r} 0 1 0 ${cx + 0.3 * r} ${cy + 0.95 * r} A ${0.8 * r} ${0.8 * r} 0 1 1 ${cx + 0.3 * r} ${cy - 0.95 * r} Z" fill="${fill}"/>`;
    default: throw new RangeError(`no SVG for shape ${shape}`);
  }
}

const svgDoc = (size: number, bg: string, body: string) =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 128 128"><rect width="128" height="128" fill="${bg}"/>${body}</svg>`;

function hexDistance(a: string, b: string): number {
  const p = (h: string) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
  const [x, y] = [p(a), p(b)];
  return Math.hypot(x[0]! - y[0]!, x[1]! - y[1]!, x[2]! - y[2]!);
}

export interface ProxySample { image: RgbImage; shape?: string; color?: string; subject?: string }

/** One flat shape of a random colour, size and place on a plain background, 128×128. */
export async function proxyShape(rng: Rng, size = 128): Promise<ProxySample> {
  const shape = rng.pick(PROXY_SHAPES);
  const color = rng.pick(PROXY_COLORS);
  const fill = rng.pick(PALETTE[color]!);
  const bg = rng.pick(BACKGROUNDS.filter((b) => hexDistance(b, fill) > 100));
  const r = rng.range(18, 46);
  const cx = rng.range(r + 2, 126 - r), cy = rng.range(r + 2, 126 - r);
  return { image: await rasterizeSvg(svgDoc(size, bg, shapeSvg(shape, cx, cy, r, fill)), size), shape, color };
}

/** Stroked line drawings of some doodle subjects, in a 128 box. */
const DOODLES: Record<string, string> = {
  house: '<path d="M30 60 L64 28 L98 60 M36 56 L36 104 L92 104 L92 56 M56 104 L56 78 L72 78 L72 104"/>',
  tree: '<path d="M58 108 L58 76 M70 108 L70 76"/><circle cx="64" cy="50" r="30"/>',
  sun: '<circle cx="64" cy="64" r="20"/><path d="M64 30 L64 16 M64 98 L64 112 M30 64 L16 64 M98 64 L112 64 M40 40 L30 30 M88 88 L98 98 M88 40 L98 30 M40 88 L30 98"/>',
  fish: '<path d="M24 64 C44 40 80 40 96 64 C80 88 44 88 24 64 Z M96 64 L114 48 L114 80 Z"/><circle cx="42" cy="60" r="3"/>',
  'smiley face': '<circle cx="64" cy="64" r="42"/><circle cx="50" cy="52" r="4"/><circle cx="78" cy="52" r="4"/><path d="M44 76 Q64 96 84 76"/>',
  umbrella: '<path d="M20 64 Q64 10 108 64 Z M64 64 L64 100 Q64 110 54 106"/>',
  apple: '<path d="M64 40 C40 28 22 52 32 80 C40 104 56 108 64 100 C72 108 88 104 96 80 C106 52 88 28 64 40 Z M64 40 L66 24"/>',
  cloud: '<path d="M30 84 C14 84 14 60 32 60 C30 40 58 34 66 50 C74 34 102 40 98 60 C116 60 116 84 98 84 Z"/>',
  star: '<path d="M64 16 L76 50 L112 50 L82 72 L94 108 L64 86 L34 108 L46 72 L16 50 L52 50 Z"/>',
  heart: '<path d="M64 104 C20 74 18 40 40 32 C52 28 60 36 64 44 C68 36 76 28 88 32 C110 40 108 74 64 104 Z"/>',
  moon: '<path d="M72 18 A46 46 0 1 0 72 110 A36 36 0 1 1 72 18 Z"/>',
  boat: '<path d="M20 80 L108 80 L92 102 L36 102 Z M64 80 L64 22 L96 70 L64 70"/>',
  mountain: '<path d="M10 104 L48 38 L66 68 L84 46 L118 104 Z"/>',
  cup: '<path d="M34 40 L40 100 L84 100 L90 40 Z M90 54 C110 54 110 82 86 82"/>',
  'lightning bolt': '<path d="M72 12 L36 70 L60 70 L50 116 L92 52 L66 52 Z"/>',
};

export const PROXY_SUBJECTS = Object.keys(DOODLES);

/** One black line drawing of a subject, a little scaled, shifted and rotated, 128×128. */
export async function proxyDoodle(rng: Rng, size = 128): Promise<ProxySample> {
  const subject = rng.pick(PROXY_SUBJECTS);
  const s = rng.range(0.75, 1), angle = rng.range(-12, 12);
  const dx = rng.range(-10, 10), dy = rng.range(-10, 10), width = rng.range(2.5, 5);
  const body = `<g transform="translate(${64 + dx} ${64 + dy}) rotate(${angle.toFixed(1)}) scale(${s.toFixed(2)}) translate(-64 -64)" fill="none" stroke="#111" stroke-width="${width.toFixed(1)}" stroke-linecap="round" stroke-linejoin="round">${DOODLES[subject]}</g>`;
  return { image: await rasterizeSvg(svgDoc(size, '#ffffff', body), size), subject };
}

/** `n` samples from `seed`. */
export async function proxySamples(kind: 'shape' | 'doodle', seed: number, n: number): Promise<ProxySample[]> {
  const rng = createRng(seed);
  const out: ProxySample[] = [];
  for (let i = 0; i < n; i++) out.push(await (kind === 'shape' ? proxyShape(rng) : proxyDoodle(rng)));
  return out;
}
