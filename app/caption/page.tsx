import CaptionStudio from '../components/CaptionStudio';
import './caption.css';

export const metadata = { title: 'Caption · CLIP Studio' };

export default function CaptionPage() {
  return <CaptionStudio />;
}
