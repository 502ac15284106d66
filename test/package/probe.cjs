// Run where kdloss is installed (or inside the package): prints one JSON line with the build that
// loaded, what the CPU offers, why the addon did not load (if it did not), and the losses of
// data.cjs on every backend available. `node probe.cjs worker` also loads kdloss in a worker thread.
'use strict';
const kd = require('kdloss');
const { losses } = require('./data.cjs');

async function main() {
  const err = kd.nativeLoadError();
  const out = {
    backend: kd.getBackend(),
    isa: kd.isa(),
    capabilities: kd.capabilities(),
    loadError: err && { name: err.name, code: err.code, message: err.message },
    losses: {},
  };
  for (const name of err ? ['js'] : ['native', 'js']) {
    kd.setBackend(name);
    out.losses[name] = losses(kd);
  }
  if (process.argv[2] === 'worker') {
    const { Worker } = require('worker_threads');
    const worker = new Worker("const kd = require('kdloss'); require('worker_threads').parentPort.postMessage(kd.getBackend());", {
      eval: true,
    });
    out.workerBackend = await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`probe: ${e.stack}\n`);
  process.exit(1);
});
