import { keyfobVitestConfig } from '../../vitest.shared.ts';

export default keyfobVitestConfig();
