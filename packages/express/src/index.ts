export {
  type AuthorizationCodeRouter,
  type AuthorizationCodeRouterOptions,
  authorizationCodeRouter,
  type LoginEvent,
  type LogoutEvent,
  type PendingLogin,
  type RequireUserTokenOptions,
  requireUserToken,
  type StandaloneRequireUserTokenOptions,
} from './authorization-code-router.js';
export {
  createRequestContext,
  type KeyfobRequestContext,
  type RequestTokenOptions,
  type SubjectResolver,
  type TokenMiddlewareOptions,
  tokenMiddleware,
} from './context.js';
export {
  AUTHORIZATION_CALLBACK_ERROR,
  AuthorizationCallbackError,
  type AuthorizationCallbackReason,
  type ErrorAnswer,
  errorAnswer,
  type KeyfobErrorHandlerOptions,
  keyfobErrorHandler,
} from './errors.js';
