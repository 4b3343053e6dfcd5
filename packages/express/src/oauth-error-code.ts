/**
 * Which OAuth `error` codes from outside are echoed in an HTTP answer. The text comes from the provider
 * (a token endpoint's body) or from whoever crafted the callback URL, so only a well-formed code goes
 * back; anything else is replaced by {@link INVALID_ERROR_CODE}.
 */

/** What is echoed in place of an error code that is not one. */
export const INVALID_ERROR_CODE = 'invalid_error_code';

/**
 * RFC 6749 5.2: `error = 1*NQSCHAR`, NQSCHAR = %x20-21 / %x23-5B / %x5D-7E (printable ASCII without `"`
 * and `\`); no control characters, no non-ASCII. 64 characters hold every registered code (the longest
 * are about 30).
 *
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.2
 */
const NQSCHAR_CODE = /^[\x20\x21\x23-\x5B\x5D-\x7E]{1,64}$/;

/**
 * A login callback's `error` parameter: anyone can put one in a link to the callback, and it is shown
 * on the sign-in failure page, so only the shape of real codes (letters, digits, `_ . -`, no spaces)
 * is echoed, never a sentence.
 */
const CALLBACK_CODE = /^[A-Za-z0-9_.-]{1,64}$/;

/** A token endpoint's OAuth `error` as `keyfobErrorHandler()` may echo it (`oauthError`). */
export function tokenEndpointErrorCode(value: string): string {
  return NQSCHAR_CODE.test(value) ? value : INVALID_ERROR_CODE;
}

/** A login callback's `error` parameter as the router may echo it (`providerError`). */
export function callbackErrorCode(value: string): string {
  return CALLBACK_CODE.test(value) ? value : INVALID_ERROR_CODE;
}
