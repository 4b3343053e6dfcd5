import { keyfobVitestConfig } from '../../vitest.shared.ts';

export default keyfobVitestConfig({ testTimeout: 120_000 });
