import { describe, expect, it } from 'vitest';
import { CacheKeys, normaliseScope, sortedParams } from '../src/cache-key.js';
import { clientCredentials } from '../src/index.js';

const grant = clientCredentials({ clientId: 'svc', clientSecret: 'never-in-a-key', scope: 'read' });

describe('cache keys', () => {
  const keys = new CacheKeys('https://auth.example.com/token', grant, 100);

  it('scope is a set; extra parameters are unordered', () => {
    expect(normaliseScope('write  read read')).toBe('read write');
    expect(sortedParams({ b: '2', a: '1' })).toBe(sortedParams({ a: '1', b: '2' }));
    expect(keys.for({ scope: 'a b' }).key).toBe(keys.for({ scope: 'b a' }).key);
    expect(keys.for({ extraParams: { x: '1', y: '2' } }).key).toBe(
      keys.for({ extraParams: { y: '2', x: '1' } }).key,
    );
  });

  it('subject, scope, extra parameters, token URL and client tell tokens apart', () => {
    const all = [
      keys.default.key,
      keys.for({ subject: 'ana' }).key,
      keys.for({ subject: 'bob' }).key,
      keys.for({ scope: 'write' }).key,
      keys.for({ extraParams: { audience: 'api' } }).key,
      new CacheKeys('https://other.example.com/token', grant, 10).default.key,
      new CacheKeys(
        'https://auth.example.com/token',
        clientCredentials({ clientId: 'x', clientSecret: 's' }),
        10,
      ).default.key,
    ];
    expect(new Set(all).size).toBe(all.length);
  });

  it('the default scope is the grant scope; no options is the default key', () => {
    expect(keys.for({}).key).toBe(keys.default.key);
    expect(keys.for({ scope: 'read' }).key).toBe(keys.default.key);
    expect(keys.default.scope).toBe('read');
  });

  it('a key reveals nothing: no secret, subject or scope in it', () => {
    const k = keys.for({ subject: 'ana@example.com', scope: 'admin' });
    expect(k.key).toMatch(/^client_credentials:[A-Za-z0-9_-]{32}$/);
    expect(k.key).not.toContain('never-in-a-key');
    expect(k.key).not.toContain('ana');
    expect(k.subject).toBe('ana@example.com');
  });

  it('keys are memoised: the same object for the same request options', () => {
    expect(keys.for({ subject: 'ana' })).toBe(keys.for({ subject: 'ana' }));
  });
});
