export const metadata = { title: 'Caption · CLIP Studio' };

export default function CaptionPage() {
  return (
    <section className="card">
      <h1>Caption</h1>
      <p>
        Coming soon: describe an image by ranking candidate captions with CLIP (optionally drafted by an
        OpenAI-compatible LLM). The engine pieces are being built; this page does nothing yet.
      </p>
    </section>
  );
}
