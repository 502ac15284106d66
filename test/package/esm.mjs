// ES module probe: imports kdloss, then requires it, and prints whether both are the same module
// instance and which addons the process loaded (with dlopen.cjs preloaded).
import { createRequire } from 'module';
import kdDefault, * as esm from 'kdloss';
import { DistillationLoss, getBackend } from 'kdloss';

const require = createRequire(import.meta.url);
const cjs = require('kdloss');
const loss = new DistillationLoss(2, 0.5).computeDistillation([[1, 2, 3]], [[3, 2, 1]], [0]);
process.stdout.write(
  JSON.stringify({
    first: 'import',
    same: kdDefault === cjs && esm.DistillationLoss === cjs.DistillationLoss && esm.setBackend === cjs.setBackend,
    esmNames: Object.keys(esm).filter((n) => n !== 'default').sort(),
    cjsNames: Object.keys(cjs).sort(),
    backend: getBackend(),
    loss,
    dlopen: globalThis.__kdlossDlopen ?? null,
  }) + '\n',
);
