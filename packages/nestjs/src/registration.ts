import { attachTokens } from '@keyfob/axios';
import { ConfigurationError, isKeyfobError, TokenManager } from '@keyfob/core';
import { HttpService } from '@nestjs/axios';
import { Logger, type OnApplicationShutdown } from '@nestjs/common';
import axios, { type AxiosInstance, type AxiosPromise, type AxiosResponse } from 'axios';
import { Observable } from 'rxjs';
import type { KeyfobModuleOptions } from './options.js';
import { DEFAULT_KEYFOB_NAME, keyfobLogContext } from './tokens.js';

function label(name: string): string {
  return name === DEFAULT_KEYFOB_NAME ? 'KeyfobModule' : `KeyfobModule "${name}"`;
}

/**
 * Stands in for the `HttpService` of a manager configured without `http`: every call fails with a
 * ConfigurationError naming the missing option (the token has to exist, the options may come later from a factory).
 */
class UnconfiguredHttpService extends HttpService {
  readonly #name: string;
  constructor(name: string) {
    super(axios.create());
    this.#name = name;
  }
  #error(): ConfigurationError {
    return new ConfigurationError(
      `${label(this.#name)}: http is not configured, so its HttpService cannot send requests; add http: { baseURL } to the module options.`,
    );
  }
  override get axiosRef(): AxiosInstance {
    throw this.#error();
  }
  protected override makeObservable<T>(
    _axios: (...args: any[]) => AxiosPromise<T>,
    ..._args: any[]
  ): Observable<AxiosResponse<T, any>> {
    return new Observable((subscriber) => subscriber.error(this.#error()));
  }
}

/**
 * One registered manager: built from the module options when the Nest container starts (so bad options
 * fail the bootstrap), closed when the application shuts down.
 */
export class KeyfobRegistration implements OnApplicationShutdown {
  readonly name: string;
  readonly manager: TokenManager;
  readonly http: HttpService;
  readonly #eject: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  private constructor(
    name: string,
    manager: TokenManager,
    http: HttpService,
    eject: (() => void) | undefined,
  ) {
    this.name = name;
    this.manager = manager;
    this.http = http;
    this.#eject = eject;
  }

  static create(
    options: KeyfobModuleOptions,
    name: string,
    staticExtras: { isGlobal?: unknown },
  ): KeyfobRegistration {
    const where = label(name);
    if (!options || typeof options !== 'object') {
      throw new ConfigurationError(
        `${where}: options are required (forRootAsync's factory returned ${options === null ? 'null' : typeof options}); pass at least tokenUrl and grant.`,
      );
    }
    const given = options as KeyfobModuleOptions & { name?: unknown; isGlobal?: unknown };
    if (given.name !== undefined && given.name !== name) {
      throw new ConfigurationError(
        `${where}: name must be passed to forRootAsync({ name, ... }) itself, not returned by the options factory (the injection tokens are fixed before the factory runs).`,
      );
    }
    if (given.isGlobal !== undefined && given.isGlobal !== staticExtras.isGlobal) {
      throw new ConfigurationError(
        `${where}: isGlobal must be passed to forRootAsync({ isGlobal, ... }) itself, not returned by the options factory.`,
      );
    }
    const { http, name: _n, isGlobal: _g, ...managerOptions } = given;
    let manager: TokenManager;
    try {
      manager = new TokenManager({
        ...managerOptions,
        logger: managerOptions.logger ?? new Logger(keyfobLogContext(name)),
      });
    } catch (e) {
      throw name === DEFAULT_KEYFOB_NAME || !isKeyfobError(e)
        ? e
        : new ConfigurationError(`${where}: ${e.message}`, { cause: e });
    }
    if (http === undefined || http === null) {
      return new KeyfobRegistration(name, manager, new UnconfiguredHttpService(name), undefined);
    }
    try {
      if (typeof http !== 'object')
        throw new ConfigurationError(
          `${where}: http must be an object ({ baseURL, origins?, ...axios config }).`,
        );
      const { origins, subject, scope, retryOn401, ...axiosConfig } = http;
      if (!axiosConfig.baseURL && !(Array.isArray(origins) && origins.length > 0)) {
        throw new ConfigurationError(
          `${where}: http.baseURL or http.origins is required; tokens are only sent to the API origins you name.`,
        );
      }
      // A dedicated instance per manager: never the global axios default that a bare HttpModule shares.
      const instance = axios.create(axiosConfig);
      const eject = attachTokens(instance, manager, {
        ...(origins === undefined ? {} : { origins }),
        ...(subject === undefined ? {} : { subject }),
        ...(scope === undefined ? {} : { scope }),
        ...(retryOn401 === undefined ? {} : { retryOn401 }),
      });
      return new KeyfobRegistration(name, manager, new HttpService(instance), eject);
    } catch (e) {
      void manager.close();
      throw name === DEFAULT_KEYFOB_NAME || !isKeyfobError(e) || e.message.startsWith(where)
        ? e
        : new ConfigurationError(`${where}: ${e.message}`, { cause: e });
    }
  }

  /** Ejects the axios interceptors and closes the manager (timers, in-flight requests, store locks). */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#eject?.();
      await this.manager.close();
    })();
    return this.#closing;
  }

  onApplicationShutdown(): Promise<void> {
    return this.close();
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, manager: this.manager.toJSON() };
  }
}
