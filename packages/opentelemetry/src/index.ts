export { KeyfobInstrumentation, type KeyfobInstrumentationConfig } from './instrumentation.js';
