import GenerateStudio from './components/GenerateStudio';
import StudioHome from './components/StudioHome';

export default function Page() {
  return (
    <>
      <GenerateStudio />
      <StudioHome />
    </>
  );
}
