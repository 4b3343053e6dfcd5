// Resolved from this package, exactly as src/ resolves it.
import got from 'got';

export { got };
