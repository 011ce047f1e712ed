import type { Metadata } from 'next';
import { connection } from 'next/server';
import type { ReactNode } from 'react';
import './globals.css';

export const metadata: Metadata = {
  title: 'CLIP Studio',
  description: "Generate, caption and play with OpenAI's CLIP.",
  icons: { icon: '/favicon.svg' },
};

export default async function RootLayout({ children }: { children: ReactNode }) {
  // Render per request: each page gets a fresh CSP nonce from the server (server/security.ts),
  // which Next can only put on its scripts when it renders the page for that request.
  await connection();
  return (
    <html lang="en">
      <body>
        <header className="bar">
          <a className="brand" href="/">CLIP Studio</a>
          <nav>
            <a href="/">Studio</a>
            <a href="/caption">Caption</a>
            <a href="/play">Play</a>
          </nav>
        </header>
        <main>{children}</main>
      </body>
    </html>
  );
}
