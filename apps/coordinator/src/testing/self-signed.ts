import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * A one-day self-signed certificate for 127.0.0.1 made with openssl in `dir`: key.pem and
 * cert.pem, for tests of the coordinator under TLS.
 */
export function selfSignedCert(dir: string): { keyPath: string; certPath: string } {
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-days', '1'].concat([
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ]),
    { stdio: 'ignore' },
  );
  return { keyPath, certPath };
}
