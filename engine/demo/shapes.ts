/**
 * Outlines of the world's eight shapes as polygons in unit space: centred on their bounding
 * box, the larger half-extent 1, y pointing down. Proportions are jittered per call (a star's
 * inner radius, a cross's arm width, a moon's bite) so the models see more than one drawing
 * of each shape.
 */
import type { Point } from './raster';
import type { Rng } from './rng';

export const SHAPES = ['circle', 'square', 'triangle', 'star', 'heart', 'cross', 'diamond', 'moon'] as const;
export type ShapeName = (typeof SHAPES)[number];

function arc(cx: number, cy: number, rx: number, ry: number, a0: number, a1: number, n: number): Point[] {
  const pts: Point[] = [];
  for (let i = 0; i <= n; i++) {
    const a = a0 + ((a1 - a0) * i) / n;
    pts.push([cx + rx * Math.cos(a), cy + ry * Math.sin(a)]);
  }
  return pts;
}

/** Recentre on the bounding box and scale so the larger half-extent is 1. */
export function normalise(pts: readonly Point[]): Point[] {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const [x, y] of pts) { x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y); }
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2, half = Math.max(x1 - x0, y1 - y0) / 2 || 1;
  return pts.map(([x, y]) => [(x - cx) / half, (y - cy) / half]);
}

const builders: Record<ShapeName, (rng: Rng) => Point[]> = {
  circle: (rng) => {
    const squash = rng.chance(0.7) ? 1 : rng.range(0.88, 1);
    return arc(0, 0, 1, squash, 0, 2 * Math.PI, 72).slice(0, -1);
  },
  square: (rng) => {
    const h = rng.chance(0.7) ? 1 : rng.range(0.85, 1); // a touch oblong now and then
    const round = rng.chance(0.2) ? rng.range(0.05, 0.25) : 0;
    if (round === 0) return [[-1, -h], [1, -h], [1, h], [-1, h]];
    const pts: Point[] = [];
    const corners: [number, number, number][] = [[1 - round, h - round, 0], [-1 + round, h - round, 0.5], [-1 + round, -h + round, 1], [1 - round, -h + round, 1.5]];
    for (const [cx, cy, start] of corners) pts.push(...arc(cx, cy, round, round, start * Math.PI, (start + 0.5) * Math.PI, 6));
    return pts;
  },
  triangle: (rng) => {
    const apex = rng.chance(0.75) ? 0 : rng.range(-0.4, 0.4); // mostly isosceles, sometimes lopsided
    const height = rng.range(0.8, 1.05) * Math.sqrt(3);
    return [[apex, 0], [1, height], [-1, height]];
  },
  star: (rng) => {
    const points = rng.chance(0.9) ? 5 : 6;
    const inner = rng.range(0.36, 0.52);
    const pts: Point[] = [];
    for (let i = 0; i < points * 2; i++) {
      const r = i % 2 === 0 ? 1 : inner;
      const a = -Math.PI / 2 + (i * Math.PI) / points;
      pts.push([r * Math.cos(a), r * Math.sin(a)]);
    }
    return pts;
  },
  heart: (rng) => {
    const fat = rng.range(0.9, 1.1);
    const pts: Point[] = [];
    for (let i = 0; i < 72; i++) {
      const t = (i / 72) * 2 * Math.PI;
      pts.push([16 * Math.sin(t) ** 3 * fat, -(13 * Math.cos(t) - 5 * Math.cos(2 * t) - 2 * Math.cos(3 * t) - Math.cos(4 * t))]);
    }
    return pts;
  },
  cross: (rng) => {
    const a = rng.range(0.26, 0.42); // half arm width
    const v = rng.chance(0.8) ? 1 : rng.range(1.1, 1.4); // sometimes a taller, Latin-style upright
    return [[-a, -v], [a, -v], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1], [-a, a], [-1, a], [-1, -a], [-a, -a]];
  },
  diamond: (rng) => {
    const w = rng.range(0.6, 0.9);
    return [[0, -1], [w, 0], [0, 1], [-w, 0]];
  },
  moon: (rng) => {
    // A crescent: the unit circle minus a circle of radius r centred d to the right.
    const r = rng.range(0.8, 0.95), d = rng.range(0.35, 0.6);
    const xi = (1 + d * d - r * r) / (2 * d), yi = Math.sqrt(Math.max(0, 1 - xi * xi));
    const outerA = Math.atan2(yi, xi); // outer arc from +outerA round the left to −outerA
    const innerA = Math.atan2(yi, xi - d);
    const outer = arc(0, 0, 1, 1, outerA, 2 * Math.PI - outerA, 48);
    const inner = arc(d, 0, r, r, -innerA, innerA - 2 * Math.PI, 48).slice(1, -1); // back through the bite, endpoints shared with the outer arc
    return [...outer, ...inner];
  },
};

/**
 * The outline of `shape`, proportions jittered with `rng`, normalised to unit half-extent.
 *
 * @example
 * const star = shapePolygon('star', createRng(1)); // ten points within [-1, 1]²
 */
export function shapePolygon(shape: ShapeName, rng: Rng): Point[] {
  return normalise(builders[shape](rng));
}

/**
 * Rotate by `angle` (radians), scale to half-extent `radius`, stretch x by `aspect`, and move
 * to (cx, cy).
 *
 * @example
 * const pts = placePolygon(shapePolygon('square', rng), 32, 32, 10, 0.1);
 */
export function placePolygon(pts: readonly Point[], cx: number, cy: number, radius: number, angle: number, aspect = 1): Point[] {
  const c = Math.cos(angle), s = Math.sin(angle);
  return pts.map(([x, y]) => {
    const sx = x * aspect;
    return [cx + radius * (c * sx - s * y), cy + radius * (s * sx + c * y)];
  });
}
