'use client';
/**
 * The generate studio: a prompt (with the `text:weight | text:weight` syntax), optional image
 * prompts and init image (uploaded first, then referred to by id), the advanced parameters,
 * Generate/Cancel, a live preview that updates in place with a progress bar and ETA, the final
 * image with downloads and its progress animation, and the gallery. Protocol types only.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { io, type Socket } from 'socket.io-client';
import type {
  ClientToServer, GalleryItem, GenerateInfo, GenerateParamsInput, GenerateProgressData, PROTOCOL_VERSION, ProtocolError, ServerToClient,
} from '../../server/protocol';
import GalleryPanel from './GalleryPanel';

const CLIENT_PROTOCOL: typeof PROTOCOL_VERSION = 1;
type StudioSocket = Socket<ServerToClient, ClientToServer>;

const ADVANCED = [
  { key: 'size', label: 'size (px)', help: "a multiple of the VQGAN's factor" },
  { key: 'steps', label: 'steps', help: '' },
  { key: 'lr', label: 'learning rate', help: '', step: 'any' },
  { key: 'seed', label: 'seed', help: 'empty: random' },
  { key: 'cutn', label: 'cutouts', help: 'per step' },
  { key: 'cutPow', label: 'cut power', help: '', step: 'any' },
  { key: 'previewEvery', label: 'preview every', help: 'steps' },
] as const;
type NumKey = (typeof ADVANCED)[number]['key'] | 'initStrength';

interface Upload { id: string; name: string; url: string; weight: string }

type Run =
  | { phase: 'idle' }
  | { phase: 'queued'; position: number; jobId?: string }
  | { phase: 'running'; jobId: string; step: number; total: number; loss?: number; etaMs?: number }
  | { phase: 'done'; item: GalleryItem }
  | { phase: 'failed'; message: string }
  | { phase: 'cancelled' };

function eta(ms: number | undefined): string {
  if (ms === undefined) return '';
  const s = Math.ceil(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

export default function GenerateStudio() {
  const [info, setInfo] = useState<GenerateInfo | null>(null);
  const [prompt, setPrompt] = useState('');
  const [nums, setNums] = useState<Partial<Record<NumKey, string>>>({});
  const [augment, setAugment] = useState(true);
  const [start, setStart] = useState<'' | 'smooth' | 'codes'>('');
  const [init, setInit] = useState<Upload | null>(null);
  const [imagePrompts, setImagePrompts] = useState<Upload[]>([]);
  const [run, setRun] = useState<Run>({ phase: 'idle' });
  const [preview, setPreview] = useState<{ url: string; step: number } | null>(null);
  const [previews, setPreviews] = useState(0);
  const [error, setError] = useState<{ field?: string; message: string } | null>(null);
  const [gallery, setGallery] = useState<GalleryItem[] | null>(null);
  const [galleryError, setGalleryError] = useState<string | null>(null);
  const socketRef = useRef<StudioSocket | null>(null);
  const jobRef = useRef<string | null>(null);
  const requestRef = useRef<string | null>(null);

  const loadGallery = useCallback(async () => {
    try {
      const res = await fetch('/api/gallery', { cache: 'no-store' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      setGallery(((await res.json()) as { items: GalleryItem[] }).items);
      setGalleryError(null);
    } catch (err) {
      setGalleryError((err as Error).message);
    }
  }, []);

  useEffect(() => {
    void fetch('/api/generate/info', { cache: 'no-store' }).then(async (r) => setInfo((await r.json()) as GenerateInfo)).catch(() => {});
    void loadGallery();
    const socket: StudioSocket = io();
    socketRef.current = socket;
    socket.on('connect', () => socket.emit('hello', { protocolVersion: CLIENT_PROTOCOL, client: 'studio-generate' }));
    const mine = (jobId: string, requestId?: string) => jobId === jobRef.current || (!!requestId && requestId === requestRef.current);
    socket.on('error', (e: ProtocolError) => {
      if (e.event !== 'job:start' || !requestRef.current) return;
      requestRef.current = null;
      setError({ field: e.field.replace(/^params\./, ''), message: e.message.replace(/^job:start: params\.[\w.]+: /, '') });
      setRun({ phase: 'idle' });
    });
    socket.on('job:queued', (p) => {
      if (!mine(p.jobId, p.requestId)) return;
      jobRef.current = p.jobId;
      setRun((r) => (r.phase === 'running' ? r : { phase: 'queued', position: p.position, jobId: p.jobId }));
    });
    socket.on('job:started', (p) => {
      if (mine(p.jobId)) setRun({ phase: 'running', jobId: p.jobId, step: 0, total: 1 });
    });
    socket.on('job:progress', (p) => {
      if (!mine(p.jobId)) return;
      const d = p.data as GenerateProgressData;
      setRun({ phase: 'running', jobId: p.jobId, step: d.step, total: d.total, loss: d.loss, etaMs: d.etaMs });
      if (d.preview) {
        const url = URL.createObjectURL(new Blob([d.preview as BlobPart], { type: 'image/png' }));
        setPreview((old) => {
          if (old) URL.revokeObjectURL(old.url);
          return { url, step: d.step };
        });
        setPreviews((n) => n + 1);
      }
    });
    socket.on('job:done', (p) => {
      if (!mine(p.jobId)) return;
      jobRef.current = null;
      const item = p.result as GalleryItem;
      setRun({ phase: 'done', item });
      setGallery((g) => [item, ...(g ?? []).filter((x) => x.id !== item.id)]);
    });
    socket.on('job:failed', (p) => {
      if (!mine(p.jobId, p.requestId)) return;
      jobRef.current = null;
      requestRef.current = null;
      if (p.error.field) setError({ field: p.error.field, message: p.error.message });
      setRun({ phase: 'failed', message: p.error.message });
    });
    socket.on('job:cancelled', (p) => {
      if (!mine(p.jobId)) return;
      jobRef.current = null;
      setRun({ phase: 'cancelled' });
    });
    return () => {
      socket.close();
    };
  }, [loadGallery]);

  const upload = async (file: File, field: string): Promise<Upload | null> => {
    const res = await fetch(`/api/uploads?field=${encodeURIComponent(field)}&name=${encodeURIComponent(file.name)}`, { method: 'POST', body: file });
    const body = (await res.json()) as { id?: string; field?: string; error?: string };
    if (!res.ok || !body.id) {
      setError({ field: body.field ?? field, message: body.error ?? `Upload failed (HTTP ${res.status})` });
      return null;
    }
    setError(null);
    return { id: body.id, name: file.name, url: URL.createObjectURL(file), weight: '1' };
  };

  const generate = () => {
    setError(null);
    const params: Record<string, unknown> = { prompt, augment, ...(start ? { start } : {}) };
    for (const [k, v] of Object.entries(nums)) if (v !== undefined && v.trim() !== '') params[k] = Number(v);
    if (init) params.initImage = init.id;
    else delete params.initStrength;
    params.imagePrompts = imagePrompts.map((p) => ({ upload: p.id, weight: Number(p.weight) }));
    const requestId = Math.random().toString(36).slice(2);
    requestRef.current = requestId;
    jobRef.current = null;
    setPreviews(0);
    setRun({ phase: 'queued', position: 0 });
    socketRef.current?.emit('job:start', { kind: 'generate', params: params as GenerateParamsInput, requestId });
  };
  const cancel = () => {
    if (jobRef.current) socketRef.current?.emit('job:cancel', { jobId: jobRef.current });
  };

  const useRecipe = (item: GalleryItem) => {
    const r = item.recipe as Record<string, unknown>;
    setPrompt(String(r.prompt ?? item.prompt));
    const next: Partial<Record<NumKey, string>> = {};
    for (const k of ['size', 'steps', 'lr', 'seed', 'cutn', 'cutPow', 'previewEvery', 'initStrength'] as const) if (typeof r[k] === 'number') next[k] = String(r[k]);
    setNums(next);
    setAugment(r.augment !== false);
    setStart(r.start === 'codes' || r.start === 'smooth' ? r.start : '');
    setInit(typeof r.initImage === 'string' ? { id: r.initImage, name: 'init image (from the recipe)', url: '', weight: '1' } : null);
    const ips = Array.isArray(r.imagePrompts) ? (r.imagePrompts as { upload: string; weight: number }[]) : [];
    setImagePrompts(ips.map((p, i) => ({ id: p.upload, name: `image prompt ${i + 1} (from the recipe)`, url: '', weight: String(p.weight) })));
    setError(null);
    window.scrollTo({ top: 0, behavior: 'smooth' });
  };
  const remove = async (item: GalleryItem) => {
    const res = await fetch(`/api/gallery/${item.id}`, { method: 'DELETE' });
    if (res.ok) setGallery((g) => (g ?? []).filter((x) => x.id !== item.id));
  };

  const busy = run.phase === 'queued' || run.phase === 'running';
  const invalid = (field: string) => (error?.field === field ? { 'aria-invalid': true as const } : {});
  const num = (k: NumKey) => ({
    value: nums[k] ?? '', onChange: (e: React.ChangeEvent<HTMLInputElement>) => setNums((n) => ({ ...n, [k]: e.target.value })),
    placeholder: info?.defaults[k] !== undefined ? String(info.defaults[k]) : k === 'seed' ? 'random' : '', ...invalid(k),
  });
  const m = info?.models;

  return (
    <>
      <h1>Generate</h1>
      <section className="card" aria-label="Prompt">
        <p className="muted small" data-testid="active-model">
          {m?.clip && m.vqgan ? <>Model: <strong>{m.clip.id}</strong> + <strong>{m.vqgan.id}</strong>{m.clip.bundled ? ' (bundled demo)' : ''}</> : m?.error ? <span className="bad">{m.error}</span> : 'Model: …'}
          {' · '}Backend: <strong data-testid="generate-backend">{info?.backend ?? '…'}</strong>
        </p>
        {info?.vocabulary ? (
          <p className="small" data-testid="vocabulary">
            The demo model knows these words — shapes: {info.vocabulary.shapes.join(', ')}; colours: {info.vocabulary.colors.join(', ')}; backgrounds: {info.vocabulary.backgroundColors.join(', ')}.
            Try “a red circle on a blue background”.
          </p>
        ) : null}
        <label htmlFor="prompt">Prompt</label>
        <textarea id="prompt" data-testid="prompt" rows={2} value={prompt} maxLength={info?.promptMaxLength ?? 1000} {...invalid('prompt')}
          onChange={(e) => setPrompt(e.target.value)} placeholder="a red circle on a blue background"
          onKeyDown={(e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !busy) generate(); }} />
        <p className="muted small">Separate prompts with <code>|</code> and weight them with <code>:weight</code>, e.g. <code>a red circle:1 | a blue square:-0.5</code>; a negative weight pushes the image away. For a colon inside text, put a space after it.</p>

        <div className="row">
          <label>Init image <input type="file" accept="image/png,image/jpeg,image/webp,image/gif" data-testid="init-image"
            onChange={async (e) => { const f = e.target.files?.[0]; e.target.value = ''; if (f) setInit(await upload(f, 'initImage')); }} /></label>
          {init ? <span className="chip">{init.url ? <img src={init.url} alt="" width={24} height={24} /> : null}{init.name}
            <label> strength <input type="number" min={0} max={1} step="any" className="narrow" {...num('initStrength')} /></label>
            <button onClick={() => setInit(null)} aria-label="remove init image">×</button></span> : null}
        </div>
        <div className="row">
          <label>Image prompt <input type="file" accept="image/png,image/jpeg,image/webp,image/gif" data-testid="image-prompt" disabled={imagePrompts.length >= 4}
            onChange={async (e) => { const f = e.target.files?.[0]; e.target.value = ''; if (!f) return; const u = await upload(f, `imagePrompts.${imagePrompts.length}`); if (u) setImagePrompts((l) => [...l, u]); }} /></label>
          {imagePrompts.map((p, i) => (
            <span className="chip" key={p.id + i}>{p.url ? <img src={p.url} alt="" width={24} height={24} /> : null}{p.name}
              <label> weight <input type="number" step="any" className="narrow" value={p.weight} {...invalid(`imagePrompts.${i}.weight`)}
                onChange={(e) => setImagePrompts((l) => l.map((x, j) => (j === i ? { ...x, weight: e.target.value } : x)))} /></label>
              <button onClick={() => setImagePrompts((l) => l.filter((_, j) => j !== i))} aria-label="remove image prompt">×</button></span>
          ))}
        </div>

        <details>
          <summary>Advanced</summary>
          <div className="grid">
            {ADVANCED.map((f) => (
              <label key={f.key}>{f.label}
                <input type="number" data-testid={`param-${f.key}`} step={'step' in f ? f.step : 1}
                  min={info?.limits[f.key]?.min} max={info?.limits[f.key]?.max} {...num(f.key)} />
                {f.help ? <span className="muted small">{f.help}</span> : null}
              </label>
            ))}
            <label>random start
              <select value={start} onChange={(e) => setStart(e.target.value as typeof start)} data-testid="param-start">
                <option value="">default (smooth)</option>
                <option value="smooth">smooth colour field</option>
                <option value="codes">random codes (notebooks)</option>
              </select>
            </label>
            <label><input type="checkbox" checked={augment} onChange={(e) => setAugment(e.target.checked)} /> augmentations (flips, shifts, noise)</label>
          </div>
        </details>

        {error ? <p className="bad" data-testid="form-error" role="alert">{error.field ? <strong>{error.field}: </strong> : null}{error.message}</p> : null}
        <p>
          <button onClick={generate} disabled={busy}>Generate</button>{' '}
          <button onClick={cancel} disabled={!busy}>Cancel</button>
        </p>
      </section>

      <section className="card" aria-label="Result">
        <div className="result">
          <div>
            {run.phase === 'done' ? (
              <img className="pixelated big" data-testid="result" src={run.item.imageUrl} alt={run.item.prompt} />
            ) : preview ? (
              <img className="pixelated big" data-testid="preview" data-step={preview.step} data-updates={previews} src={preview.url} alt="live preview" />
            ) : <div className="placeholder big muted">The preview appears here.</div>}
          </div>
          <div data-testid="status" className="status">
            {run.phase === 'idle' ? <p className="muted">Write a prompt and press Generate.</p> : null}
            {run.phase === 'queued' ? <p>{run.position > 1 ? `Queued: ${run.position - 1} job${run.position > 2 ? 's' : ''} ahead…` : 'Starting…'}</p> : null}
            {run.phase === 'running' ? (
              <>
                <progress data-testid="progress" max={run.total} value={run.step} />
                <p>step {run.step}/{run.total}{run.loss !== undefined ? ` · loss ${run.loss.toFixed(4)}` : ''}{run.etaMs !== undefined ? ` · ETA ${eta(run.etaMs)}` : ''}</p>
              </>
            ) : null}
            {run.phase === 'done' ? (
              <>
                <p className="ok">Done: {String(run.item.recipe.steps)} steps, seed {run.item.seed}.</p>
                <p><a href={run.item.imageUrl} download={`clip-studio-${run.item.seed}.png`}>Download PNG</a>
                  {run.item.animationUrl ? <> · <a href={run.item.animationUrl} download={`clip-studio-${run.item.seed}.webp`}>Download animation</a></> : null}</p>
                {run.item.animationUrl ? <img className="pixelated" src={run.item.animationUrl} alt="how it got there" width={128} height={128} /> : null}
              </>
            ) : null}
            {run.phase === 'failed' ? <p className="bad">Failed: {run.message}</p> : null}
            {run.phase === 'cancelled' ? <p className="warn" data-testid="cancelled">Cancelled.</p> : null}
          </div>
        </div>
      </section>

      <GalleryPanel items={gallery} error={galleryError} onUse={useRecipe} onDelete={(item) => void remove(item)} />
    </>
  );
}
