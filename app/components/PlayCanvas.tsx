'use client';
/**
 * The game's drawing canvas: pointer events (mouse, touch and pen alike, with coalesced
 * points for smooth fast strokes), colours, brush sizes, an eraser, undo and clear. Strokes
 * are kept as data and redrawn on undo; the picture is white paper, 512×512 inside, scaled
 * to fit the screen. The parent reads it as PNG bytes with `toPng()`.
 */
import { forwardRef, useCallback, useEffect, useImperativeHandle, useRef, useState } from 'react';

/** The canvas's inner size: the server accepts at most 512×512. */
const SIZE = 512;
/** The server's byte limit for a drawing. */
const MAX_BYTES = 300 * 1024;
const COLOURS = [
  ['black', '#111111'], ['red', '#e02424'], ['orange', '#ff8a00'], ['yellow', '#f5d000'],
  ['green', '#1f9d3a'], ['blue', '#1e5ae0'], ['purple', '#8a2be2'], ['brown', '#7a4a1e'],
] as const;
const SIZES = [['thin', 4], ['medium', 10], ['thick', 22], ['huge', 44]] as const;

type Point = [number, number];
type Action = { kind: 'stroke'; colour: string; size: number; points: Point[] } | { kind: 'clear' };

export interface PlayCanvasHandle {
  /** The picture as PNG bytes (≤ 300 KB; a busy picture is sent at half size rather than refused). */
  toPng(): Promise<ArrayBuffer>;
  /** Something was drawn since the last `markClean`. */
  isDirty(): boolean;
  markClean(): void;
  /** Start a fresh page (a new round). */
  reset(): void;
}

function blobOf(canvas: HTMLCanvasElement): Promise<Blob> {
  return new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('the canvas could not be encoded'))), 'image/png'));
}

const PlayCanvas = forwardRef<PlayCanvasHandle, { disabled?: boolean; onDraw?: () => void }>(function PlayCanvas({ disabled = false, onDraw }, ref) {
  const canvasRef = useRef<HTMLCanvasElement | null>(null);
  const actions = useRef<Action[]>([]);
  const current = useRef<{ id: number; action: Extract<Action, { kind: 'stroke' }> } | null>(null);
  const dirty = useRef(false);
  const [colour, setColour] = useState<string>(COLOURS[0][1]);
  const [size, setSize] = useState<number>(SIZES[1][1]);
  const [eraser, setEraser] = useState(false);
  const [count, setCount] = useState(0); // re-render the undo button's state

  const ctx = () => canvasRef.current?.getContext('2d') ?? null;

  const paintStroke = (c: CanvasRenderingContext2D, a: Extract<Action, { kind: 'stroke' }>, from = 0) => {
    c.strokeStyle = a.colour;
    c.fillStyle = a.colour;
    c.lineWidth = a.size;
    c.lineCap = 'round';
    c.lineJoin = 'round';
    const pts = a.points;
    if (pts.length === 1) {
      c.beginPath();
      c.arc(pts[0]![0], pts[0]![1], a.size / 2, 0, 2 * Math.PI);
      c.fill();
      return;
    }
    c.beginPath();
    const start = Math.max(0, from - 1);
    c.moveTo(pts[start]![0], pts[start]![1]);
    for (let i = start + 1; i < pts.length; i++) c.lineTo(pts[i]![0], pts[i]![1]);
    c.stroke();
  };

  const redraw = useCallback(() => {
    const c = ctx();
    if (!c) return;
    c.fillStyle = '#ffffff';
    c.fillRect(0, 0, SIZE, SIZE);
    const list = actions.current;
    let first = 0;
    for (let i = list.length - 1; i >= 0; i--) if (list[i]!.kind === 'clear') { first = i + 1; break; }
    for (const a of list.slice(first)) if (a.kind === 'stroke') paintStroke(c, a);
  }, []);

  useEffect(() => redraw(), [redraw]);

  const changed = () => {
    dirty.current = true;
    setCount(actions.current.length);
    onDraw?.();
  };

  useImperativeHandle(ref, () => ({
    async toPng() {
      const canvas = canvasRef.current!;
      let blob = await blobOf(canvas);
      if (blob.size > MAX_BYTES) {
        const half = document.createElement('canvas');
        half.width = half.height = SIZE / 2;
        half.getContext('2d')!.drawImage(canvas, 0, 0, SIZE / 2, SIZE / 2);
        blob = await blobOf(half);
      }
      return blob.arrayBuffer();
    },
    isDirty: () => dirty.current,
    markClean: () => { dirty.current = false; },
    reset: () => {
      actions.current = [];
      current.current = null;
      dirty.current = false;
      setCount(0);
      redraw();
    },
  }), [redraw]);

  const at = (e: React.PointerEvent | PointerEvent): Point => {
    const r = canvasRef.current!.getBoundingClientRect();
    return [((e.clientX - r.left) / r.width) * SIZE, ((e.clientY - r.top) / r.height) * SIZE];
  };

  const down = (e: React.PointerEvent<HTMLCanvasElement>) => {
    if (disabled || (e.pointerType === 'mouse' && e.button !== 0)) return;
    e.preventDefault();
    e.currentTarget.setPointerCapture(e.pointerId);
    const action: Extract<Action, { kind: 'stroke' }> = { kind: 'stroke', colour: eraser ? '#ffffff' : colour, size: eraser ? Math.max(size, 22) : size, points: [at(e)] };
    actions.current.push(action);
    current.current = { id: e.pointerId, action };
    const c = ctx();
    if (c) paintStroke(c, action);
    changed();
  };
  const move = (e: React.PointerEvent<HTMLCanvasElement>) => {
    const cur = current.current;
    if (!cur || cur.id !== e.pointerId) return;
    e.preventDefault();
    const events = typeof e.nativeEvent.getCoalescedEvents === 'function' ? e.nativeEvent.getCoalescedEvents() : [];
    const from = cur.action.points.length;
    for (const ev of events.length ? events : [e.nativeEvent]) cur.action.points.push(at(ev));
    const c = ctx();
    if (c) paintStroke(c, cur.action, from);
    changed();
  };
  const up = (e: React.PointerEvent<HTMLCanvasElement>) => {
    if (current.current?.id === e.pointerId) current.current = null;
  };

  const undo = () => {
    actions.current.pop();
    current.current = null;
    redraw();
    changed();
  };
  const clear = () => {
    if (!actions.current.length || actions.current.at(-1)!.kind === 'clear') return;
    actions.current.push({ kind: 'clear' });
    redraw();
    changed();
  };

  return (
    <div className="play-canvas-wrap">
      <canvas ref={canvasRef} width={SIZE} height={SIZE} className={`play-canvas${disabled ? ' disabled' : ''}`} data-testid="play-canvas"
        aria-label="drawing canvas" onPointerDown={down} onPointerMove={move} onPointerUp={up} onPointerCancel={up} onLostPointerCapture={up} />
      <div className="play-tools" role="toolbar" aria-label="Drawing tools">
        {COLOURS.map(([name, hex]) => (
          <button key={name} className={`swatch${!eraser && colour === hex ? ' on' : ''}`} style={{ background: hex }} aria-label={name} title={name}
            aria-pressed={!eraser && colour === hex} onClick={() => { setColour(hex); setEraser(false); }} />
        ))}
        <span className="sep" />
        {SIZES.map(([name, px]) => (
          <button key={name} className={`brush${size === px ? ' on' : ''}`} aria-label={`${name} brush`} title={`${name} brush`} aria-pressed={size === px} onClick={() => setSize(px)}>
            <span style={{ width: Math.max(3, px / 2), height: Math.max(3, px / 2) }} />
          </button>
        ))}
        <span className="sep" />
        <button className={eraser ? 'on' : ''} aria-pressed={eraser} onClick={() => setEraser((x) => !x)}>Eraser</button>
        <button onClick={undo} disabled={disabled || count === 0}>Undo</button>
        <button onClick={clear} disabled={disabled}>Clear</button>
      </div>
    </div>
  );
});

export default PlayCanvas;
