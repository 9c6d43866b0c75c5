import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';

/**
 * A PostgreSQL server that speaks TLS, for tests on a machine whose PostgreSQL does not: a proxy that
 * answers the client's SSLRequest with 'S', terminates TLS with a certificate made for the test (openssl),
 * and passes the decrypted protocol to the real server. A client that verifies the certificate meets a real
 * TLS handshake and a real certificate; behind it, a real PostgreSQL answers.
 */
export interface TlsProxy {
  port: number;
  /** The PEM certificate the proxy presents (self-signed: it is its own CA). */
  certificate: string;
  close(): Promise<void>;
}

/** The 8-byte SSLRequest: length 8, then the code 80877103. */
const SSL_REQUEST_CODE = 80877103;

export async function startTlsProxy(upstream: { host: string; port: number }, names: string): Promise<TlsProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-tls-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=strata-test',
      '-addext',
      `subjectAltName=${names}`,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  const options = { key: readFileSync(key), cert: readFileSync(cert) };
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    client.once('data', (first) => {
      if (first.length < 8 || first.readInt32BE(4) !== SSL_REQUEST_CODE) {
        client.destroy(); // this proxy only serves clients that ask for TLS
        return;
      }
      client.write('S');
      const secure = new TLSSocket(client, { isServer: true, ...options });
      secure.on('error', () => client.destroy());
      const backend = tcpConnect(upstream);
      backend.on('error', () => secure.destroy());
      secure.pipe(backend).pipe(secure);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the TLS proxy has no port');
  return {
    port: address.port,
    certificate: readFileSync(cert, 'utf8'),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
