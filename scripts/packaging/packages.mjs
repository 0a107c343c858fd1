// The installable packages `npm run pack` makes: which app each holds, under which npm name, and
// what it ships besides the app's compiled code.
export const PACKAGES = {
  'site-agent': {
    dir: 'apps/site-agent',
    name: 'fedsynth-site-agent',
    description:
      "The fedsynth site agent a hospital runs: trains the federation's model on local images and sends only its securely masked update and aggregate figures.",
    files: ['bin', 'dist', 'README.md'],
    // The systemd install travels with the agent it installs.
    extraFiles: [
      ['deploy/agent/install.sh', 'deploy/install.sh'],
      ['deploy/agent/fedsynth-agent.service', 'deploy/fedsynth-agent.service'],
    ],
    // Tools site IT uses beside the agent: the data check `doctor` points to, and trial data.
    libraryBins: {
      'fedsynth-data': ['@fedsynth/imaging', 'bin/fedsynth-data.js'],
      'fedsynth-phantoms': ['@fedsynth/imaging', 'bin/fedsynth-phantoms.js'],
    },
  },
  coordinator: {
    dir: 'apps/coordinator',
    name: 'fedsynth-coordinator',
    files: ['bin', 'dist', 'web', 'README.md'],
  },
};
