#!/usr/bin/env node
// Makes sure the outside tools that the test suite uses as independent oracles are present:
// nibabel, pydicom, scikit-image and numpy in Debian's python3, dcm2niix, and Chromium for the
// dashboard's browser test (driven by playwright-core); and the servers the suite starts for
// itself (test/services/global-setup.ts): PostgreSQL's server binaries and redis-server. Installs
// them with apt-get when running as root on Debian; otherwise says exactly what to install.
// (Debian's postgresql package may create and start a cluster on port 5432; the tests never use it.)
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';

const PY = '/usr/bin/python3';
const APT_PACKAGES = [
  'python3-nibabel',
  'python3-pydicom',
  'python3-skimage',
  'python3-numpy',
  'dcm2niix',
  'chromium',
  'postgresql',
  'redis-server',
];

/** Whether initdb and pg_ctl exist: in Debian's /usr/lib/postgresql/<version>/bin, or on PATH. */
function hasPostgresServer() {
  const hasBoth = (d) => existsSync(join(d, 'initdb')) && existsSync(join(d, 'pg_ctl'));
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root) : [];
  if (versions.some((v) => hasBoth(join(root, v, 'bin')))) return true;
  return (process.env.PATH ?? '').split(delimiter).some((d) => d && hasBoth(d));
}

function missing() {
  const out = [];
  const py = spawnSync(PY, ['-c', 'import nibabel, pydicom, skimage, numpy'], { stdio: 'ignore' });
  if (py.error || py.status !== 0) out.push('python3 modules nibabel/pydicom/skimage/numpy');
  const d = spawnSync('dcm2niix', ['-v'], { stdio: 'ignore' });
  if (d.error) out.push('dcm2niix');
  const c = spawnSync('/usr/bin/chromium', ['--version'], { stdio: 'ignore' });
  if (c.error || c.status !== 0) out.push('chromium');
  if (!hasPostgresServer()) out.push('PostgreSQL server (initdb, pg_ctl)');
  const r = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  if (r.error || r.status !== 0) out.push('redis-server');
  return out;
}

let gaps = missing();
if (gaps.length === 0) process.exit(0);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
if (isRoot && hasApt) {
  console.error(`fedsynth: installing test oracles (${gaps.join(', ')}) with apt-get ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  const r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...APT_PACKAGES], {
    stdio: 'inherit',
    env,
  });
  if (r.status !== 0) console.error('fedsynth: apt-get install failed');
  gaps = missing();
}
if (gaps.length > 0) {
  console.error(
    `fedsynth: the test suite needs ${gaps.join(' and ')}.\n` +
      `Install them with: sudo apt-get install -y ${APT_PACKAGES.join(' ')}`,
  );
  process.exit(1);
}
