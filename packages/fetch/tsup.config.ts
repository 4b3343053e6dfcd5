import { keyfobTsup } from '../../tsup.base.ts';
export default keyfobTsup();
