// Runs a describe block once per backend, so the whole suite pins both the native kernels and the
// pure TypeScript backend. (Written by the lead; the fixtures helper may extend it but must keep
// `forEachBackend(title, fn)`.)
import { type BackendName, getBackend, setBackend } from 'kdloss';

/** The backends every behaviour is tested on. */
export const BACKENDS: readonly BackendName[] = ['native', 'js'];

/** describe(`${title} [backend]`, fn) for each backend, with that backend selected. */
export function forEachBackend(title: string, fn: (backend: BackendName) => void): void {
  for (const name of BACKENDS) {
    describe(`${title} [${name}]`, () => {
      let previous: BackendName;
      before(() => {
        previous = getBackend();
        setBackend(name);
      });
      after(() => setBackend(previous));
      fn(name);
    });
  }
}
