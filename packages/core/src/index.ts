export { type CallerAnswer, callerAnswer } from './caller-answer.js';
export type { ClientAssertionOptions } from './client-auth.js';
export {
  type CacheLookupMessage,
  type CacheLookupResult,
  DiagnosticsChannel,
  diagnostics,
  publishUnauthorizedRetry,
  type RefreshTrigger,
  type StoreMessage,
  type TokenInvalidateMessage,
  type TokenManagerStatus,
  type TokenObtainedMessage,
  type TokenRefreshMessage,
  type TokenRequestMessage,
  type TokenScopeInfo,
  type UnauthorizedRetryMessage,
} from './diagnostics.js';
export type { AuthorizationServerMetadata } from './discovery.js';
export { DpopKey, type DpopOptions, type DpopProofInput, dpopHtu, isUseDpopNonce } from './dpop.js';
export { type EnvOptions, type EnvTokenManagerOptions, optionsFromEnv } from './env.js';
export {
  ConfigurationError,
  ErrorCode,
  isKeyfobError,
  KeyfobError,
  LoginRequiredError,
  TokenEndpointError,
  TokenResponseError,
} from './errors.js';
export type {
  InvalidatedEvent,
  RefreshFailedEvent,
  TokenEvent,
  TokenFailedEvent,
  TokenManagerEvents,
} from './events.js';
export {
  type AuthorizationCodeGrant,
  type AuthorizationCodeOptions,
  type AuthorizationRequest,
  type AuthorizationUrlOptions,
  authorizationCode,
  type ExchangeOptions,
} from './grants/authorization-code.js';
export type { GrantHost } from './grants/binding.js';
export { type ClientCredentialsOptions, clientCredentials } from './grants/client-credentials.js';
export {
  type CustomGrantContext,
  type CustomGrantOptions,
  type CustomTokenResult,
  customGrant,
} from './grants/custom.js';
export type { ClientAuthMethod, Grant, GrantContext } from './grants/grant.js';
export { basicAuthorization } from './grants/grant.js';
export {
  type JwtBearerAssertionContext,
  type JwtBearerOptions,
  jwtBearer,
} from './grants/jwt-bearer.js';
export { type PasswordGrantOptions, passwordGrant } from './grants/password.js';
export { type StaticTokenOptions, staticToken } from './grants/static-token.js';
export {
  bearerToken,
  type TokenExchangeOptions,
  TokenType,
  tokenExchange,
} from './grants/token-exchange.js';
export { fingerprint, REDACTED, redact, redactSecrets, safeUrl } from './redact.js';
export {
  isReplayableBody,
  type KeyfobRequestOptions,
  originOf,
  RequestAttempt,
  RequestPolicy,
  type RequestPolicyBinding,
  type RequestPolicyOptions,
  type TokenHeaders,
  type TokenSource,
} from './request-policy.js';
export {
  MemoryTokenStore,
  type MemoryTokenStoreOptions,
  type TokenStore,
  type TokenStoreLock,
} from './store.js';
export type { TokenRequest } from './token-endpoint.js';
export { TokenManager, type TokenManagerOptions, VERSION } from './token-manager.js';
export {
  createAccessToken,
  fromStoredToken,
  normaliseTokenResponse,
  toStoredToken,
} from './token-response.js';
export type { AccessToken, Clock, GetTokenOptions, KeyfobLogger, StoredToken } from './types.js';
