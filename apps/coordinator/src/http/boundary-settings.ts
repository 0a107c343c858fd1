import { type BodyLimits, DEFAULT_BODY_LIMITS } from './body-policy';
import { DEFAULT_FAILURE_LIMIT, type FailureLimit } from './failure-limiter';

/** The limits of the coordinator's HTTP and socket boundary, set once at start. */
export interface BoundarySettings {
  body: BodyLimits;
  /** Failed authentications (API tokens, enrollments, agent logins) per address and window. */
  failures: FailureLimit;
  /**
   * Which proxies' X-Forwarded-For to believe for the client address (Express's `trust proxy`:
   * false for none, a hop count, or addresses/subnets such as "loopback" or "10.0.0.0/8").
   */
  trustProxy: boolean | number | string;
  /** Browser origins allowed to call the API from another site (CORS); none by default. */
  corsOrigins: string[];
}

export const DEFAULT_BOUNDARY: BoundarySettings = {
  body: DEFAULT_BODY_LIMITS,
  failures: DEFAULT_FAILURE_LIMIT,
  trustProxy: false,
  corsOrigins: [],
};
