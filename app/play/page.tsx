import PlayGame from '../components/PlayGame';
import './play.css';

export const metadata = { title: 'Play · CLIP Studio' };

export default function PlayPage() {
  return <PlayGame />;
}
