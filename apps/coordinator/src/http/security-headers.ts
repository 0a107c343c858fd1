import type { NextFunction, Request, Response } from 'express';
import helmet from 'helmet';

/**
 * Security headers for every response (helmet): a Content-Security-Policy that lets the dashboard
 * load only its own scripts, styles and images (blob: for the sample and the model download),
 * `frame-ancestors 'none'` against click-jacking, nosniff, no referrer, and HSTS when the
 * coordinator serves TLS. The OpenAPI page (Swagger UI) ships inline styles, so its policy alone
 * allows them.
 */
export function securityHeaders(opts: { tls: boolean }) {
  const directives = {
    defaultSrc: ["'self'"],
    baseUri: ["'none'"],
    objectSrc: ["'none'"],
    frameAncestors: ["'none'"],
    formAction: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", 'blob:', 'data:'],
    connectSrc: ["'self'"],
    upgradeInsecureRequests: opts.tls ? [] : null,
  };
  const common = {
    strictTransportSecurity: opts.tls ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    referrerPolicy: { policy: 'no-referrer' as const },
    crossOriginEmbedderPolicy: false,
  };
  const main = helmet({ ...common, contentSecurityPolicy: { useDefaults: false, directives } });
  const docs = helmet({
    ...common,
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { ...directives, styleSrc: ["'self'", "'unsafe-inline'"] },
    },
  });
  return (req: Request, res: Response, next: NextFunction) =>
    (req.path.startsWith('/api/docs') ? docs : main)(req, res, next);
}
