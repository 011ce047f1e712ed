export const metadata = { title: 'Play · CLIP Studio' };

export default function PlayPage() {
  return (
    <section className="card">
      <h1>Play</h1>
      <p>
        Coming soon: a drawing game where CLIP judges how well each drawing matches the prompt. Not built yet;
        this page does nothing yet.
      </p>
    </section>
  );
}
