// Try the model in the browser: the active deployment's ONNX file runs in a Web Worker with
// onnxruntime-web (wasm, one thread; loaded only on this page), on a project image or a webcam frame,
// beside the server's answer for the same input: the page makes the model's input picture itself
// (stretched to the spec's size) and sends those very pixels (PNG, lossless) to the server's pipeline.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, call, client, csrfHeaders, errorFrom } from "../api/client";
import type { Deployment } from "../api/types";
import { ErrorBox, Loading } from "../components/ui";
import { useLoad } from "../lib/hooks";
import { query } from "../lib/router";
import { ProjectTabs } from "./Images";

interface Spec { size: number; scale: number; offset: number }
type Outputs = Record<string, { dims: readonly number[]; data: number[] }>;
interface Answer {
  class_id?: number;
  class_name?: string;
  score?: number;
  scores?: Record<string, number>;
  box?: { x: number; y: number; w: number; h: number };
  detections?: { box: { x: number; y: number; w: number; h: number }; class_name: string; score: number }[];
}
const STAGE: Record<string, string> = { suggestion: "suggest", classification: "classify", detection: "detect" };

class Runner {
  private worker = new Worker(new URL("../workers/ort.worker.ts", import.meta.url), { type: "module" });
  private waiting: ((m: { kind: string; [k: string]: unknown }) => void) | null = null;
  constructor() {
    this.worker.onmessage = (e) => this.waiting?.(e.data);
    this.worker.onerror = (e) => this.waiting?.({ kind: "error", message: e.message || "the worker failed to start" });
  }
  private ask<T>(message: unknown, transfer: Transferable[] = []): Promise<T> {
    return new Promise((resolve, reject) => {
      this.waiting = (m) => (m.kind === "error" ? reject(new Error(String(m.message))) : resolve(m as T));
      this.worker.postMessage(message, transfer);
    });
  }
  load(model: ArrayBuffer) { return this.ask<{ ms: number; outputs: string[] }>({ kind: "load", model }, [model]); }
  run(input: Float32Array, size: number) { return this.ask<{ ms: number; outputs: Outputs }>({ kind: "run", input, size }); }
  close() { this.worker.terminate(); }
}

/** The model's (ymin, xmin, ymax, xmax) in [0, 1] as pixels of the size x size input (services.inference.box_in_image). */
function boxOf(v: number[], size: number) {
  const c = v.map((x) => Math.min(1, Math.max(0, x)));
  const [ymin, ymax] = [Math.min(c[0], c[2]), Math.max(c[0], c[2])];
  const [xmin, xmax] = [Math.min(c[1], c[3]), Math.max(c[1], c[3])];
  const x = xmin * size, y = ymin * size;
  return { x, y, w: Math.min(Math.max((xmax - xmin) * size, 1), size - x), h: Math.min(Math.max((ymax - ymin) * size, 1), size - y) };
}

export function TryModel({ pid }: { pid: number }) {
  const path = { project_id: pid };
  const deployments = useLoad(() => call(client.GET("/api/projects/{project_id}/deployments", {
    params: { path, query: { active: true, limit: 20 } } })), [pid]);
  const images = useLoad(() => call(client.GET("/api/projects/{project_id}/images", { params: { path, query: { limit: 100 } } })), [pid]);
  const [depId, setDepId] = useState<number | null>(null);
  const [imageId, setImageId] = useState<number | null>(Number(query().get("image")) || null);
  const [state, setState] = useState<string>("idle");
  const [error, setError] = useState<ApiError | null>(null);
  const [result, setResult] = useState<{ browser: Answer; server: Answer; raw: Outputs; diff: number | null; ms: number; serverMs: number } | null>(null);
  const runner = useRef<Runner | null>(null);
  const loadedFor = useRef<number | null>(null);
  const input = useRef<HTMLCanvasElement>(null);
  const video = useRef<HTMLVideoElement>(null);
  const [camera, setCamera] = useState(false);

  const deps = ((deployments.data?.items ?? []) as unknown as Deployment[]).filter((d) => d.status === "ready");
  const dep = deps.find((d) => d.id === depId) ?? deps.find((d) => d.task === "suggestion") ?? deps[0];
  const imgs = images.data?.items ?? [];
  const image = imgs.find((i) => i.id === imageId) ?? imgs[0];
  useEffect(() => () => runner.current?.close(), []);

  const ensureModel = async (d: Deployment) => {
    if (!runner.current) runner.current = new Runner();
    if (loadedFor.current === d.id) return;
    setState("downloading the model");
    const res = await fetch(`/api/projects/${pid}/deployments/${d.id}/model`, { credentials: "same-origin" });
    if (!res.ok) throw errorFrom(res, await res.json().catch(() => undefined));
    const bytes = await res.arrayBuffer();
    setState("loading onnxruntime-web");
    await runner.current.load(bytes);
    loadedFor.current = d.id;
  };

  /** Draw the source stretched to size x size; the input tensor NHWC = pixel * scale + offset. */
  const prepare = async (spec: Spec): Promise<{ tensor: Float32Array; png: Blob }> => {
    const canvas = input.current!;
    canvas.width = canvas.height = spec.size;
    const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    if (camera && video.current) ctx.drawImage(video.current, 0, 0, spec.size, spec.size);
    else {
      const el = new Image();
      el.src = image!.file_url!;
      await el.decode();
      ctx.drawImage(el, 0, 0, spec.size, spec.size);
    }
    const px = ctx.getImageData(0, 0, spec.size, spec.size).data;
    const tensor = new Float32Array(spec.size * spec.size * 3);
    for (let i = 0, j = 0; i < px.length; i += 4, j += 3) {
      tensor[j] = px[i] * spec.scale + spec.offset;
      tensor[j + 1] = px[i + 1] * spec.scale + spec.offset;
      tensor[j + 2] = px[i + 2] * spec.scale + spec.offset;
    }
    const png = await new Promise<Blob>((res, rej) => canvas.toBlob((b) => (b ? res(b) : rej(new Error("no PNG"))), "image/png"));
    return { tensor, png };
  };

  const run = async () => {
    if (!dep) return;
    setError(null);
    setResult(null);
    try {
      await ensureModel(dep);
      const spec = dep.preprocessing as unknown as Spec;
      setState("running");
      const { tensor, png } = await prepare(spec);
      const form = new FormData();
      form.append("files", png, "input.png");
      form.append("project_id", String(pid));
      const started = performance.now();
      const [local, remote] = await Promise.all([
        runner.current!.run(tensor, spec.size),
        fetch(`/api/pipelines/${STAGE[dep.task] ?? "suggest"}/runs`, { method: "POST", credentials: "same-origin", headers: csrfHeaders(), body: form })
          .then(async (r) => {
            const body = await r.json().catch(() => undefined);
            if (!r.ok) throw errorFrom(r, body);
            return body as { items: { result?: Answer; error?: { message: string } }[] };
          }),
      ]);
      const serverMs = performance.now() - started;
      const item = remote.items[0];
      if (item.error) throw new ApiError(422, "pipeline", item.error.message);
      const server = item.result ?? {};
      const names = (dep.label_map as { class_id: number; name: string }[]);
      const browser: Answer = {};
      let diff: number | null = null;
      const scores = local.outputs.class_scores?.data;
      if (scores) {
        const k = scores.indexOf(Math.max(...scores));
        Object.assign(browser, { class_id: names[k]?.class_id, class_name: names[k]?.name, score: scores[k],
          scores: Object.fromEntries(names.map((n, i) => [n.name, scores[i]])) });
        if (server.scores) diff = Math.max(...names.map((n, i) => Math.abs(scores[i] - (server.scores![n.name] ?? NaN))));
      }
      const box = local.outputs.box?.data;
      if (box) {
        browser.box = boxOf(box, spec.size);
        if (server.box) {
          const b = browser.box, s = server.box; // compared as shares of the input's side
          const d = Math.max(Math.abs(b.x - s.x), Math.abs(b.y - s.y), Math.abs(b.w - s.w), Math.abs(b.h - s.h)) / spec.size;
          diff = Math.max(diff ?? 0, d);
        }
      }
      setResult({ browser, server, raw: local.outputs, diff, ms: local.ms, serverMs });
      setState("done");
    } catch (exc) {
      setState("idle");
      setError(exc instanceof ApiError ? exc : new ApiError(0, "error", exc instanceof Error ? exc.message : String(exc)));
    }
  };

  const startCamera = async () => {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true });
      video.current!.srcObject = stream;
      await video.current!.play();
      setCamera(true);
    } catch (exc) {
      setError(new ApiError(0, "camera", `no camera: ${exc instanceof Error ? exc.message : exc}`));
    }
  };

  const spec = dep ? (dep.preprocessing as unknown as Spec) : null;
  return (
    <div class="page wide">
      <div class="title-row"><h1>Try the model</h1><ProjectTabs pid={pid} here="try" /></div>
      <ErrorBox error={deployments.error ?? images.error} />
      {!deployments.data ? <Loading /> : !deps.length ? <p class="muted">No active deployment in this project: deploy a checkpoint on the Models page.</p> : (
        <div class="card form inline" data-testid="try-form">
          <label class="field"><span class="label">Deployment</span>
            <select name="deployment" value={dep?.id} onChange={(e) => { setDepId(Number(e.currentTarget.value)); setResult(null); }}>
              {deps.map((d) => <option value={d.id}>#{d.id} {d.task} (checkpoint {d.checkpoint_id})</option>)}</select></label>
          <label class="field"><span class="label">Image</span>
            <select name="image" value={image?.id} disabled={camera} onChange={(e) => setImageId(Number(e.currentTarget.value))}>
              {imgs.map((i) => <option value={i.id}>{i.original_name} ({i.width}×{i.height})</option>)}</select></label>
          <button type="button" onClick={() => void (camera ? (setCamera(false), (video.current!.srcObject as MediaStream | null)?.getTracks().forEach((t) => t.stop())) : startCamera())}>
            {camera ? "Use the image" : "Use the webcam"}</button>
          <button type="button" class="primary" disabled={state !== "idle" && state !== "done" || (!image && !camera)} onClick={() => void run()}>Run</button>
          <span class="muted small" data-testid="try-state">{state}</span>
        </div>
      )}
      <ErrorBox error={error} />
      <video ref={video} muted playsInline class={camera ? "webcam" : "hidden"} />
      <div class="try-row">
        <figure><canvas ref={input} class="try-input" data-testid="try-input" /><figcaption>the model's input ({spec?.size ?? "?"}²)</figcaption></figure>
        {result && spec && (
          <>
            <Side title={`in the browser · ${result.ms.toFixed(0)} ms`} answer={result.browser} size={spec.size} testid="try-browser" />
            <Side title={`the server · ${result.serverMs.toFixed(0)} ms round trip`} answer={result.server} size={spec.size} testid="try-server" />
          </>
        )}
      </div>
      {result && (
        <p data-testid="try-diff" data-diff={result.diff ?? ""}>
          largest difference: <strong>{result.diff == null ? "–" : result.diff.toExponential(2)}</strong>
          {result.diff != null && (result.diff <= 1e-3 ? " (same answer)" : " (differs)")}
        </p>
      )}
    </div>
  );
}

function Side({ title, answer, size, testid }: { title: string; answer: Answer; size: number; testid: string }) {
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const src = document.querySelector<HTMLCanvasElement>("[data-testid=try-input]")!;
    const c = ref.current!;
    const scale = 256 / size;
    c.width = c.height = 256;
    const ctx = c.getContext("2d")!;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(src, 0, 0, 256, 256);
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#f59e0b";
    ctx.font = "12px system-ui";
    ctx.fillStyle = "#f59e0b";
    const boxes = answer.box ? [{ box: answer.box, label: `${answer.class_name} ${answer.score?.toFixed(3)}` }]
      : (answer.detections ?? []).map((d) => ({ box: d.box, label: `${d.class_name} ${d.score.toFixed(2)}` }));
    for (const { box, label } of boxes) {
      ctx.strokeRect(box.x * scale, box.y * scale, box.w * scale, box.h * scale);
      ctx.fillText(label, box.x * scale + 2, Math.max(12, box.y * scale - 3));
    }
  }, [answer, size]);
  return (
    <figure data-testid={testid} data-answer={JSON.stringify(answer)}>
      <canvas ref={ref} width={256} height={256} />
      <figcaption>{title}<br /><strong>{answer.class_name ?? (answer.detections ? `${answer.detections.length} detections` : "")}</strong>
        {answer.score != null && ` ${answer.score.toFixed(4)}`}</figcaption>
    </figure>
  );
}
