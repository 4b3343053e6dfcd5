import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { ConfigurationError } from '@keyfob/core';

const ALG = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Accepts 32 bytes as a Buffer/Uint8Array, 64 hex characters, or base64/base64url of 32 bytes. Never echoes the key. */
export function parseEncryptionKey(value: unknown): Buffer {
  const bad = (what: string) =>
    new ConfigurationError(
      `RedisTokenStore: encryptionKey ${what}; it must be 32 bytes (a Buffer, 64 hex characters or base64).`,
      {
        hint: "Generate one with: node -e \"console.log(require('node:crypto').randomBytes(32).toString('base64'))\"",
      },
    );
  if (value instanceof Uint8Array) {
    if (value.length !== 32) throw bad(`is ${value.length} bytes`);
    return Buffer.from(value);
  }
  if (typeof value !== 'string') throw bad('is not a Buffer or a string');
  const s = value.trim();
  if (/^[0-9a-f]{64}$/i.test(s)) return Buffer.from(s, 'hex');
  if (/^[A-Za-z0-9+/]{43}=?$/.test(s) || /^[A-Za-z0-9_-]{43}$/.test(s)) {
    const b = Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (b.length === 32) return b;
  }
  throw bad(`is not 64 hex characters or the base64 of 32 bytes (got ${s.length} characters)`);
}

/** Which token a stored entry holds, for compare-and-delete without decrypting. */
export function tokenFingerprint(accessToken: string, key: Buffer | undefined): string {
  const h = key ? createHmac('sha256', key).update('keyfob-redis-fp\0') : createHash('sha256');
  return h.update(accessToken).digest('hex').slice(0, 32);
}

/** AES-256-GCM with a random 12-byte IV; `aad` binds the ciphertext to its entry. Output: base64url(iv | ciphertext | tag). */
export function seal(plaintext: string, key: Buffer, aad: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALG, key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, ct, cipher.getAuthTag()]).toString('base64url');
}

/** Undefined when the key is wrong, the entry was tampered with or moved, or the data is malformed. */
export function open(sealed: string, key: Buffer, aad: string): string | undefined {
  try {
    const buf = Buffer.from(sealed, 'base64url');
    if (buf.length < IV_BYTES + TAG_BYTES) return undefined;
    const decipher = createDecipheriv(ALG, key, buf.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(buf.subarray(buf.length - TAG_BYTES));
    return Buffer.concat([
      decipher.update(buf.subarray(IV_BYTES, buf.length - TAG_BYTES)),
      decipher.final(),
    ]).toString('utf8');
  } catch {
    return undefined;
  }
}
