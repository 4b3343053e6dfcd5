import { ConfigurationError, TokenManager } from '@keyfob/core';
import { Inject } from '@nestjs/common';

/** The name of the manager registered without `name`. */
export const DEFAULT_KEYFOB_NAME = 'default';

/** Normalises and checks a manager name (undefined and `'default'` are the default manager). */
export function keyfobName(name: string | undefined): string {
  if (name === undefined || name === DEFAULT_KEYFOB_NAME) return DEFAULT_KEYFOB_NAME;
  if (typeof name !== 'string' || name.trim() === '' || name !== name.trim()) {
    throw new ConfigurationError(
      'KeyfobModule: name must be a non-empty string without surrounding spaces (it names the manager in @InjectTokenManager(name)).',
    );
  }
  return name;
}

/** Log context of a manager: `Keyfob` for the default one, `Keyfob:<name>` for a named one. */
export function keyfobLogContext(name: string | undefined): string {
  const n = keyfobName(name);
  return n === DEFAULT_KEYFOB_NAME ? 'Keyfob' : `Keyfob:${n}`;
}

/**
 * The injection token of a manager: the `TokenManager` class for the default one (inject it by type),
 * the string `KeyfobTokenManager:<name>` for a named one. For custom providers and `moduleRef.get(...)`.
 */
export function getTokenManagerToken(name?: string): typeof TokenManager | string {
  const n = keyfobName(name);
  return n === DEFAULT_KEYFOB_NAME ? TokenManager : `KeyfobTokenManager:${n}`;
}

/**
 * The injection token of a manager's `HttpService` (`KeyfobHttpService:<name>`). Never the bare
 * `HttpService` class: that one belongs to `HttpModule` and shares the global axios instance.
 */
export function getKeyfobHttpToken(name?: string): string {
  return `KeyfobHttpService:${keyfobName(name)}`;
}

/** Internal: the per-manager registration (manager + HttpService + shutdown). */
export function getKeyfobRegistrationToken(name?: string): string {
  return `KeyfobRegistration:${keyfobName(name)}`;
}

/** Injects the `TokenManager` registered under `name` (the default one without a name). */
export function InjectTokenManager(name?: string): PropertyDecorator & ParameterDecorator {
  return Inject(getTokenManagerToken(name));
}

/** Injects the `HttpService` (from `@nestjs/axios`) whose requests carry the tokens of manager `name`. */
export function InjectKeyfobHttp(name?: string): PropertyDecorator & ParameterDecorator {
  return Inject(getKeyfobHttpToken(name));
}
