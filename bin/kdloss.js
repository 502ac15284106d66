#!/usr/bin/env node
'use strict';
// The kdloss command line; the implementation is lib/cli/main.ts, compiled to dist/cli/main.js.
require('../dist/cli/main.js').cli();
