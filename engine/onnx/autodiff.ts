/**
 * Reverse-mode differentiation for graphs built with OnnxGraph (graph.ts). Each operation here
 * emits its forward nodes and records how to emit its backward ones; `backward(y, dy)` then
 * appends, in reverse order, the nodes that carry dy back to every parameter. One ONNX graph
 * thus computes a model's gradients, and onnxruntime runs it (a training step of the demo CLIP
 * on two CPU cores runs several times faster there than on tfjs-wasm; see clip-train-onnx.ts).
 *
 * Only what a transformer needs, each with its gradient written out:
 *   linear       y = x·w (+ b)            dx = dy·wᵀ, dw = xᵀ·dy, db = Σ dy
 *   matmul       y = a·b (batched)        da = dy·bᵀ, db = aᵀ·dy
 *   layerNorm    y = γ·x̂ + β              dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = γ·dy
 *   softmax      y = softmax(x)           dx = y·(dy − Σ dy·y)
 *   quickGelu    y = x·σ(1.702x)          dx = dy·(σ + 1.702·x·σ·(1 − σ))   (swish: the same with 1)
 *   conv         y = conv(x, w) + b       dx = convᵀ(dy, w), dw = dy · (x's k² shifted views)ᵀ
 *   groupNorm    a layer norm per group, then γ, β per channel
 *   upsample2x   nearest ×2               dx = Σ dy over each 2×2 block
 * plus the bookkeeping ones (add, scale, reshape, transpose, split, concat). A value gets a gradient
 * only when it depends on a parameter, so inputs such as pixels cost nothing on the way back.
 *
 * @example
 * const g = new OnnxGraph('tiny');
 * const t = new Tape(g);
 * const w = t.param(g.input('w', 'float32', [4, 2]), [4, 2]);
 * const y = t.linear(g.input('x', 'float32', ['n', 4]), w);
 * t.backward(y, g.input('dy', 'float32', ['n', 2]));
 * g.output(t.gradient(w)!, 'dw', 'float32', [4, 2]);
 */
import type { OnnxGraph } from './graph';

export class Tape {
  /** Backward emitters, in forward order; run last to first. */
  private readonly steps: (() => void)[] = [];
  /** value -> its gradient (accumulated with Add when several uses contribute). */
  private readonly grads = new Map<string, string>();
  /** Values that depend on a parameter. */
  private readonly live = new Set<string>();
  private readonly shapes = new Map<string, readonly number[]>();
  private done = false;

  constructor(readonly g: OnnxGraph) {}

  /**
   * Declare `name` (a graph input) a parameter; its gradient is wanted. `shape`, when static,
   * lets linear, conv, split and concat use it.
   */
  param(name: string, shape?: readonly number[]): string {
    this.live.add(name);
    if (shape) this.shapes.set(name, shape);
    return name;
  }

  /** The gradient of a parameter (or any live value) after `backward`; undefined if none reached it. */
  gradient(name: string): string | undefined {
    return this.grads.get(name);
  }

  /** Emit the backward pass from `y`, whose gradient is `dy` (same shape). Once per tape. */
  backward(y: string, dy: string): void {
    if (this.done) throw new Error('Tape.backward: already run');
    this.done = true;
    this.grads.set(y, dy);
    for (let i = this.steps.length - 1; i >= 0; i--) this.steps[i]!();
  }

  private needs(x: string): boolean {
    return this.live.has(x);
  }

  /** Register `out` as computed from `inputs`; `back(dy)` runs only if a gradient reaches it. */
  private record(inputs: readonly string[], out: string, back: (dy: string) => void): string {
    if (inputs.some((i) => this.live.has(i))) {
      this.live.add(out);
      this.steps.push(() => {
        const dy = this.grads.get(out);
        if (dy) back(dy);
      });
    }
    return out;
  }

  private accumulate(x: string, dx: string): void {
    if (!this.live.has(x)) return;
    const prev = this.grads.get(x);
    this.grads.set(x, prev ? this.g.op('Add', [prev, dx]) : dx);
  }

  private staticShape(w: string, what: string): readonly number[] {
    const s = this.shapes.get(w);
    if (!s) throw new Error(`Tape.${what}: ${w} is not a parameter of known shape`);
    return s;
  }

  /** Swap the last two axes of a rank-`rank` value. */
  private swapLast(x: string, rank: number): string {
    const perm = Array.from({ length: rank }, (_, i) => i);
    [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
    return this.g.op('Transpose', [x], { perm });
  }

  /** Sum a [..., n] value over every axis but the last: -> [n]. */
  private sumToLast(dy: string, n: number): string {
    return this.g.op('ReduceSum', [this.g.op('Reshape', [dy, this.g.ints('rows', [-1, n])]), this.g.ints('axis0', [0])], { keepdims: 0 });
  }

  /** x [..., K] · w [K, N] (+ b [N]), w a parameter (or a value derived from parameters) of static shape. */
  linear(x: string, w: string, b?: string): string {
    const [K, N] = this.staticShape(w, 'linear') as [number, number];
    const xw = this.g.op('MatMul', [x, w]);
    const y = b ? this.g.op('Add', [xw, b]) : xw;
    return this.record(b ? [x, w, b] : [x, w], y, (dy) => {
      if (this.needs(x)) this.accumulate(x, this.g.op('MatMul', [dy, this.g.op('Transpose', [w], { perm: [1, 0] })]));
      if (this.needs(w)) {
        // [..., K] -> [rows, K]; dw = xᵀ·dy [K, N]
        const rowsX = this.g.op('Reshape', [x, this.g.ints('rows', [-1, K])]);
        const rowsDy = this.g.op('Reshape', [dy, this.g.ints('rows', [-1, N])]);
        this.accumulate(w, this.g.op('Gemm', [rowsX, rowsDy], { transA: 1 }));
      }
      if (b && this.needs(b)) this.accumulate(b, this.sumToLast(dy, N));
    });
  }

  /** a · b of equal rank (batched over leading axes; a may be a constant broadcast over b's batch). */
  matmul(a: string, b: string, rank: number): string {
    const y = this.g.op('MatMul', [a, b]);
    return this.record([a, b], y, (dy) => {
      if (this.needs(a)) this.accumulate(a, this.g.op('MatMul', [dy, this.swapLast(b, rank)]));
      if (this.needs(b)) this.accumulate(b, this.g.op('MatMul', [this.swapLast(a, rank), dy]));
    });
  }

  /** a + b, same shapes. */
  add(a: string, b: string): string {
    const y = this.g.op('Add', [a, b]);
    return this.record([a, b], y, (dy) => {
      this.accumulate(a, dy);
      this.accumulate(b, dy);
    });
  }

  /** x + b where b broadcasts over x's leading axes `axes` (b's rank = x's rank − axes.length). */
  addBroadcast(x: string, b: string, axes: number[]): string {
    const y = this.g.op('Add', [x, b]);
    return this.record([x, b], y, (dy) => {
      this.accumulate(x, dy);
      if (this.needs(b)) this.accumulate(b, this.g.op('ReduceSum', [dy, this.g.ints('axes', axes)], { keepdims: 0 }));
    });
  }

  /** x + c with c a constant (an attention mask). */
  addConstant(x: string, c: string): string {
    const y = this.g.op('Add', [x, c]);
    return this.record([x], y, (dy) => this.accumulate(x, dy));
  }

  /** Layer norm over the last axis (width n) with gain and bias. */
  layerNorm(x: string, gamma: string, beta: string, n: number, eps: number): string {
    const [y, mean, rstd] = this.g.node('LayerNormalization', [x, gamma, beta], { axis: -1, epsilon: eps }, { outputs: 3, name: 'ln' });
    return this.record([x, gamma, beta], y!, (dy) => {
      const xhat = this.g.op('Mul', [this.g.op('Sub', [x, mean!]), rstd!]);
      if (this.needs(gamma)) this.accumulate(gamma, this.sumToLast(this.g.op('Mul', [dy, xhat]), n));
      if (this.needs(beta)) this.accumulate(beta, this.sumToLast(dy, n));
      if (this.needs(x)) {
        const gx = this.g.op('Mul', [dy, gamma]);
        const meanG = this.g.op('ReduceMean', [gx], { axes: [-1], keepdims: 1 });
        const meanGX = this.g.op('ReduceMean', [this.g.op('Mul', [gx, xhat])], { axes: [-1], keepdims: 1 });
        const inner = this.g.op('Sub', [this.g.op('Sub', [gx, meanG]), this.g.op('Mul', [xhat, meanGX])]);
        this.accumulate(x, this.g.op('Mul', [inner, rstd!]));
      }
    });
  }

  /** Softmax over the last axis. */
  softmax(x: string): string {
    const y = this.g.op('Softmax', [x], { axis: -1 });
    return this.record([x], y, (dy) => {
      const dot = this.g.op('ReduceSum', [this.g.op('Mul', [dy, y]), this.g.ints('last', [-1])], { keepdims: 1 });
      this.accumulate(x, this.g.op('Mul', [y, this.g.op('Sub', [dy, dot])]));
    });
  }

  /** x·σ(1.702·x), CLIP's quick_gelu. */
  quickGelu(x: string): string {
    return this.sigmoidGate(x, 1.702);
  }

  /** x·σ(x), taming's `nonlinearity` (swish, SiLU). */
  swish(x: string): string {
    return this.sigmoidGate(x, 1);
  }

  /** x·σ(k·x); dx = dy·(σ + k·x·σ·(1 − σ)). */
  private sigmoidGate(x: string, k: number): string {
    const kx = k === 1 ? x : this.g.op('Mul', [x, this.g.scalar('gate_k', k)]);
    const s = this.g.op('Sigmoid', [kx]);
    const y = this.g.op('Mul', [x, s]);
    return this.record([x], y, (dy) => {
      const oneMinus = this.g.op('Sub', [this.g.scalar('one', 1), s]);
      const slope = this.g.op('Add', [s, this.g.op('Mul', [this.g.op('Mul', [kx, s]), oneMinus])]);
      this.accumulate(x, this.g.op('Mul', [dy, slope]));
    });
  }

  /** x · c for a constant number c. */
  scale(x: string, c: number): string {
    const k = this.g.scalar('scale', c);
    const y = this.g.op('Mul', [x, k]);
    return this.record([x], y, (dy) => this.accumulate(x, this.g.op('Mul', [dy, k])));
  }

  /**
   * A 2-D convolution, NCHW, `w` a parameter (or a value derived from parameters) of static
   * shape [O, I, k, k], `b` [O]; `pads` [top, left, bottom, right] (asymmetric allowed, as
   * taming's downsample pads only right and bottom); `size` the input's static [H, W].
   *   dx = a conv of dy with w rotated 180° and in/out swapped (stride 1, pads ≤ k − 1), or
   *        ConvTranspose(dy, w) with the same strides and pads (output padding where the forward
   *        conv dropped rows);
   *   dw[o, c, i, j] = Σ dy[n, o, y, x] · xpad[n, c, s·y + i, s·x + j]: one GEMM of dy against
   *        the k² strided views of xpad;
   *   db = Σ dy over N, H, W.
   */
  conv(x: string, w: string, b: string | undefined, opts: { stride: number; pads: [number, number, number, number]; size: [number, number] }): string {
    const [O, I, k] = this.staticShape(w, 'conv') as [number, number, number, number];
    const { stride: s, pads } = opts;
    const [H, W] = opts.size;
    const outH = Math.floor((H + pads[0] + pads[2] - k) / s) + 1;
    const outW = Math.floor((W + pads[1] + pads[3] - k) / s) + 1;
    const attrs = { kernel_shape: [k, k], strides: [s, s], pads };
    const y = this.g.op('Conv', b ? [x, w, b] : [x, w], attrs);
    return this.record(b ? [x, w, b] : [x, w], y, (dy) => {
      if (this.needs(x)) {
        if (s === 1 && pads.every((p) => p <= k - 1)) {
          // A forward conv of dy with the kernel rotated 180° and in/out swapped (ORT's Conv is faster than its ConvTranspose).
          const flipped = this.g.op('Slice', [this.g.op('Transpose', [w], { perm: [1, 0, 2, 3] }), this.g.ints('starts', [-1, -1]), this.g.ints('ends', [-k - 1, -k - 1]), this.g.ints('axes', [2, 3]), this.g.ints('steps', [-1, -1])]);
          const back = [k - 1 - pads[0], k - 1 - pads[1], k - 1 - pads[2], k - 1 - pads[3]];
          this.accumulate(x, this.g.op('Conv', [dy, flipped], { kernel_shape: [k, k], pads: back }));
        } else {
          // ConvTranspose's output is s·(out − 1) + k − pads; the rows past it that the conv never read get output padding.
          const extra = [H - (s * (outH - 1) + k - pads[0] - pads[2]), W - (s * (outW - 1) + k - pads[1] - pads[3])];
          this.accumulate(x, this.g.op('ConvTranspose', [dy, w], { ...attrs, ...(extra[0] || extra[1] ? { output_padding: extra } : {}) }));
        }
      }
      if (this.needs(w)) {
        // One GEMM over every kernel offset: the k² strided views of the padded input, stacked,
        // against dy. (A conv with dy as the kernel computes the same, but ORT's im2col for a
        // kernel the size of the picture ran at a fifth of this speed.)
        const padded = pads.some((p) => p) ? this.g.op('Pad', [x, this.g.ints('pads', [0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]])]) : x;
        const xT = this.g.op('Transpose', [padded], { perm: [1, 0, 2, 3] }); // [N, I, Hp, Wp] -> [I, N, Hp, Wp]
        const views: string[] = [];
        for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) {
          views.push(this.g.op('Slice', [xT, this.g.ints('starts', [i, j]), this.g.ints('ends', [i + s * (outH - 1) + 1, j + s * (outW - 1) + 1]), this.g.ints('axes', [2, 3]), this.g.ints('steps', [s, s])]));
        }
        const stacked = views.length === 1 ? views[0]! : this.g.op('Concat', views, { axis: 0 }); // [k²·I, N, oh, ow], row (i·k + j)·I + c
        const cols = this.g.op('Reshape', [stacked, this.g.ints('cols', [k * k * I, -1])]);
        const dyRows = this.g.op('Reshape', [this.g.op('Transpose', [dy], { perm: [1, 0, 2, 3] }), this.g.ints('dyrows', [O, -1])]); // [O, N·oh·ow]
        const dw = this.g.op('Gemm', [dyRows, cols], { transB: 1 }); // [O, k²·I]
        // [O, k, k, I] -> [O, I, k, k]
        this.accumulate(w, this.g.op('Transpose', [this.g.op('Reshape', [dw, this.g.ints('okki', [O, k, k, I])])], { perm: [0, 3, 1, 2] }));
      }
      if (b && this.needs(b)) this.accumulate(b, this.g.op('ReduceSum', [dy, this.g.ints('axes', [0, 2, 3])], { keepdims: 0 }));
    });
  }

  /**
   * GroupNorm on NCHW x of static [C, H, W] with `groups` groups, then γ·x̂ + β per channel
   * (γ, β [C]). The normalisation is a layer norm over each group's C/G·H·W values.
   */
  groupNorm(x: string, gamma: string, beta: string, opts: { channels: number; size: [number, number]; groups: number; eps: number }): string {
    const { channels: C, groups: G } = opts;
    const n = (C / G) * opts.size[0] * opts.size[1];
    const grouped = this.reshape(x, [0, G, n]); // [N, C, H, W] -> [N, G, C/G·H·W]
    const ones = this.g.init('gn_ones', new Float32Array(n).fill(1), [n]);
    const zeros = this.g.init('gn_zeros', new Float32Array(n), [n]);
    const normed = this.reshape(this.layerNorm(grouped, ones, zeros, n, opts.eps), [0, C, opts.size[0], opts.size[1]]);
    return this.channelAffine(normed, gamma, beta, C);
  }

  /** x [N, C, H, W] · γ[c] + β[c]. */
  channelAffine(x: string, gamma: string, beta: string, C: number): string {
    const col = (v: string) => this.g.op('Reshape', [v, this.g.ints('col', [C, 1, 1])]);
    const y = this.g.op('Add', [this.g.op('Mul', [x, col(gamma)]), col(beta)]);
    return this.record([x, gamma, beta], y, (dy) => {
      const axes = this.g.ints('axes', [0, 2, 3]);
      if (this.needs(x)) this.accumulate(x, this.g.op('Mul', [dy, col(gamma)]));
      if (this.needs(gamma)) this.accumulate(gamma, this.g.op('ReduceSum', [this.g.op('Mul', [dy, x]), axes], { keepdims: 0 }));
      if (this.needs(beta)) this.accumulate(beta, this.g.op('ReduceSum', [dy, axes], { keepdims: 0 }));
    });
  }

  /** Nearest-neighbour ×2 of NCHW x of static spatial size [H, W]; its gradient sums each 2×2 block. */
  upsample2x(x: string, size: [number, number]): string {
    const [H, W] = size;
    // [N, C, H, W] -> [N, C, H, 1, W, 1] -> (broadcast) [N, C, H, 2, W, 2] -> [N, C, 2H, 2W]
    const spread = this.g.op('Expand', [this.g.op('Reshape', [x, this.g.ints('up', [0, 0, H, 1, W, 1])]), this.g.ints('two', [1, 1, 1, 2, 1, 2])]);
    const y = this.g.op('Reshape', [spread, this.g.ints('up2', [0, 0, 2 * H, 2 * W])]);
    return this.record([x], y, (dy) => {
      const blocks = this.g.op('Reshape', [dy, this.g.ints('blocks', [0, 0, H, 2, W, 2])]);
      this.accumulate(x, this.g.op('ReduceSum', [blocks, this.g.ints('axes', [3, 5])], { keepdims: 0 }));
    });
  }

  /** Reshape (ONNX rules: 0 copies a dimension, -1 infers one). */
  reshape(x: string, shape: number[]): string {
    const y = this.g.op('Reshape', [x, this.g.ints('shape', shape)]);
    return this.record([x], y, (dy) => this.accumulate(x, this.g.op('Reshape', [dy, this.g.op('Shape', [x])])));
  }

  /** Transpose; a value of known static shape (a parameter) keeps one (a kernel HWIO -> OIHW). */
  transpose(x: string, perm: number[]): string {
    const y = this.g.op('Transpose', [x], { perm });
    const shape = this.shapes.get(x);
    if (shape) this.shapes.set(y, perm.map((a) => shape[a]!));
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return this.record([x], y, (dy) => this.accumulate(x, this.g.op('Transpose', [dy], { perm: inverse })));
  }

  /** Split a parameter of static shape along `axis` into pieces of `sizes` (each then of known shape). */
  split(x: string, axis: number, sizes: number[]): string[] {
    const shape = this.staticShape(x, 'split');
    const parts = this.g.node('Split', [x, this.g.ints('sizes', sizes)], { axis }, { outputs: sizes.length, name: 'split' });
    parts.forEach((p, i) => this.shapes.set(p, shape.map((d, a) => (a === axis ? sizes[i]! : d))));
    // One backward step for all pieces: concatenate their gradients (zeros for a piece none reached).
    this.live.add(x);
    for (const p of parts) this.live.add(p);
    this.steps.push(() => {
      const pieces = parts.map((p, i) => this.grads.get(p) ?? this.g.init('zeros', new Float32Array(shape.reduce((a, d, ax) => a * (ax === axis ? sizes[i]! : d), 1)), shape.map((d, a) => (a === axis ? sizes[i]! : d))));
      this.accumulate(x, this.g.op('Concat', pieces, { axis }));
    });
    return parts;
  }

  /** Concatenate parameters of static shape along `axis`. */
  concat(xs: string[], axis: number): string {
    const shapes = xs.map((x) => this.staticShape(x, 'concat'));
    const sizes = shapes.map((s) => s[axis]!);
    const y = this.g.op('Concat', xs, { axis });
    this.shapes.set(y, shapes[0]!.map((d, a) => (a === axis ? sizes.reduce((p, q) => p + q, 0) : d)));
    return this.record(xs, y, (dy) => {
      const parts = this.g.node('Split', [dy, this.g.ints('sizes', sizes)], { axis }, { outputs: xs.length, name: 'split' });
      xs.forEach((x, i) => this.accumulate(x, parts[i]!));
    });
  }

  /** A parameter reshaped to another static shape (a class embedding [W] as a row [1, W]). */
  reshapeParam(x: string, shape: number[]): string {
    const y = this.reshape(x, shape);
    this.shapes.set(y, shape);
    return y;
  }
}
