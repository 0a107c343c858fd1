#!/usr/bin/env node
// CI helper: a Vulkan driver that runs on the CPU (Mesa's lavapipe), so that the webgpu backend's
// parity tests (libs/diffusion/src/backend-parity.test.ts) run its shaders on a machine without a
// GPU. Dawn needs a Vulkan 1.1 feature that Mesa 22 (Debian 12) lacks; Mesa 25 from
// bookworm-backports has it. Only as root on Debian 12; anything else leaves the machine as it is.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const run = (cmd, args) =>
  spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
const installed = (pkg) => {
  // dpkg-query's own field syntax, not a template string.
  const r = spawnSync('dpkg-query', ['-W', `-f=${'$'}{Version}`, pkg], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
};

const mesa = installed('mesa-vulkan-drivers');
if (mesa && !/^2[0-2]\./.test(mesa) && installed('libvulkan1')) process.exit(0);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const release = existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '';
if (!isRoot || !/VERSION_CODENAME=bookworm/.test(release)) {
  console.error('fedsynth: no CPU Vulkan driver installed; the webgpu parity tests will be skipped');
  process.exit(0);
}
const list = '/etc/apt/sources.list.d/fedsynth-bookworm-backports.list';
if (!existsSync(list)) writeFileSync(list, 'deb http://deb.debian.org/debian bookworm-backports main\n');
console.error('fedsynth: installing Mesa lavapipe (bookworm-backports) for the webgpu parity tests ...');
run('apt-get', ['update', '-qq']);
const r = run('apt-get', [
  'install',
  '-y',
  '-qq',
  '--no-install-recommends',
  '-t',
  'bookworm-backports',
  'mesa-vulkan-drivers',
  'libvulkan1',
]);
if (r.status !== 0)
  console.error('fedsynth: could not install lavapipe; the webgpu parity tests will be skipped');
