// Resolved from this package, exactly as src/ resolves it (a second copy of axios would skew the benchmark).
import axios from 'axios';

export { axios };
