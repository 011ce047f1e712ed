'use client';
/**
 * The caption page: drop, paste or pick an image; it is uploaded (POST /api/uploads?field=image)
 * and captioned over socket.io. Terms, notices and rounds stream in as CLIP ranks them; the
 * result is a ranked list with score bars, the terms that support each caption, copy buttons
 * and an alt-text export. Protocol types only.
 */
import { useEffect, useRef, useState } from 'react';
import { io, type Socket } from 'socket.io-client';
import type {
  CaptionInfo, CaptionResultView, CaptionRoundView, CaptionTermView, CaptionView, ClientToServer, PROTOCOL_VERSION, ProtocolError, ServerToClient,
} from '../../server/protocol';

const CLIENT_PROTOCOL: typeof PROTOCOL_VERSION = 1;
type CaptionSocket = Socket<ServerToClient, ClientToServer>;

type Run =
  | { phase: 'idle' }
  | { phase: 'uploading' }
  | { phase: 'queued'; position: number }
  | { phase: 'running' }
  | { phase: 'done'; result: CaptionResultView }
  | { phase: 'failed'; message: string }
  | { phase: 'cancelled' };

const pct = (s: number) => `${(s * 100).toFixed(1)}%`;

function ScoreBar({ score }: { score: number }) {
  return (
    <span className="capbar" aria-hidden="true"><span style={{ width: `${Math.max(1, Math.round(score * 100))}%` }} /></span>
  );
}

function CaptionRow({ c, onCopy, copied }: { c: CaptionView; onCopy: (t: string) => void; copied: boolean }) {
  return (
    <li data-testid="caption-item">
      <div className="caprow">
        <ScoreBar score={c.score} />
        <span className="capscore">{pct(c.score)}</span>
        <span className="captext" data-testid="caption-text">{c.text}</span>
        <button onClick={() => onCopy(c.text)} aria-label={`copy “${c.text}”`}>{copied ? 'Copied' : 'Copy'}</button>
      </div>
      <p className="muted small">
        {c.terms.length ? <>supported by {c.terms.map((t) => `${t.text} (${pct(t.score)})`).join(', ')}</> : 'no interrogated term'}
        {' · '}round {c.round}, {c.source === 'llm' ? 'LLM' : 'offline generator'}{c.truncated ? ' · over 77 tokens: CLIP read only the start' : ''}
      </p>
    </li>
  );
}

export default function CaptionStudio() {
  const [info, setInfo] = useState<CaptionInfo | null>(null);
  const [image, setImage] = useState<{ url: string; name: string } | null>(null);
  const [rounds, setRounds] = useState('');
  const [candidates, setCandidates] = useState('');
  const [useLlm, setUseLlm] = useState(true);
  const [run, setRun] = useState<Run>({ phase: 'idle' });
  const [terms, setTerms] = useState<CaptionTermView[]>([]);
  const [live, setLive] = useState<CaptionRoundView[]>([]);
  const [notices, setNotices] = useState<string[]>([]);
  const [error, setError] = useState<{ field?: string; message: string } | null>(null);
  const [copied, setCopied] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const socketRef = useRef<CaptionSocket | null>(null);
  const jobRef = useRef<string | null>(null);
  const requestRef = useRef<string | null>(null);
  const uploadRef = useRef<string | null>(null);

  useEffect(() => {
    const socket: CaptionSocket = io();
    socketRef.current = socket;
    socket.on('connect', () => {
      socket.emit('hello', { protocolVersion: CLIENT_PROTOCOL, client: 'studio-caption' });
      socket.emit('caption:info');
    });
    socket.on('caption:info', setInfo);
    const mine = (jobId: string, requestId?: string) => jobId === jobRef.current || (!!requestId && requestId === requestRef.current);
    socket.on('error', (e: ProtocolError) => {
      if (e.event !== 'caption:start' || !requestRef.current) return;
      requestRef.current = null;
      setError({ field: e.field, message: e.message.replace(/^caption:start: [\w.]+: /, '') });
      setRun({ phase: 'idle' });
    });
    socket.on('caption:queued', (p) => {
      if (!mine(p.jobId, p.requestId)) return;
      jobRef.current = p.jobId;
      setRun((r) => (r.phase === 'running' ? r : { phase: 'queued', position: p.position }));
    });
    socket.on('caption:started', (p) => { if (mine(p.jobId)) setRun({ phase: 'running' }); });
    socket.on('caption:terms', (p) => { if (mine(p.jobId)) setTerms(p.terms); });
    socket.on('caption:notice', (p) => { if (mine(p.jobId)) setNotices((n) => [...n, p.message]); });
    socket.on('caption:round', (p) => { if (mine(p.jobId)) setLive((l) => [...l, p.round]); });
    socket.on('caption:done', (p) => {
      if (!mine(p.jobId)) return;
      jobRef.current = null;
      setRun({ phase: 'done', result: p.result });
    });
    socket.on('caption:failed', (p) => {
      if (!mine(p.jobId, p.requestId)) return;
      jobRef.current = null;
      requestRef.current = null;
      if (p.error.field) setError({ field: p.error.field, message: p.error.message });
      setRun({ phase: 'failed', message: p.error.message });
    });
    socket.on('caption:cancelled', (p) => {
      if (!mine(p.jobId)) return;
      jobRef.current = null;
      setRun({ phase: 'cancelled' });
    });
    return () => { socket.close(); };
  }, []);

  const start = (upload: string) => {
    setError(null);
    setTerms([]);
    setLive([]);
    setNotices([]);
    const requestId = Math.random().toString(36).slice(2);
    requestRef.current = requestId;
    jobRef.current = null;
    setRun({ phase: 'queued', position: 0 });
    socketRef.current?.emit('caption:start', {
      upload, useLlm, requestId,
      ...(rounds.trim() ? { rounds: Number(rounds) } : {}), ...(candidates.trim() ? { candidates: Number(candidates) } : {}),
    });
  };

  const take = async (file: File | null | undefined) => {
    if (!file) return;
    if (!file.type.startsWith('image/')) return setError({ field: 'image', message: `${file.name || 'That file'} is not an image.` });
    setImage((old) => { if (old) URL.revokeObjectURL(old.url); return { url: URL.createObjectURL(file), name: file.name || 'pasted image' }; });
    setRun({ phase: 'uploading' });
    const res = await fetch(`/api/uploads?field=image&name=${encodeURIComponent(file.name || 'pasted image')}`, { method: 'POST', body: file });
    const body = (await res.json().catch(() => ({}))) as { id?: string; field?: string; error?: string };
    if (!res.ok || !body.id) {
      setError({ field: 'image', message: body.error ?? `Upload failed (HTTP ${res.status})` });
      setRun({ phase: 'idle' });
      return;
    }
    uploadRef.current = body.id;
    start(body.id);
  };

  useEffect(() => {
    const onPaste = (e: ClipboardEvent) => {
      const item = [...(e.clipboardData?.items ?? [])].find((i) => i.kind === 'file' && i.type.startsWith('image/'));
      if (item) { e.preventDefault(); void take(item.getAsFile()); }
    };
    window.addEventListener('paste', onPaste);
    return () => window.removeEventListener('paste', onPaste);
  });

  const copy = async (text: string) => {
    try { await navigator.clipboard.writeText(text); } catch { /* a denied clipboard still shows the text to select */ }
    setCopied(text);
    setTimeout(() => setCopied((c) => (c === text ? null : c)), 1500);
  };

  const busy = run.phase === 'uploading' || run.phase === 'queued' || run.phase === 'running';
  const result = run.phase === 'done' ? run.result : null;
  const best = result?.captions[0];
  const altText = best ? best.text.charAt(0).toUpperCase() + best.text.slice(1) + '.' : '';
  const exportAlt = () => {
    if (!best || !image) return;
    const html = `<img src="${image.name.replace(/"/g, '')}" alt="${altText.replace(/"/g, '&quot;')}">\n`;
    const url = URL.createObjectURL(new Blob([`${altText}\n\n${html}`], { type: 'text/plain' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = `${image.name.replace(/\.\w+$/, '') || 'image'}.alt.txt`;
    a.click();
    URL.revokeObjectURL(url);
  };
  const invalid = (field: string) => (error?.field === field ? { 'aria-invalid': true as const } : {});

  return (
    <>
      <h1>Caption</h1>
      <section className="card" aria-label="Image">
        <p className="muted small" data-testid="caption-info">
          {info ? <>CLIP: <strong>{info.model ? `${info.model.id}${info.model.demo ? ' (bundled demo: knows only its shapes, colours and doodles)' : ''}` : info.error}</strong>
            {' · '}LLM: <strong>{info.llm ? `${info.llm.model} at ${info.llm.host}` : 'none configured (the offline generator writes the candidates)'}</strong></> : 'Connecting…'}
        </p>
        <label
          className={`dropzone${dragging ? ' over' : ''}`} data-testid="dropzone"
          onDragOver={(e) => { e.preventDefault(); setDragging(true); }} onDragLeave={() => setDragging(false)}
          onDrop={(e) => { e.preventDefault(); setDragging(false); void take(e.dataTransfer.files[0]); }}
        >
          {image ? <img src={image.url} alt={altText || 'the image to caption'} className="pixelated" width={160} height={160} data-testid="caption-image" /> : null}
          <span>Drop an image here, paste one (Ctrl+V), or <u>choose a file</u>.</span>
          <input type="file" accept="image/png,image/jpeg,image/webp,image/gif" data-testid="caption-file" hidden disabled={busy}
            onChange={(e) => { const f = e.target.files?.[0]; e.target.value = ''; void take(f); }} />
        </label>
        <div className="row">
          <label>rounds <input type="number" className="narrow" data-testid="caption-rounds" min={info?.limits.rounds?.min} max={info?.limits.rounds?.max}
            placeholder={String(info?.limits.rounds?.default ?? '')} value={rounds} onChange={(e) => setRounds(e.target.value)} {...invalid('rounds')} /></label>
          <label>candidates <input type="number" className="narrow" data-testid="caption-candidates" min={info?.limits.candidates?.min} max={info?.limits.candidates?.max}
            placeholder={String(info?.limits.candidates?.default ?? '')} value={candidates} onChange={(e) => setCandidates(e.target.value)} {...invalid('candidates')} /></label>
          <label className="inline"><input type="checkbox" checked={useLlm} onChange={(e) => setUseLlm(e.target.checked)} disabled={!info?.llm} /> ask the LLM</label>
          <button disabled={busy || !uploadRef.current} onClick={() => uploadRef.current && start(uploadRef.current)}>Caption again</button>
          <button disabled={!jobRef.current || !busy} onClick={() => jobRef.current && socketRef.current?.emit('caption:cancel', { jobId: jobRef.current })}>Cancel</button>
        </div>
        {error ? <p className="bad" role="alert" data-testid="caption-error">{error.field ? <strong>{error.field}: </strong> : null}{error.message}</p> : null}
      </section>

      <section className="card" aria-label="Captions">
        <div data-testid="caption-status">
          {run.phase === 'idle' ? <p className="muted">Captions appear here.</p> : null}
          {run.phase === 'uploading' ? <p>Uploading…</p> : null}
          {run.phase === 'queued' ? <p>{run.position > 1 ? `Queued: ${run.position - 1} ahead…` : 'Starting…'}</p> : null}
          {run.phase === 'running' ? <p>Reading the image and ranking captions…</p> : null}
          {run.phase === 'failed' ? <p className="bad">Failed: {run.message}</p> : null}
          {run.phase === 'cancelled' ? <p className="warn" data-testid="caption-cancelled">Cancelled.</p> : null}
        </div>
        {notices.length ? <ul className="problems warn small" data-testid="caption-notices">{notices.map((n, i) => <li key={i}>{n}</li>)}</ul> : null}
        {terms.length ? (
          <p className="small" data-testid="caption-terms">CLIP reads: {terms.filter((t) => t.category !== 'kind').map((t) => `${t.text} ${pct(t.score)}`).join(' · ')}</p>
        ) : null}
        {live.length ? (
          <ol className="rounds" data-testid="caption-rounds-live">
            {live.map((r) => (
              <li key={r.round} data-testid="caption-round">
                <strong>Round {r.round}</strong> ({r.kind === 'propose' ? 'proposed' : 'refined'} by {r.source === 'llm' ? 'the LLM' : 'the offline generator'}, {r.added.length} new{r.round > 0 ? (r.improved ? ', better' : ', no better') : ''}):
                {' '}best “{r.top[0]?.text}” {r.top[0] ? pct(r.top[0].score) : ''}
              </li>
            ))}
          </ol>
        ) : null}
        {result ? (
          <>
            <p className="small">
              {result.captions.length} candidates from {result.source === 'llm' ? 'the LLM' : 'the offline generator'}, {result.rounds.length} round{result.rounds.length === 1 ? '' : 's'}
              {' '}(stopped: {result.stopped}){result.usage.tokens ? `, ${result.usage.tokens} LLM tokens` : ''}.
            </p>
            <ol className="captions" data-testid="caption-list">
              {result.captions.slice(0, 12).map((c) => <CaptionRow key={c.text} c={c} onCopy={(t) => void copy(t)} copied={copied === c.text} />)}
            </ol>
            <p className="row">
              <span className="small">Alt text: <code data-testid="alt-text">{altText}</code></span>
              <button onClick={() => void copy(altText)}>{copied === altText ? 'Copied' : 'Copy alt text'}</button>
              <button onClick={exportAlt}>Export alt text</button>
            </p>
          </>
        ) : null}
      </section>
    </>
  );
}
