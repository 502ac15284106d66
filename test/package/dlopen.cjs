// Preloaded with --require: records every native addon the process loads (process.dlopen), so the
// module-format probes can check that import and require load one addon, once.
'use strict';
const loaded = [];
const dlopen = process.dlopen;
process.dlopen = function (module, filename, ...rest) {
  loaded.push(filename);
  return dlopen.call(this, module, filename, ...rest);
};
globalThis.__kdlossDlopen = loaded;
