import type { NextFunction, Request, RequestHandler, Response } from 'express';

/** Wraps an async handler so a rejection reaches `next(err)` on Express 4 as on Express 5. */
export function asyncHandler(
  fn: (req: Request, res: Response, next: NextFunction) => Promise<void>,
): RequestHandler {
  return (req, res, next) => {
    fn(req, res, next).catch(next);
  };
}
