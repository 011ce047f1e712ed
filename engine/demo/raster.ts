/**
 * A small pure-TypeScript rasteriser for the demo world: filled polygons (non-zero winding)
 * and round-capped polylines on a supersampled float canvas, then a box downscale, optional
 * blur and noise. Pure TS because the world renders tens of thousands of images for
 * training: this is synchronous, allocation-light and several times faster than sharp's SVG
 * path for 64–128 px images (see scripts/render-world-samples.ts --bench).
 */

export type Rgb = readonly [number, number, number];
export type Point = readonly [number, number];

/** A supersampled RGB canvas. Geometry is given in output pixels; `ss` is the supersampling. */
export interface Canvas {
  size: number;
  ss: number;
  /** Side of the supersampled grid: size × ss. */
  side: number;
  /** Float RGB 0–255, interleaved, side × side. */
  data: Float32Array;
  /** Scratch coverage mask for strokes, side × side. */
  mask: Float32Array;
  /** Soft (anti-aliased) stroke edges; off draws hard, pixel-stepped edges. */
  soft: boolean;
}

const reusable = new Map<number, { data: Float32Array; mask: Float32Array }>();

/**
 * A canvas filled with `background`. Only one canvas of a given size is live at a time: the
 * next `createCanvas` of that size reuses its memory.
 *
 * @example
 * const c = createCanvas(64, 2, [128, 128, 128], true);
 */
export function createCanvas(size: number, ss: number, background: Rgb, soft: boolean): Canvas {
  const side = size * ss;
  // Reuse the last buffers of this side: rendering is synchronous, and allocating (zeroing)
  // a 1.7 MB canvas per image cost a fifth of the render time. The mask is left all-zero by
  // strokePolyline.
  let buffers = reusable.get(side);
  if (!buffers) reusable.set(side, buffers = { data: new Float32Array(side * side * 3), mask: new Float32Array(side * side) });
  const { data, mask } = buffers;
  data[0] = background[0]; data[1] = background[1]; data[2] = background[2];
  for (let filled = 3; filled < data.length; filled *= 2) data.copyWithin(filled, 0, Math.min(filled, data.length - filled));
  return { size, ss, side, data, mask, soft };
}

/**
 * Fill a polygon (output-pixel coordinates, implicitly closed) with non-zero winding,
 * sampling each supersampled pixel at its centre.
 *
 * @example
 * fillPolygon(c, [[10, 10], [50, 10], [30, 50]], [220, 30, 30]);
 */
export function fillPolygon(c: Canvas, pts: readonly Point[], rgb: Rgb): void {
  const n = pts.length;
  if (n < 3) return;
  const s = c.ss;
  let ymin = Infinity, ymax = -Infinity;
  for (const [, y] of pts) { ymin = Math.min(ymin, y * s); ymax = Math.max(ymax, y * s); }
  const r0 = Math.max(0, Math.floor(ymin)), r1 = Math.min(c.side - 1, Math.ceil(ymax));
  const xs: number[] = [], dirs: number[] = [], order: number[] = [];
  for (let row = r0; row <= r1; row++) {
    const yc = row + 0.5;
    xs.length = 0; dirs.length = 0;
    for (let i = 0; i < n; i++) {
      const [ax, ay] = pts[i]!, [bx, by] = pts[(i + 1) % n]!;
      const y0 = ay * s, y1 = by * s;
      if (y0 === y1) continue;
      const lo = Math.min(y0, y1), hi = Math.max(y0, y1);
      if (yc < lo || yc >= hi) continue;
      xs.push(ax * s + ((yc - y0) * (bx - ax) * s) / (y1 - y0));
      dirs.push(y1 > y0 ? 1 : -1);
    }
    if (xs.length < 2) continue;
    order.length = 0;
    for (let i = 0; i < xs.length; i++) order.push(i);
    order.sort((a, b) => xs[a]! - xs[b]!);
    let winding = 0;
    for (let k = 0; k < order.length - 1; k++) {
      winding += dirs[order[k]!]!;
      if (winding === 0) continue;
      // pixels whose centre x + 0.5 lies in [xa, xb)
      const xa = Math.max(0, Math.ceil(xs[order[k]!]! - 0.5));
      const xb = Math.min(c.side - 1, Math.ceil(xs[order[k + 1]!]! - 0.5) - 1);
      let p = (row * c.side + xa) * 3;
      for (let x = xa; x <= xb; x++, p += 3) { c.data[p] = rgb[0]; c.data[p + 1] = rgb[1]; c.data[p + 2] = rgb[2]; }
    }
  }
}

/**
 * Stroke a polyline (output-pixel coordinates) with round caps and joins, `width` in output
 * pixels. A single point draws a dot. Overlapping segments do not darken each other.
 *
 * @example
 * strokePolyline(c, [[5, 5], [40, 20], [60, 60]], 3, [0, 0, 0]);
 */
export function strokePolyline(c: Canvas, pts: readonly Point[], width: number, rgb: Rgb, closed = false): void {
  if (pts.length === 0) return;
  const s = c.ss, side = c.side, mask = c.mask;
  const hw = (width * s) / 2;
  const segs = pts.length === 1 ? [[pts[0]!, pts[0]!] as const] : [];
  for (let i = 0; i + 1 < pts.length; i++) segs.push([pts[i]!, pts[i + 1]!]);
  if (closed && pts.length > 2) segs.push([pts[pts.length - 1]!, pts[0]!]);
  let bx0 = side, by0 = side, bx1 = -1, by1 = -1;
  for (const [[ax0, ay0], [bx0_, by0_]] of segs) {
    const ax = ax0 * s, ay = ay0 * s, bx = bx0_ * s, by = by0_ * s;
    const x0 = Math.max(0, Math.floor(Math.min(ax, bx) - hw - 1)), x1 = Math.min(side - 1, Math.ceil(Math.max(ax, bx) + hw + 1));
    const y0 = Math.max(0, Math.floor(Math.min(ay, by) - hw - 1)), y1 = Math.min(side - 1, Math.ceil(Math.max(ay, by) + hw + 1));
    if (x0 > x1 || y0 > y1) continue;
    bx0 = Math.min(bx0, x0); by0 = Math.min(by0, y0); bx1 = Math.max(bx1, x1); by1 = Math.max(by1, y1);
    const dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (let y = y0; y <= y1; y++) {
      const py = y + 0.5;
      for (let x = x0; x <= x1; x++) {
        const px = x + 0.5;
        let t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const ex = px - ax - t * dx, ey = py - ay - t * dy;
        const d = Math.sqrt(ex * ex + ey * ey);
        const cov = c.soft ? Math.min(1, Math.max(0, hw - d + 0.5)) : d <= Math.max(hw, 0.5) ? 1 : 0;
        const m = y * side + x;
        if (cov > mask[m]!) mask[m] = cov;
      }
    }
  }
  for (let y = by0; y <= by1; y++) {
    for (let x = bx0; x <= bx1; x++) {
      const m = y * side + x, a = mask[m]!;
      if (a === 0) continue;
      mask[m] = 0;
      const p = m * 3;
      c.data[p] = c.data[p]! + (rgb[0] - c.data[p]!) * a;
      c.data[p + 1] = c.data[p + 1]! + (rgb[1] - c.data[p + 1]!) * a;
      c.data[p + 2] = c.data[p + 2]! + (rgb[2] - c.data[p + 2]!) * a;
    }
  }
}

/** How the supersampled canvas becomes the final image. */
export interface Finish {
  /** Blur sigma in output pixels after the downscale (0 = none), a near-Gaussian. */
  blur: number;
  /** Noise sigma in 8-bit levels (0 = none). */
  noiseSigma: number;
  /** Seed of the noise pattern (a fast generator of its own: per-pixel draws from the
   *  world's PRNG cost more than the rest of the image). */
  noiseSeed: number;
}

/**
 * Box-downscale the canvas to its output size and apply blur and noise, as 8-bit RGB.
 *
 * @example
 * const rgb = finishCanvas(c, { blur: 0, noiseSigma: 0, noiseSeed: 1 });
 */
export function finishCanvas(c: Canvas, finish: Finish): Uint8Array {
  let img = boxDownscale(c);
  const inv = 1 / (c.ss * c.ss);
  // sigma² adds up over passes; each 3-tap pass gives at most 2·0.3 = 0.6
  const passes = Math.ceil((finish.blur * finish.blur) / 0.6);
  for (let k = 0; k < passes; k++) img = blur3(img, c.size, (finish.blur * finish.blur) / passes / 2);
  const out = new Uint8Array(img.length);
  const sigma = finish.noiseSigma * Math.sqrt(6) / 4294967296; // (u1 + u2 − 1)·√6 has unit variance
  let state = (finish.noiseSeed | 0) || 1;
  for (let i = 0; i < img.length; i++) {
    let v = img[i]! * inv;
    if (sigma > 0) {
      // xorshift32, twice: a triangular noise sample
      state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
      const u1 = state >>> 0;
      state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
      v += (u1 + (state >>> 0) - 4294967296) * sigma;
    }
    v = Math.round(v);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}

/**
 * The sum of each output pixel's ss × ss samples, as float32: each supersampled row's samples
 * added in double precision, the rows accumulated in float32 (the order fixes the rounding,
 * and so every training picture). Specialised for ss 1–3, the ones the world uses.
 */
function boxDownscale(c: Canvas): Float32Array {
  const { size, ss, side, data } = c;
  if (ss === 1) return data.slice(0, size * size * 3);
  const img = new Float32Array(size * size * 3);
  const f = Math.fround;
  for (let y = 0; y < size; y++) {
    const r0 = y * ss * side * 3, q0 = y * size * 3;
    for (let x = 0; x < size; x++) {
      const q = q0 + x * 3;
      for (let ch = 0; ch < 3; ch++) {
        let p = r0 + x * ss * 3 + ch;
        let acc: number;
        if (ss === 2) {
          acc = f(data[p]! + data[p + 3]!);
          p += side * 3;
          acc = f(acc + (data[p]! + data[p + 3]!));
        } else if (ss === 3) {
          acc = f(data[p]! + data[p + 3]! + data[p + 6]!);
          p += side * 3;
          acc = f(acc + (data[p]! + data[p + 3]! + data[p + 6]!));
          p += side * 3;
          acc = f(acc + (data[p]! + data[p + 3]! + data[p + 6]!));
        } else {
          acc = 0;
          for (let j = 0; j < ss; j++, p += side * 3) {
            let r = 0;
            for (let i = 0; i < ss; i++) r += data[p + i * 3]!;
            acc = f(acc + r);
          }
        }
        img[q + ch] = acc;
      }
    }
  }
  return img;
}

/**
 * Blur with the separable 3-tap kernel [a, 1 − 2a, a] (sigma √(2a) per pass), edges clamped.
 * Cheap on purpose: a few passes approximate a Gaussian well enough for "soft".
 */
function blur3(src: Float32Array, size: number, a: number): Float32Array {
  const out = new Float32Array(src.length), tmp = new Float32Array(src.length);
  const b = 1 - 2 * a, row = size * 3;
  for (let y = 0; y < size; y++) {
    const o = y * row;
    for (let x = 0; x < row; x++) {
      const l = x < 3 ? x : x - 3, r = x >= row - 3 ? x : x + 3;
      tmp[o + x] = a * (src[o + l]! + src[o + r]!) + b * src[o + x]!;
    }
  }
  for (let y = 0; y < size; y++) {
    const o = y * row, up = y === 0 ? o : o - row, down = y === size - 1 ? o : o + row;
    for (let x = 0; x < row; x++) out[o + x] = a * (tmp[up + x]! + tmp[down + x]!) + b * tmp[o + x]!;
  }
  return out;
}
