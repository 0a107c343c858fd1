/** Every way a coordinator operation can be refused; each transport maps these once (HTTP status, socket error). */
export enum ErrorCode {
  NOT_FOUND = 'NOT_FOUND',
  NAME_TAKEN = 'NAME_TAKEN',
  ILLEGAL_TRANSITION = 'ILLEGAL_TRANSITION',
  INVALID_INPUT = 'INVALID_INPUT',
  UNAUTHENTICATED = 'UNAUTHENTICATED',
  FORBIDDEN = 'FORBIDDEN',
  TOKEN_INVALID = 'TOKEN_INVALID',
  TOKEN_EXPIRED = 'TOKEN_EXPIRED',
  TOKEN_USED = 'TOKEN_USED',
  KEY_ENROLLED = 'KEY_ENROLLED',
  BAD_SIGNATURE = 'BAD_SIGNATURE',
  WEAK_KEY = 'WEAK_KEY',
  PAYLOAD_TOO_LARGE = 'PAYLOAD_TOO_LARGE',
  UNSUPPORTED_MEDIA_TYPE = 'UNSUPPORTED_MEDIA_TYPE',
  RATE_LIMITED = 'RATE_LIMITED',
  INSUFFICIENT_STORAGE = 'INSUFFICIENT_STORAGE',
  INTERNAL = 'INTERNAL',
}

const HTTP_STATUS: Record<ErrorCode, number> = {
  NOT_FOUND: 404,
  NAME_TAKEN: 409,
  ILLEGAL_TRANSITION: 409,
  INVALID_INPUT: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  TOKEN_INVALID: 401,
  TOKEN_EXPIRED: 401,
  TOKEN_USED: 409,
  KEY_ENROLLED: 409,
  BAD_SIGNATURE: 401,
  WEAK_KEY: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  INSUFFICIENT_STORAGE: 507,
  INTERNAL: 500,
};

/** A refusal with a code and a message that names what was wrong. */
export class CoordinatorError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CoordinatorError';
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }
}
