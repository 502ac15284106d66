#!/usr/bin/env node
// Prints one list from native/sources.json for binding.gyp's <!@(...) expansions, so node-gyp and
// CMake build from the same list. Usage: node tools/gyp-sources.js <key> [isa-arch isa-name field]
//   cflags | addon | core        -> that list
//   isa <arch> <name> sources    -> sources of one ISA variant
//   isa <arch> <name> flags      -> compiler flags of one ISA variant
//   isa <arch> <name> define     -> the preprocessor define that announces the variant to dispatch.cc
// An ISA variant missing from sources.json prints an empty list (and so builds nothing).
'use strict';
const path = require('path');
const spec = require(path.join(__dirname, '..', 'native', 'sources.json'));
const [key, arch, name, field] = process.argv.slice(2);
let list;
if (key === 'isa') {
  const variant = (spec.isa[arch] || []).find((v) => v.name === name);
  list = variant ? variant[field] : [];
  if (typeof list === 'string') list = [list];
} else {
  list = spec[key];
}
if (!Array.isArray(list)) {
  console.error(`gyp-sources: unknown key ${process.argv.slice(2).join(' ')}`);
  process.exit(1);
}
process.stdout.write(list.join(' '));
