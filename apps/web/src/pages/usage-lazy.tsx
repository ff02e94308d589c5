import { lazy, Suspense } from 'react';

// The charts library is most of the usage page's weight: it loads when the page is opened.
const UsagePage = lazy(() => import('./usage').then((m) => ({ default: m.UsagePage })));

export function LazyUsagePage() {
  return (
    <Suspense fallback={<section className="page">Loading…</section>}>
      <UsagePage />
    </Suspense>
  );
}
