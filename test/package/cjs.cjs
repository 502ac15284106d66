// CommonJS probe: requires kdloss, then imports it, and prints whether both are the same module
// instance and which addons the process loaded (with dlopen.cjs preloaded).
'use strict';
const cjs = require('kdloss');

import('kdloss').then((esm) => {
  const loss = new cjs.DistillationLoss(2, 0.5).computeDistillation([[1, 2, 3]], [[3, 2, 1]], [0]);
  process.stdout.write(
    JSON.stringify({
      first: 'require',
      same: esm.default === cjs && esm.DistillationLoss === cjs.DistillationLoss && esm.setBackend === cjs.setBackend,
      esmNames: Object.keys(esm).filter((n) => n !== 'default').sort(),
      cjsNames: Object.keys(cjs).sort(),
      backend: cjs.getBackend(),
      loss,
      dlopen: globalThis.__kdlossDlopen ?? null,
    }) + '\n',
  );
});
