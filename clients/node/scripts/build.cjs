// npm run build: the CommonJS and the ES module builds, each with its type
// declarations, into dist/cjs and dist/esm. A package.json in each tells
// Node which module system its .js files use.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
} catch {
  // npm runs this (as "prepare") when an application installs the package
  // from its folder, without installing its devDependencies there.
  if (fs.existsSync(path.join(root, 'dist', 'cjs', 'index.js')) && fs.existsSync(path.join(root, 'dist', 'esm', 'index.js'))) {
    console.error(`lockproxy: typescript is not installed in ${root}: keeping the build already in dist/`);
    process.exit(0);
  }
  console.error(`lockproxy: typescript is not installed in ${root}: run \`npm ci\` there first (it builds dist/)`);
  process.exit(1);
}

fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
for (const [config, type] of [
  ['tsconfig.cjs.json', 'commonjs'],
  ['tsconfig.esm.json', 'module'],
]) {
  const r = spawnSync(process.execPath, [tsc, '-p', config], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`tsc -p ${config} failed`);
    process.exit(r.status ?? 1);
  }
  const out = path.join(root, JSON.parse(fs.readFileSync(path.join(root, config), 'utf8')).compilerOptions.outDir);
  fs.writeFileSync(path.join(out, 'package.json'), JSON.stringify({ type }) + '\n');
}
