// Express 4, installed as `express4` (npm:express@^4.21) to check the peer range; typed like Express 5 here.
declare module 'express4' {
  import express from 'express';
  export default express;
}
