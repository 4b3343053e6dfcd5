export {
  type AttachTokensOptions,
  attachTokens,
  type KeyfobRequestError,
  type KeyfobRequestOptions,
} from './attach.js';
