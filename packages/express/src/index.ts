export { asyncHandler } from './async-handler.js';
export {
  type AuthorizationCodeRouter,
  authorizationCodeRouter,
  type RequireUserTokenOptions,
} from './authorization-code-router.js';
export { bearerToken } from './bearer-token.js';
export {
  AUTHORIZATION_CALLBACK_ERROR,
  AuthorizationCallbackError,
  type AuthorizationCallbackReason,
} from './callback-error.js';
export {
  type ErrorAnswer,
  errorAnswer,
  type KeyfobErrorHandlerOptions,
  keyfobErrorHandler,
} from './error-renderer.js';
export {
  createRequestContext,
  getKeyfob,
  hasKeyfob,
  type KeyfobRequestContext,
  type RequestTokenOptions,
  type RequestWithKeyfob,
  type SubjectResolver,
} from './request-context.js';
export { requireUserToken, type StandaloneRequireUserTokenOptions } from './require-user-token.js';
export type {
  AuthorizationCodeRouterOptions,
  ExtraParams,
  LoginEvent,
  LogoutEvent,
  PendingLogin,
} from './router-options.js';
export { type TokenMiddlewareOptions, tokenMiddleware } from './token-middleware.js';
