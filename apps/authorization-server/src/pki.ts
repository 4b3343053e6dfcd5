import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM key and certificate. */
export interface KeyAndCert {
  key: string;
  cert: string;
}

/** A throwaway PKI for mTLS tests: a CA, a server certificate for 127.0.0.1 and client certificates. */
export interface TestPki {
  ca: KeyAndCert;
  server: KeyAndCert;
  /** A client certificate signed by `ca`, with `DNS:<dnsName>` as its subjectAltName. */
  client(dnsName: string): KeyAndCert;
  /** A self-signed client certificate (signed by no CA the server trusts). */
  untrustedClient(dnsName: string): KeyAndCert;
}

let serial = 1;

/** Runs openssl in a temporary folder holding `files`; returns the named outputs. Nothing is left on disk. */
function openssl(
  files: Record<string, string>,
  steps: string[][],
  outputs: string[],
): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'keyfob-pki-'));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    for (const args of steps) execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    return Object.fromEntries(outputs.map((name) => [name, readFileSync(join(dir, name), 'utf8')]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const NEW_KEY = ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'leaf.key'];

function issue(ca: KeyAndCert | undefined, subject: string, san: string): KeyAndCert {
  const signer = ca ? ['-CA', 'ca.crt', '-CAkey', 'ca.key'] : ['-signkey', 'leaf.key'];
  const out = openssl(
    { ...(ca ? { 'ca.crt': ca.cert, 'ca.key': ca.key } : {}), 'leaf.ext': `subjectAltName=${san}\n` },
    [
      NEW_KEY,
      ['req', '-new', '-key', 'leaf.key', '-subj', subject, '-out', 'leaf.csr'],
      ['x509', '-req', '-in', 'leaf.csr', ...signer, '-set_serial', String(++serial), '-days', '1'].concat([
        '-extfile',
        'leaf.ext',
        '-out',
        'leaf.crt',
      ]),
    ],
    ['leaf.key', 'leaf.crt'],
  );
  return { key: out['leaf.key']!, cert: out['leaf.crt']! };
}

/**
 * Makes a local CA with the `openssl` command line (node:crypto cannot issue certificates): EC P-256 keys,
 * certificates valid for one day.
 */
export function createTestPki(): TestPki {
  const root = openssl(
    {},
    [
      NEW_KEY,
      [
        'req',
        '-x509',
        '-new',
        '-key',
        'leaf.key',
        '-subj',
        '/CN=keyfob test CA',
        '-days',
        '1',
        '-out',
        'leaf.crt',
      ],
    ],
    ['leaf.key', 'leaf.crt'],
  );
  const ca = { key: root['leaf.key']!, cert: root['leaf.crt']! };
  return {
    ca,
    server: issue(ca, '/CN=127.0.0.1', 'IP:127.0.0.1,DNS:localhost'),
    client: (dnsName) => issue(ca, `/CN=${dnsName}`, `DNS:${dnsName}`),
    untrustedClient: (dnsName) => issue(undefined, `/CN=${dnsName}`, `DNS:${dnsName}`),
  };
}
