/** Whole rounds in memory between real clients and a real server, for tests of code built on them. */
export * from './testing/simulate-round';
