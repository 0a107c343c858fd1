/** Seeded uniform doubles in [0, 1): the repository's one small PRNG (mulberry32), from libs/imaging. */
export { mulberry32 as seededUniform } from '@fedsynth/imaging';
