import { keyfobVitestConfig } from '../../vitest.shared';
export default keyfobVitestConfig();
