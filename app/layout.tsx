import type { Metadata } from 'next';
import type { ReactNode } from 'react';
import './globals.css';

export const metadata: Metadata = {
  title: 'CLIP Studio',
  description: "Generate, caption and play with OpenAI's CLIP.",
  icons: { icon: '/favicon.svg' },
};

export default function RootLayout({ children }: { children: ReactNode }) {
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
