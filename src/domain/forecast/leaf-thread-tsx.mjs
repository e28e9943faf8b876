// Starts a leaf forecast thread when the service runs from TypeScript (tsx, vitest): a worker does
// not inherit the loader of the thread that started it, so tsx is registered here first.
import { register } from "tsx/esm/api";

register();
const { default: leafThread } = await import("./leaf-thread.ts");
export default leafThread;
