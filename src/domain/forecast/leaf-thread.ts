// The body of a leaf forecast thread (leaf-threads.ts): one job in, its leaves' outlooks out.
import { computeLeaves } from "./leaf-inputs.js";

export default computeLeaves;
