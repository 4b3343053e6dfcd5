import { ConfigurableModuleBuilder, type DynamicModule, Module, type Provider } from '@nestjs/common';
import type { KeyfobModuleExtras, KeyfobModuleOptions } from './options.js';
import { KeyfobRegistration } from './registration.js';
import {
  DEFAULT_KEYFOB_NAME,
  getKeyfobHttpToken,
  getKeyfobRegistrationToken,
  getTokenManagerToken,
  keyfobName,
} from './tokens.js';

/*
 * Named registrations. ConfigurableModuleBuilder has one MODULE_OPTIONS_TOKEN, but providers are scoped
 * to the dynamic module instance that declares them: every forRoot()/forRootAsync() call is its own
 * module instance with its own (private, never exported) options provider. What each instance exports
 * is derived from the `name` extra, like @nestjs/typeorm's getDataSourceToken(name):
 *   default   -> TokenManager (the class)       + 'KeyfobHttpService:default'
 *   name 'a'  -> 'KeyfobTokenManager:a'         + 'KeyfobHttpService:a'
 * so forRoot({ name: 'a' }) and forRoot({ name: 'b' }) coexist, globally or per module.
 */
const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN, OPTIONS_TYPE, ASYNC_OPTIONS_TYPE } =
  new ConfigurableModuleBuilder<KeyfobModuleOptions>({ moduleName: 'Keyfob' })
    .setClassMethodName('forRoot')
    .setFactoryMethodName('createKeyfobOptions')
    .setExtras<KeyfobModuleExtras>({ isGlobal: false, name: DEFAULT_KEYFOB_NAME }, (definition, extras) => {
      const name = keyfobName(extras.name);
      const registration = getKeyfobRegistrationToken(name);
      const managerToken = getTokenManagerToken(name);
      const httpToken = getKeyfobHttpToken(name);
      const providers: Provider[] = [
        ...(definition.providers ?? []),
        {
          provide: registration,
          useFactory: (options: KeyfobModuleOptions) =>
            KeyfobRegistration.create(options, name, { isGlobal: extras.isGlobal }),
          inject: [MODULE_OPTIONS_TOKEN],
        },
        { provide: managerToken, useFactory: (r: KeyfobRegistration) => r.manager, inject: [registration] },
        { provide: httpToken, useFactory: (r: KeyfobRegistration) => r.http, inject: [registration] },
      ];
      return {
        ...definition,
        global: extras.isGlobal === true,
        providers,
        exports: [...(definition.exports ?? []), managerToken, httpToken],
      };
    })
    .build();

/** `KeyfobModule.forRoot(...)` argument: manager options plus `name` and `isGlobal`. */
export type KeyfobModuleForRootOptions = typeof OPTIONS_TYPE;
/** `KeyfobModule.forRootAsync(...)` argument: `imports`, `inject`, `useFactory` | `useClass` | `useExisting`, plus `name` and `isGlobal`. */
export type KeyfobModuleAsyncOptions = typeof ASYNC_OPTIONS_TYPE;

/**
 * Provides a ready `TokenManager` (injectable by class, or `@InjectTokenManager(name)`) and an
 * `HttpService` whose calls carry its tokens (`@InjectKeyfobHttp(name)`, with `http` options).
 * Managers are closed and interceptors ejected when the application shuts down.
 */
@Module({})
export class KeyfobModule extends ConfigurableModuleClass {
  /** Registers a manager from static options. Bad options fail the bootstrap with a ConfigurationError. */
  static override forRoot(options: KeyfobModuleForRootOptions): DynamicModule {
    keyfobName(options?.name);
    // biome-ignore lint/complexity/noThisInStatic: super keeps `this` = KeyfobModule, so the dynamic module is KeyfobModule.
    return super.forRoot(options ?? ({} as KeyfobModuleForRootOptions));
  }

  /**
   * Registers a manager whose options come from a factory (`useFactory` + `inject`), a class (`useClass`)
   * or an existing provider (`useExisting`). `name` and `isGlobal` go here, not in the factory's result.
   */
  static override forRootAsync(options: KeyfobModuleAsyncOptions): DynamicModule {
    keyfobName(options?.name);
    // biome-ignore lint/complexity/noThisInStatic: super keeps `this` = KeyfobModule, so the dynamic module is KeyfobModule.
    return super.forRootAsync(options);
  }
}
