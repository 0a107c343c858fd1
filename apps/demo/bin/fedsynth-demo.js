#!/usr/bin/env node

const { existsSync } = require('node:fs');
const { join } = require('node:path');
const entry = join(__dirname, '..', 'dist', 'demo.js');
if (!existsSync(entry)) {
  console.error('fedsynth-demo: not built yet; run `npm run build` in the fedsynth checkout first.');
  process.exit(1);
}
require(entry).main(process.argv.slice(2));
