// Type-checked (tsc --module node16, not run) in a project where kdloss is installed: the CommonJS
// entry has the package's types.
import kdloss = require('kdloss');

const loss: number = new kdloss.DistillationLoss(2, 0.5).computeDistillation([[1, 2]], [[2, 1]], [0]);
const backend: kdloss.BackendName = kdloss.getBackend();
const caps = kdloss.capabilities();
const compiled: string[] | undefined = caps?.compiled;
// @ts-expect-error: a temperature is a number (fails to compile if kdloss were typed as any)
new kdloss.DistillationLoss('2', 0.5);
export { backend, compiled, loss };
