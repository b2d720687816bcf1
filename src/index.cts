// The CommonJS entry (`require('llama2-embedding')`): the ES module build, loaded with Node's
// require() of ES modules (Node >= 20.19 or >= 22.12, see "engines"), so both share one copy of the
// code and the native addon. Its declarations give CommonJS TypeScript builds the same types.
import lib = require('./index.js');
export = lib;
