// The chat app's npm dependencies, vendored as the packages' own built files
// into server/web/vendor/ (embedded in imboxd; nothing is built when Rust
// builds). The versions are the ones tests/web/package-lock.json pins.
//
//   node vendor.mjs          copies them (after `npm ci` here)
//   node vendor.mjs --check  fails when a vendored file differs from the
//                            locked package's (make test-web runs this)

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.join(here, 'node_modules');
const vendor = path.resolve(here, '..', '..', 'server', 'web', 'vendor');

// package → [file in the package, name in server/web/vendor]
const FILES = {
  '@msgpack/msgpack': [
    ['dist.umd/msgpack.min.js', 'msgpack.min.js'],
    ['LICENSE', 'msgpack.LICENSE.txt'],
  ],
  'tus-js-client': [
    ['dist/tus.min.js', 'tus.min.js'],
    ['LICENSE', 'tus.LICENSE.txt'],
  ],
};

const check = process.argv.includes('--check');
const problems = [];
const lines = [];
for (const [pkg, files] of Object.entries(FILES)) {
  const { version } = JSON.parse(fs.readFileSync(path.join(modules, pkg, 'package.json'), 'utf8'));
  lines.push(`- ${pkg} ${version}: ${files.map(([, name]) => name).join(', ')}`);
  for (const [from, name] of files) {
    const source = fs.readFileSync(path.join(modules, pkg, from));
    const target = path.join(vendor, name);
    if (check) {
      if (!fs.existsSync(target) || !source.equals(fs.readFileSync(target))) {
        problems.push(`server/web/vendor/${name} is not ${pkg} ${version}'s ${from}`);
      }
    } else {
      fs.mkdirSync(vendor, { recursive: true });
      fs.writeFileSync(target, source);
    }
  }
}
const readme = `# Vendored packages

Written by \`tests/web/vendor.mjs\` from the versions \`tests/web/package-lock.json\`
pins (\`npm ci\` there, then \`node vendor.mjs\`); \`make test-web\` checks they match.
Each package's licence file sits beside its code.

${lines.join('\n')}
`;
if (check) {
  if (fs.readFileSync(path.join(vendor, 'README.md'), 'utf8') !== readme) problems.push('server/web/vendor/README.md is out of date');
  if (problems.length) {
    console.error(`${problems.join('\n')}\nrun: cd tests/web && npm ci && node vendor.mjs`);
    process.exit(1);
  }
  console.log('ok: the vendored packages match package-lock.json');
} else {
  fs.writeFileSync(path.join(vendor, 'README.md'), readme);
  console.log(readme);
}
