/**
 * Doodle subjects as strokes in unit space (x right, y down, within about [-1, 1]²), and the
 * hand-drawn look: strokes densified, bent by smooth low-frequency wobble, nudged apart,
 * sometimes retraced. Several subjects have more than one drawing (a round or a pine tree,
 * dot or line eyes) so no single renderer's look is all the models learn.
 */
import type { Point } from './raster';
import type { Rng } from './rng';
import { SHAPES, shapePolygon, type ShapeName } from './shapes';

/** One pen stroke. A single-point stroke is a dot, drawn `dot`× thicker than lines. */
export interface Stroke {
  pts: Point[];
  closed?: boolean;
  dot?: number;
}

const TAU = 2 * Math.PI;

function ellipse(cx: number, cy: number, rx: number, ry: number, a0 = 0, a1 = TAU, n = 40): Stroke {
  const pts: Point[] = [];
  const full = Math.abs(a1 - a0) >= TAU - 1e-9;
  const steps = full ? n : Math.max(2, Math.round((n * Math.abs(a1 - a0)) / TAU));
  for (let i = 0; i < (full ? steps : steps + 1); i++) {
    const a = a0 + ((a1 - a0) * i) / steps;
    pts.push([cx + rx * Math.cos(a), cy + ry * Math.sin(a)]);
  }
  return { pts, closed: full };
}
const circle = (cx: number, cy: number, r: number, n = 40): Stroke => ellipse(cx, cy, r, r, 0, TAU, n);
const line = (...pts: Point[]): Stroke => ({ pts });
const poly = (...pts: Point[]): Stroke => ({ pts, closed: true });
const dot = (x: number, y: number, size = 2.2): Stroke => ({ pts: [[x, y]], dot: size });

function eyes(rng: Rng, x: number, y: number, gap: number, r: number): Stroke[] {
  if (rng.chance(0.5)) return [dot(x - gap, y, 1.5 + r * 20), dot(x + gap, y, 1.5 + r * 20)];
  if (rng.chance(0.5)) return [line([x - gap, y - r * 1.5], [x - gap, y + r * 1.5]), line([x + gap, y - r * 1.5], [x + gap, y + r * 1.5])];
  return [circle(x - gap, y, r * 1.4, 12), circle(x + gap, y, r * 1.4, 12)];
}

type Drawer = (rng: Rng) => Stroke[];

const shapeOutline = (shape: ShapeName): Drawer => (rng) => [{ pts: shapePolygon(shape, rng).map(([x, y]) => [x * 0.9, y * 0.9]), closed: true }];

const drawers: Record<string, Drawer> = {
  house: (rng) => {
    const roof = rng.range(-0.95, -0.7);
    const s: Stroke[] = [poly([-0.7, -0.1], [0.7, -0.1], [0.7, 0.9], [-0.7, 0.9]), line([-0.85, -0.05], [0, roof], [0.85, -0.05])];
    s.push(line([-0.15, 0.9], [-0.15, 0.4], [0.2, 0.4], [0.2, 0.9]));
    if (rng.chance(0.7)) s.push(poly([0.32, 0.12], [0.56, 0.12], [0.56, 0.36], [0.32, 0.36]));
    if (rng.chance(0.4)) s.push(line([0.4, -0.45], [0.4, -0.75], [0.55, -0.75], [0.55, -0.32])); // chimney
    return s;
  },
  tree: (rng) => {
    const trunk = [line([-0.13, 0.95], [-0.12, 0.25]), line([0.13, 0.95], [0.12, 0.25]), line([-0.35, 0.95], [0.35, 0.95])];
    if (rng.chance(0.5)) {
      const crown: Point[] = [];
      const bumps = rng.int(5, 8);
      for (let i = 0; i < 72; i++) {
        const a = (i / 72) * TAU;
        const r = 0.55 + 0.09 * Math.abs(Math.sin((a * bumps) / 2));
        crown.push([r * Math.cos(a), -0.3 + r * 0.95 * Math.sin(a)]);
      }
      return [...trunk, { pts: crown, closed: true }];
    }
    return [...trunk.slice(0, 2), line([-0.12, 0.25], [-0.7, 0.25], [-0.3, -0.2], [-0.55, -0.2], [0, -0.95], [0.55, -0.2], [0.3, -0.2], [0.7, 0.25], [0.12, 0.25])];
  },
  sun: (rng) => {
    const r = rng.range(0.35, 0.5), rays = rng.int(7, 12), s: Stroke[] = [circle(0, 0, r)];
    for (let i = 0; i < rays; i++) {
      const a = (i / rays) * TAU;
      s.push(line([(r + 0.12) * Math.cos(a), (r + 0.12) * Math.sin(a)], [0.92 * Math.cos(a), 0.92 * Math.sin(a)]));
    }
    if (rng.chance(0.3)) s.push(...eyes(rng, 0, -0.08, r * 0.35, 0.04), ellipse(0, 0.02, r * 0.5, r * 0.45, 0.3, Math.PI - 0.3, 12));
    return s;
  },
  cloud: (rng) => {
    // scallops: round bumps meeting in cusps, big on top, shallow underneath
    const bumps = rng.int(3, 5) * 2, pts: Point[] = [];
    for (let i = 0; i < 120; i++) {
      const a = (i / 120) * TAU, top = Math.sin(a) < 0;
      const r = 1 + (top ? 0.4 : 0.1) * Math.abs(Math.sin((a * bumps) / 2));
      pts.push([0.72 * r * Math.cos(a), (top ? 0.45 : 0.28) * r * Math.sin(a)]);
    }
    return [{ pts, closed: true }];
  },
  fish: (rng) => {
    const s: Stroke[] = [ellipse(-0.15, 0, 0.62, rng.range(0.3, 0.42)), line([0.42, 0], [0.92, -0.38], [0.88, 0.38], [0.42, 0]), dot(-0.5, -0.07)];
    if (rng.chance(0.5)) s.push(ellipse(-0.3, 0, 0.25, 0.3, -1.2, 1.2, 10)); // gill
    return s;
  },
  flower: (rng) => {
    const petals = rng.int(5, 8), cy = -0.35, s: Stroke[] = [circle(0, cy, 0.15, 20)];
    const loopy = rng.chance(0.5);
    for (let i = 0; i < petals; i++) {
      const a = (i / petals) * TAU, c = Math.cos(a), sn = Math.sin(a);
      if (loopy) s.push(circle(0.33 * c, cy + 0.33 * sn, 0.17, 16));
      else {
        const pts = ellipse(0, 0, 0.2, 0.11, 0, TAU, 16).pts.map(([x, y]): Point => [0.33 * c + x * c - y * sn, cy + 0.33 * sn + x * sn + y * c]);
        s.push({ pts, closed: true });
      }
    }
    s.push(line([0, cy + 0.5], [0.03, 0.5], [0, 0.95]));
    if (rng.chance(0.7)) s.push(poly([0.02, 0.55], [0.3, 0.35], [0.45, 0.45], [0.2, 0.62]));
    return s;
  },
  'smiley face': (rng) => [circle(0, 0, 0.9), ...eyes(rng, 0, -0.25, 0.3, 0.06), ellipse(0, 0.05, 0.5, rng.range(0.35, 0.5), 0.35, Math.PI - 0.35, 16)],
  boat: (rng) => {
    const s: Stroke[] = [poly([-0.9, 0.3], [0.9, 0.3], [0.55, 0.7], [-0.55, 0.7]), line([0, 0.3], [0, -0.9]), poly([0.05, -0.85], [0.65, 0.15], [0.05, 0.15])];
    if (rng.chance(0.4)) s.push(line([-0.95, 0.85], [-0.7, 0.78], [-0.45, 0.85], [-0.2, 0.78], [0.05, 0.85], [0.3, 0.78], [0.55, 0.85], [0.8, 0.78]));
    return s;
  },
  umbrella: (rng) => {
    const scallops = rng.int(3, 4), w = 1.7 / scallops, edge: Point[] = [];
    for (let i = scallops - 1; i >= 0; i--) edge.push(...ellipse(-0.85 + w * (i + 0.5), 0, w / 2, 0.12, 0, -Math.PI, 8).pts);
    return [
      { pts: [...ellipse(0, 0, 0.85, 0.75, Math.PI, TAU, 30).pts, ...edge] },
      line([0, -0.75], [0, -0.88]),
      { pts: [[0, 0], [0, 0.7], ...ellipse(-0.14, 0.7, 0.14, 0.14, 0, Math.PI, 8).pts] },
    ];
  },
  apple: (rng) => {
    const pts: Point[] = [];
    for (let i = 0; i < 64; i++) {
      const a = (i / 64) * TAU - Math.PI / 2; // start at the top
      const dip = 0.22 * Math.exp(-(((a + Math.PI / 2) % TAU) ** 2) / 0.12) + 0.22 * Math.exp(-(((a + Math.PI / 2) - TAU) ** 2) / 0.12);
      pts.push([0.75 * Math.cos(a), 0.2 + 0.72 * Math.sin(a) + dip]);
    }
    const s: Stroke[] = [{ pts, closed: true }, line([0, -0.3], [0.08, -0.75])];
    if (rng.chance(0.7)) s.push(poly([0.06, -0.55], [0.3, -0.75], [0.55, -0.7], [0.3, -0.55]));
    return s;
  },
  mountain: (rng) => {
    const p = rng.range(-0.3, 0.3);
    const s: Stroke[] = [line([-0.95, 0.7], [-0.5 + p / 2, -0.2], [-0.15 + p / 2, 0.2], [0.3 + p / 2, -0.8], [0.95, 0.7]), line([-0.95, 0.7], [0.95, 0.7])];
    if (rng.chance(0.6)) s.push(line([0.08 + p / 2, -0.42], [0.2 + p / 2, -0.35], [0.3 + p / 2, -0.45], [0.42 + p / 2, -0.33], [0.52 + p / 2, -0.4]));
    return s;
  },
  'lightning bolt': () => [poly([0.15, -0.95], [-0.45, 0.12], [-0.02, 0.12], [-0.25, 0.95], [0.5, -0.2], [0.07, -0.2], [0.4, -0.95])],
  car: (rng) => {
    const s: Stroke[] = [
      line([-0.32, 0.4], [-0.9, 0.4], [-0.9, -0.02], [-0.45, -0.05], [-0.3, -0.45], [0.35, -0.45], [0.55, -0.05], [0.9, 0], [0.9, 0.4], [0.32, 0.4]),
      line([-0.12, 0.4], [0.12, 0.4]),
      circle(-0.55, 0.42, 0.2, 20), circle(0.55, 0.42, 0.2, 20),
    ];
    if (rng.chance(0.6)) s.push(line([0.02, -0.42], [0.02, -0.05]));
    return s;
  },
  cat: (rng) => [
    circle(0, 0.15, 0.7), line([-0.55, -0.25], [-0.5, -0.9], [-0.15, -0.52]), line([0.55, -0.25], [0.5, -0.9], [0.15, -0.52]),
    ...eyes(rng, 0, 0.0, 0.27, 0.06), poly([-0.07, 0.2], [0.07, 0.2], [0, 0.28]),
    line([-0.15, 0.3], [-0.8, 0.2]), line([-0.15, 0.35], [-0.8, 0.42]), line([0.15, 0.3], [0.8, 0.2]), line([0.15, 0.35], [0.8, 0.42]),
  ],
  bird: (rng) => {
    const s: Stroke[] = [ellipse(-0.1, 0.15, 0.6, 0.38), circle(0.45, -0.35, 0.25, 24), line([0.68, -0.42], [0.95, -0.3], [0.68, -0.22]), dot(0.5, -0.4, 1.8)];
    s.push(line([-0.68, 0.05], [-0.95, -0.15], [-0.92, 0.25], [-0.7, 0.25]));
    if (rng.chance(0.7)) s.push(ellipse(-0.15, 0.1, 0.3, 0.18, 0.2, Math.PI, 12));
    s.push(line([-0.15, 0.5], [-0.2, 0.85]), line([0.1, 0.5], [0.12, 0.85]));
    return s;
  },
  snowman: (rng) => {
    const s: Stroke[] = [circle(0, 0.52, 0.45), circle(0, -0.2, 0.3, 32), circle(0, -0.7, 0.22, 24), dot(-0.08, -0.74, 1.6), dot(0.08, -0.74, 1.6)];
    s.push(dot(0, -0.25, 1.6), dot(0, -0.08, 1.6), line([-0.28, -0.2], [-0.75, -0.5]), line([0.28, -0.2], [0.75, -0.5]));
    if (rng.chance(0.5)) s.push(line([-0.2, -0.88], [0.2, -0.88]), poly([-0.13, -0.88], [-0.13, -1], [0.13, -1], [0.13, -0.88]));
    return s;
  },
  balloon: () => [ellipse(0, -0.35, 0.5, 0.6), poly([0, 0.25], [-0.07, 0.33], [0.07, 0.33]), line([0, 0.33], [0.1, 0.5], [-0.08, 0.68], [0.06, 0.85], [0, 0.97])],
  cup: (rng) => {
    const s: Stroke[] = [line([-0.55, -0.35], [-0.45, 0.7], [0.35, 0.7], [0.45, -0.35]), ellipse(-0.05, -0.35, 0.5, 0.1, 0, TAU, 24), ellipse(0.43, 0.12, 0.3, 0.25, -Math.PI / 2, Math.PI / 2, 14)];
    if (rng.chance(0.5)) s.push(line([-0.2, -0.55], [-0.1, -0.7], [-0.2, -0.85]), line([0.1, -0.55], [0.2, -0.7], [0.1, -0.85]));
    return s;
  },
  kite: () => [poly([0, -0.95], [0.5, -0.3], [0, 0.4], [-0.5, -0.3]), line([0, -0.95], [0, 0.4]), line([-0.5, -0.3], [0.5, -0.3]),
    line([0, 0.4], [0.15, 0.55], [0.05, 0.7], [0.2, 0.85], [0.15, 0.97]), line([0.02, 0.62], [0.2, 0.62]), line([0.05, 0.8], [0.25, 0.76])],
  envelope: (rng) => {
    const h = rng.range(0.45, 0.6);
    return [poly([-0.9, -h], [0.9, -h], [0.9, h], [-0.9, h]), line([-0.9, -h], [0, 0.1], [0.9, -h])];
  },
};
for (const shape of SHAPES) drawers[shape] = shapeOutline(shape);

/** The subjects `drawDoodle` knows, in a fixed order. */
export const DOODLE_SUBJECTS: readonly string[] = Object.keys(drawers);

/**
 * The strokes of one drawing of `subject`, in unit space.
 *
 * @example
 * const strokes = drawDoodle('house', createRng(3)); // walls, roof, door, …
 */
export function drawDoodle(subject: string, rng: Rng): Stroke[] {
  const draw = drawers[subject];
  if (!draw) throw new RangeError(`No doodle for "${subject}"; known: ${DOODLE_SUBJECTS.join(', ')}.`);
  return draw(rng);
}

/** How shaky a hand draws, in output pixels. */
export interface HandStyle {
  /** Amplitude of the slow bends along a stroke. */
  wobble: number;
  /** How far each stroke lands from where it belongs. */
  misplace: number;
  /** Segment length after densifying. */
  step: number;
  /** Longest stretch of the slowest bend, e.g. the image size. */
  period: number;
}

/**
 * A stroke (already in pixel space) as a hand would draw it: densified, bent by a sum of
 * smooth sinusoids along its length, shifted a little, and closed strokes left with a small
 * gap or overshoot where the pen ends.
 *
 * @example
 * const shaky = handDraw(stroke.pts, true, rng, { wobble: 1.5, misplace: 1, step: 2, period: 128 });
 */
export function handDraw(pts: readonly Point[], closed: boolean, rng: Rng, style: HandStyle): Point[] {
  if (pts.length < 2) return pts.map(([x, y]) => [x + rng.normal() * style.misplace * 0.5, y + rng.normal() * style.misplace * 0.5]);
  const path = closed ? [...pts, pts[0]!] : [...pts];
  if (closed && rng.chance(0.5)) {
    // overshoot a little past the start, along the first segment
    const [ax, ay] = pts[0]!, [bx, by] = pts[1]!;
    const f = Math.min(1, (rng.range(0.01, 0.06) * style.period) / (Math.hypot(bx - ax, by - ay) || 1));
    path.push([ax + (bx - ax) * f, ay + (by - ay) * f]);
  }
  const dense: [number, number, number][] = []; // x, y, arc length
  let s = 0;
  for (let i = 0; i + 1 < path.length; i++) {
    const [ax, ay] = path[i]!, [bx, by] = path[i + 1]!;
    const len = Math.hypot(bx - ax, by - ay), n = Math.max(1, Math.ceil(len / style.step));
    for (let k = 0; k < n; k++) dense.push([ax + ((bx - ax) * k) / n, ay + ((by - ay) * k) / n, s + (len * k) / n]);
    s += len;
  }
  dense.push([...path[path.length - 1]!, s]);
  // or stop a little short of it
  const gap = closed && path.length === pts.length + 1 && rng.chance(0.5) ? Math.round((rng.range(0, 0.04) * style.period) / style.step) : 0;
  const last = dense.length - gap;
  const waves = Array.from({ length: 3 }, (_, k) => ({
    fx: (TAU * rng.range(0.5, 2.5) * (k + 1)) / style.period, px: rng.range(0, TAU),
    fy: (TAU * rng.range(0.5, 2.5) * (k + 1)) / style.period, py: rng.range(0, TAU), a: style.wobble / (k + 1),
  }));
  const ox = rng.normal() * style.misplace, oy = rng.normal() * style.misplace;
  const out: Point[] = [];
  for (let i = 0; i < Math.max(2, last); i++) {
    const [x, y, t] = dense[Math.min(i, dense.length - 1)]!;
    let dx = ox, dy = oy;
    for (const w of waves) { dx += w.a * Math.sin(w.fx * t + w.px); dy += w.a * Math.sin(w.fy * t + w.py); }
    out.push([x + dx, y + dy]);
  }
  return out;
}
