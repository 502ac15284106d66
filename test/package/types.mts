// Type-checked (tsc --module node16, not run) in a project where kdloss is installed: the ES module
// entry has the package's types.
import kdloss, { type BackendName, DistillationLoss, getBackend, NativeError } from 'kdloss';

const loss: number = new DistillationLoss(2, 0.5).computeDistillation([[1, 2]], [[2, 1]], [0]);
const backend: BackendName = getBackend();
const isa: string | null = kdloss.isa();
const error: Error | null = kdloss.nativeLoadError();
const isNative: boolean = error instanceof NativeError;
// @ts-expect-error: a temperature is a number (fails to compile if kdloss were typed as any)
new DistillationLoss('2', 0.5);
export { backend, error, isa, isNative, loss };
