import type { NextFunction, Request, RequestHandler, Response } from 'express';

/**
 * Wraps a route handler so that a rejected promise (or a throw) reaches `next(err)`, hence your error handlers
 * and `keyfobErrorHandler()`. Express 5 does this by itself; Express 4 does not: there an `async` handler whose
 * `await req.keyfob.getToken()` rejects is an unhandled rejection, which ends the process. Every middleware of
 * `@keyfob/express` is wrapped this way already.
 */
export function asyncHandler(
  fn: (req: Request, res: Response, next: NextFunction) => unknown,
): RequestHandler {
  return (req, res, next) => {
    try {
      Promise.resolve(fn(req, res, next)).catch(next);
    } catch (err) {
      next(err);
    }
  };
}
