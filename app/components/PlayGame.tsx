'use client';
/**
 * Play: create or join a room (the link carries the code), the lobby with the host's
 * settings, the round (prompt, clock, canvas, CLIP's live guesses — or, for spectators, every
 * player's picture and guesses), the reveal, the leaderboard and the podium. The server owns
 * the clock and the rules; this page sends the canvas at most once a second while drawing
 * and the final picture at the bell, and keeps the seat token in localStorage so a reload
 * (or a dropped connection) gets the same seat back. Protocol types only.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { io, type Socket } from 'socket.io-client';
import type {
  ClientToServer, PlayError, PlayGuesses, PlayHallOfFame, PlayJoined, PlayLeaderboardRow, PlayPodium, PlayReveal, PlayRoomView, ServerToClient,
} from '../../server/protocol';
import PlayCanvas, { type PlayCanvasHandle } from './PlayCanvas';
import { GuessBars, HallOfFame, Leaderboard, Podium, Reveal } from './PlayResults';

type PlaySocket = Socket<ServerToClient, ClientToServer>;
interface Me { code: string; seat: string; token: string; role: 'player' | 'spectator' }

const NICK_KEY = 'clip-studio:play:nickname';
const seatKey = (code: string) => `clip-studio:play:seat:${code}`;
/** How often a changed canvas is sent for live guesses (the server allows once a second). */
const LIVE_EVERY_MS = 1000;
const ROUND_CHOICES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
const SECOND_CHOICES = [10, 15, 20, 30, 45, 60, 90, 120, 180, 300];

function stored<T>(key: string): T | null {
  try {
    const raw = localStorage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : null;
  } catch {
    return null;
  }
}

export default function PlayGame() {
  const [connected, setConnected] = useState(false);
  const [nickname, setNickname] = useState('');
  const [codeInput, setCodeInput] = useState('');
  const [spectator, setSpectator] = useState(false);
  const [me, setMe] = useState<Me | null>(null);
  const [view, setView] = useState<PlayRoomView | null>(null);
  const [deadline, setDeadline] = useState<number | null>(null);
  const [now, setNow] = useState(() => Date.now());
  const [myGuesses, setMyGuesses] = useState<PlayGuesses | null>(null);
  const [watching, setWatching] = useState<Record<string, PlayGuesses>>({});
  const [reveal, setReveal] = useState<PlayReveal | null>(null);
  const [podium, setPodium] = useState<PlayPodium | null>(null);
  const [hall, setHall] = useState<PlayHallOfFame | null>(null);
  const [error, setError] = useState<PlayError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const socketRef = useRef<PlaySocket | null>(null);
  const canvasRef = useRef<PlayCanvasHandle | null>(null);
  const meRef = useRef<Me | null>(null);
  const viewRef = useRef<PlayRoomView | null>(null);
  const roundRef = useRef(0);
  /** The code of the last join sent, to forget its stored seat if the room is gone. */
  const joiningRef = useRef<string | null>(null);

  const emitDrawing = useCallback(async (event: 'play:draw' | 'play:submit', round: number) => {
    const canvas = canvasRef.current;
    if (!canvas) return;
    if (event === 'play:draw') canvas.markClean();
    const png = await canvas.toPng();
    socketRef.current?.emit(event, { round, png });
  }, []);

  useEffect(() => {
    setNickname(stored<string>(NICK_KEY) ?? '');
    const room = new URLSearchParams(window.location.search).get('room')?.toUpperCase() ?? '';
    setCodeInput(room);
    const socket: PlaySocket = io({ transports: ['websocket', 'polling'] });
    socketRef.current = socket;
    socket.on('connect', () => {
      setConnected(true);
      // Back into our seat after a reload or a dropped connection.
      const code = meRef.current?.code ?? room;
      const seat = code ? stored<{ token: string; nickname: string }>(seatKey(code)) : null;
      if (code && seat) {
        joiningRef.current = code;
        socket.emit('play:join', { code, nickname: seat.nickname, token: seat.token });
      }
    });
    socket.on('disconnect', () => setConnected(false));
    socket.on('play:joined', (j: PlayJoined) => {
      const mine: Me = { code: j.code, seat: j.seat, token: j.token, role: j.role };
      meRef.current = mine;
      setMe(mine);
      const nick = j.room.seats.find((s) => s.seat === j.seat)?.nickname ?? '';
      localStorage.setItem(seatKey(j.code), JSON.stringify({ token: j.token, nickname: nick }));
      localStorage.setItem(NICK_KEY, JSON.stringify(nick));
      window.history.replaceState(null, '', `/play?room=${j.code}`);
      setError(null);
      setNotice(null);
    });
    socket.on('play:left', ({ reason }) => {
      if (meRef.current) localStorage.removeItem(seatKey(meRef.current.code));
      meRef.current = null;
      viewRef.current = null;
      setMe(null);
      setView(null);
      setReveal(null);
      setPodium(null);
      setNotice(reason);
      window.history.replaceState(null, '', '/play');
    });
    socket.on('play:state', (v: PlayRoomView) => {
      const prev = viewRef.current;
      viewRef.current = v;
      setView(v);
      setDeadline(v.remainingMs !== null ? Date.now() + v.remainingMs : null);
      if (v.phase === 'drawing' && v.round !== roundRef.current) {
        // A new round: a fresh page, fresh guesses.
        roundRef.current = v.round;
        canvasRef.current?.reset();
        setMyGuesses(null);
        setWatching({});
        setReveal(null);
        setPodium(null);
      }
      if (v.phase === 'lobby' && prev?.phase !== 'lobby') { setReveal(null); setPodium(null); }
    });
    socket.on('play:bell', ({ round }) => {
      if (meRef.current?.role === 'player') void emitDrawing('play:submit', round);
    });
    socket.on('play:guesses', (g: PlayGuesses) => {
      if (g.seat === meRef.current?.seat) setMyGuesses(g);
      else setWatching((w) => ({ ...w, [g.seat]: g }));
    });
    socket.on('play:reveal', (r: PlayReveal) => setReveal(r));
    socket.on('play:podium', (p: PlayPodium) => {
      setPodium(p);
      socket.emit('play:hall-of-fame:get', {});
    });
    socket.on('play:hall-of-fame', (h: PlayHallOfFame) => setHall(h));
    socket.on('play:error', (e: PlayError) => {
      // A live canvas racing the bell, or the once-a-second limit: nothing the player must act on.
      if (e.event === 'play:draw' && (e.code === 'LATE' || e.code === 'RATE_LIMITED')) return;
      if (e.event === 'play:join' && e.code === 'ROOM_NOT_FOUND' && joiningRef.current) localStorage.removeItem(seatKey(joiningRef.current));
      setError(e);
    });
    return () => {
      socket.close();
    };
  }, [emitDrawing]);

  // The clock shown is the server's: remainingMs when the state came, counted down here.
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, []);

  // While drawing, send the canvas at most once a second when it changed.
  useEffect(() => {
    if (view?.phase !== 'drawing' || me?.role !== 'player') return;
    const round = view.round;
    const t = setInterval(() => {
      if (canvasRef.current?.isDirty()) void emitDrawing('play:draw', round);
    }, LIVE_EVERY_MS);
    return () => clearInterval(t);
  }, [view?.phase, view?.round, me?.role, emitDrawing]);

  const create = () => {
    setError(null);
    socketRef.current?.emit('play:create', { nickname });
  };
  const join = () => {
    setError(null);
    const code = codeInput.trim().toUpperCase();
    const seat = stored<{ token: string; nickname: string }>(seatKey(code));
    joiningRef.current = code;
    socketRef.current?.emit('play:join', { code, nickname, spectator, ...(seat ? { token: seat.token } : {}) });
  };
  const leave = () => socketRef.current?.emit('play:leave');
  const settings = (patch: { rounds?: number; seconds?: number; pack?: string }) => socketRef.current?.emit('play:settings', patch);
  const start = () => socketRef.current?.emit('play:start');
  const skip = () => socketRef.current?.emit('play:next');

  const mySeat = view?.seats.find((s) => s.seat === me?.seat);
  const isHost = !!mySeat?.host;
  const remaining = deadline !== null ? Math.max(0, Math.ceil((deadline - now) / 1000)) : null;
  const shareUrl = me && typeof window !== 'undefined' ? `${window.location.origin}/play?room=${me.code}` : '';
  const inRound = view && (view.phase === 'drawing' || view.phase === 'collecting' || view.phase === 'judging');
  const errorBox = error ? (
    <p className="bad" role="alert" data-testid="play-error">{error.field ? <strong>{error.field}: </strong> : null}{error.message}</p>
  ) : null;

  if (!me || !view) {
    return (
      <>
        <h1>Play</h1>
        <section className="card" aria-label="Join">
          <p>Everyone draws the same prompt against the clock; CLIP guesses live while you draw and judges at the bell.</p>
          <label htmlFor="nickname">Nickname</label>
          <input id="nickname" data-testid="nickname" className="text" maxLength={20} value={nickname} autoComplete="nickname"
            aria-invalid={error?.field === 'nickname' || undefined} onChange={(e) => setNickname(e.target.value)} placeholder="1–20 characters" />
          <div className="row">
            <button onClick={create} disabled={!connected} data-testid="create-room">Create a room</button>
            <span className="muted">or</span>
            <input className="text code" data-testid="room-code-input" aria-label="Room code" value={codeInput} maxLength={10}
              aria-invalid={error?.field === 'code' || undefined} onChange={(e) => setCodeInput(e.target.value)} placeholder="room code" />
            <label className="inline"><input type="checkbox" checked={spectator} onChange={(e) => setSpectator(e.target.checked)} data-testid="spectator" /> watch</label>
            <button onClick={join} disabled={!connected || !codeInput.trim()} data-testid="join-room">Join</button>
          </div>
          {!connected ? <p className="muted small">Connecting…</p> : null}
          {notice ? <p className="muted" data-testid="notice">{notice}</p> : null}
          {errorBox}
        </section>
      </>
    );
  }

  return (
    <>
      <h1>Play</h1>
      <section className="card play-head" aria-label="Room">
        <div>
          Room <strong data-testid="room-code">{me.code}</strong>{' '}
          <span className="muted small">· share <a href={shareUrl} data-testid="share-link">{shareUrl}</a></span>{' '}
          <button className="small" onClick={() => { void navigator.clipboard?.writeText(shareUrl).then(() => setCopied(true)); }}>{copied ? 'Copied' : 'Copy link'}</button>
        </div>
        <div className="row">
          <span className="muted small" data-testid="my-role">{me.role === 'spectator' ? 'watching' : isHost ? 'host' : 'player'}{connected ? '' : ' · reconnecting…'}</span>
          <button onClick={leave}>Leave</button>
        </div>
      </section>
      {errorBox}

      <div className="play-layout">
        <div className="play-main">
          {view.phase === 'lobby' ? (
            <section className="card" aria-label="Lobby" data-testid="lobby">
              <h2>Lobby</h2>
              {isHost ? (
                <div className="row">
                  <label>Rounds <select data-testid="setting-rounds" value={view.settings.rounds} onChange={(e) => settings({ rounds: Number(e.target.value) })}>
                    {ROUND_CHOICES.map((n) => <option key={n} value={n}>{n}</option>)}
                  </select></label>
                  <label>Seconds per round <select data-testid="setting-seconds" value={view.settings.seconds} onChange={(e) => settings({ seconds: Number(e.target.value) })}>
                    {[...new Set([...SECOND_CHOICES, view.settings.seconds])].sort((a, b) => a - b).map((n) => <option key={n} value={n}>{n}</option>)}
                  </select></label>
                  <label>Prompts <select value={view.settings.pack} data-testid="setting-pack" onChange={(e) => settings({ pack: e.target.value })}>
                    {view.packs.map((p) => <option key={p.id} value={p.id}>{p.title} ({p.prompts})</option>)}
                  </select></label>
                  <button onClick={start} data-testid="start">Start</button>
                </div>
              ) : (
                <p className="muted">Waiting for the host to start: {view.settings.rounds} round{view.settings.rounds === 1 ? '' : 's'} of {view.settings.seconds} s, {view.packs.find((p) => p.id === view.settings.pack)?.title}.</p>
              )}
            </section>
          ) : null}

          {inRound ? (
            <section className="card" aria-label="Round">
              <div className="round-head">
                <span>Round {view.round}/{view.settings.rounds} · draw <strong className="prompt" data-testid="prompt">{view.prompt}</strong></span>
                <span className={`timer${remaining !== null && remaining <= 5 && view.phase === 'drawing' ? ' warn' : ''}`} data-testid="timer">
                  {view.phase === 'drawing' ? `${remaining ?? ''} s` : view.phase === 'collecting' ? 'Time! Collecting drawings…' : 'CLIP is judging…'}
                </span>
              </div>
              {me.role === 'player' ? (
                <div className="draw-area">
                  <PlayCanvas ref={canvasRef} disabled={view.phase !== 'drawing'} />
                  <div className="live">
                    <h3>CLIP thinks it is…</h3>
                    <GuessBars guesses={myGuesses?.round === view.round ? myGuesses.guesses : []} testId="live-guesses" />
                  </div>
                </div>
              ) : (
                <ul className="watch" data-testid="spectator-view">
                  {view.seats.filter((s) => s.role === 'player').map((s) => {
                    const g = watching[s.seat];
                    return (
                      <li key={s.seat} data-testid="watched-player">
                        <p><strong>{s.nickname}</strong></p>
                        {g?.image ? <img src={g.image} alt={`${s.nickname}'s canvas`} width={160} height={160} /> : <div className="placeholder muted small">no ink yet</div>}
                        <GuessBars guesses={g?.round === view.round ? g.guesses : []} testId="watched-guesses" />
                      </li>
                    );
                  })}
                </ul>
              )}
            </section>
          ) : null}

          {view.phase === 'reveal' && reveal ? (
            <>
              <Reveal reveal={reveal} me={me.seat} />
              {isHost ? <p><button onClick={skip} data-testid="next">{view.round < view.settings.rounds ? 'Next round' : 'To the podium'}</button></p> : null}
            </>
          ) : null}

          {view.phase === 'podium' ? (
            <>
              {podium ? <Podium podium={podium} me={me.seat} /> : null}
              {isHost ? <p><button onClick={start} data-testid="play-again">Play again</button></p> : null}
              {hall ? <HallOfFame hall={hall} /> : null}
            </>
          ) : null}
        </div>

        <aside className="play-side">
          <Leaderboard me={me.seat} rows={podium?.leaderboard ?? (view.phase === 'reveal' ? reveal?.leaderboard : undefined) ?? standings(view)} />
          <section className="card" aria-label="People">
            <h2>In the room</h2>
            <ul className="people" data-testid="players">
              {view.seats.map((s) => (
                <li key={s.seat} className={s.connected ? '' : 'muted'}>
                  {s.nickname}{s.host ? ' ★' : ''}{s.role === 'spectator' ? ' (watching)' : ''}{s.submitted ? ' ✓' : ''}{s.connected ? '' : ' (away)'}
                </li>
              ))}
            </ul>
          </section>
        </aside>
      </div>
    </>
  );
}

/** The players by score (competition ranks), from the room's state. */
function standings(view: PlayRoomView): PlayLeaderboardRow[] {
  const players = view.seats.filter((s) => s.role === 'player').sort((a, b) => b.score - a.score);
  return players.map((s) => ({ seat: s.seat, nickname: s.nickname, score: s.score, rank: 1 + players.filter((x) => x.score > s.score).length }));
}
