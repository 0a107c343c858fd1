import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `value` is a UUID in its canonical text form (the ids of every record). */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** `value` when it is a UUID; otherwise INVALID_INPUT naming `what` (never a database error). */
export function requireUuid(value: string, what: string): string {
  if (typeof value !== 'string' || !UUID.test(value))
    throw new CoordinatorError(ErrorCode.INVALID_INPUT, `${what} must be a UUID`);
  return value.toLowerCase();
}
