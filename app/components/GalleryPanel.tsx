'use client';
/**
 * The gallery: every generated image with its recipe, newest first (GET /api/gallery).
 * "Use this recipe" hands the recipe back to the form; "Delete" removes the item and its files.
 */
import type { GalleryItem } from '../../server/protocol';

function recipeSummary(r: GalleryItem['recipe']): string {
  const parts = [`${r.steps} steps`, `seed ${r.seed}`, `${r.size}px`, `lr ${r.lr}`, `cutn ${r.cutn}`];
  const models = r.models as { clip?: { id: string }; vqgan?: { id: string } } | undefined;
  if (models?.clip && models.vqgan) parts.push(`${models.clip.id} + ${models.vqgan.id}`);
  if (r.backend) parts.push(String(r.backend));
  const t = r.timings as { msPerStep?: number; totalMs?: number } | undefined;
  if (t?.totalMs) parts.push(`${(t.totalMs / 1000).toFixed(1)} s`);
  return parts.join(' · ');
}

export default function GalleryPanel(props: {
  items: GalleryItem[] | null;
  error: string | null;
  onUse: (item: GalleryItem) => void;
  onDelete: (item: GalleryItem) => void;
}) {
  const { items, error } = props;
  return (
    <section className="card" aria-label="Gallery">
      <h2>Gallery</h2>
      {error ? <p className="bad">Could not load the gallery: {error}</p> : null}
      {!items && !error ? <p className="muted">Loading…</p> : null}
      {items && items.length === 0 ? <p className="muted">Nothing yet: generated images appear here, with their recipes.</p> : null}
      <ul className="gallery" data-testid="gallery">
        {items?.map((item) => (
          <li key={item.id} data-testid="gallery-item" data-id={item.id}>
            <a href={item.imageUrl} target="_blank" rel="noreferrer">
              <img className="pixelated" src={item.imageUrl} alt={item.prompt} width={128} height={128} />
            </a>
            <div>
              <p className="prompt">{item.prompt}</p>
              <p className="muted small">{recipeSummary(item.recipe)} · {new Date(item.createdAt).toLocaleString()}</p>
              <p>
                <button onClick={() => props.onUse(item)}>Use this recipe</button>{' '}
                <a href={item.imageUrl} download={`clip-studio-${item.seed}.png`}>PNG</a>
                {item.animationUrl ? <> · <a href={item.animationUrl} download={`clip-studio-${item.seed}.webp`}>animation</a></> : null}{' '}
                <button onClick={() => props.onDelete(item)}>Delete</button>
              </p>
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}
