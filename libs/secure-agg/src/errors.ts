/** Every way a secure-aggregation step can refuse its input. */
export enum SecAggErrorCode {
  INVALID_CONFIG = 'INVALID_CONFIG',
  INVALID_ARGUMENT = 'INVALID_ARGUMENT',
  ILLEGAL_TRANSITION = 'ILLEGAL_TRANSITION',
  WRONG_ROUND = 'WRONG_ROUND',
  UNKNOWN_PARTICIPANT = 'UNKNOWN_PARTICIPANT',
  NOT_A_NEIGHBOUR = 'NOT_A_NEIGHBOUR',
  DUPLICATE = 'DUPLICATE',
  BAD_SIGNATURE = 'BAD_SIGNATURE',
  BAD_LENGTH = 'BAD_LENGTH',
  DECRYPTION_FAILED = 'DECRYPTION_FAILED',
  SHARE_MISMATCH = 'SHARE_MISMATCH',
  BELOW_THRESHOLD = 'BELOW_THRESHOLD',
  INCONSISTENT_SURVIVORS = 'INCONSISTENT_SURVIVORS',
  BOTH_SHARES_REQUESTED = 'BOTH_SHARES_REQUESTED',
  RECONSTRUCTION_FAILED = 'RECONSTRUCTION_FAILED',
}

/** Error thrown by the secure-aggregation library; `code` says what kind of problem it is. */
export class SecAggError extends Error {
  constructor(
    readonly code: SecAggErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SecAggError';
  }
}

/** Throws a SecAggError with `code` unless `condition` holds. */
export function ensure(
  condition: unknown,
  code: SecAggErrorCode,
  message: string | (() => string),
): asserts condition {
  if (!condition) throw new SecAggError(code, typeof message === 'string' ? message : message());
}
