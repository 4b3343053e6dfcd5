import { errorForwardingSuite } from './shared/error-forwarding.js';

errorForwardingSuite(5);
