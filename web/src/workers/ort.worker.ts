// onnxruntime-web in a Web Worker, one thread (no cross-origin isolation needed), wasm only. The .wasm
// file is a hashed asset of the build, served by loopline itself with its own MIME type.
import * as ort from "onnxruntime-web/wasm";

ort.env.wasm.numThreads = 1;
ort.env.wasm.proxy = false;

let session: ort.InferenceSession | null = null;

type Message =
  | { kind: "load"; model: ArrayBuffer }
  | { kind: "run"; input: Float32Array; size: number };

self.onmessage = async (event: MessageEvent<Message>) => {
  const m = event.data;
  try {
    if (m.kind === "load") {
      const started = performance.now();
      session = await ort.InferenceSession.create(new Uint8Array(m.model), { executionProviders: ["wasm"] });
      postMessage({ kind: "loaded", ms: performance.now() - started, inputs: session.inputNames, outputs: session.outputNames });
    } else if (m.kind === "run") {
      if (!session) throw new Error("no model loaded");
      const started = performance.now();
      const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", m.input, [1, m.size, m.size, 3]) };
      const out = await session.run(feeds);
      const outputs: Record<string, { dims: readonly number[]; data: number[] }> = {};
      for (const [name, t] of Object.entries(out)) outputs[name] = { dims: t.dims, data: Array.from(t.data as Float32Array) };
      postMessage({ kind: "ran", ms: performance.now() - started, outputs });
    }
  } catch (exc) {
    postMessage({ kind: "error", message: exc instanceof Error ? exc.message : String(exc) });
  }
};
