/** A server the test suite started for itself. */
export interface TestServer {
  /** Where the tests reach it. */
  url: string;
  /** Stops it and waits until it is gone. */
  stop(): Promise<void>;
  /** Stops it at once, synchronously: for process exit and signals. */
  stopNow(): void;
}
