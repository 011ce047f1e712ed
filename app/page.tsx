import StudioHome from './components/StudioHome';

export default function Page() {
  return <StudioHome />;
}
