import { errorForwardingSuite } from '../shared/error-forwarding.js';

// vitest's express4 project resolves `express` (here and in the package source) to Express 4.
errorForwardingSuite(4);
