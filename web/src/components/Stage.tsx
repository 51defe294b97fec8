// One image with its boxes, zoomable and pannable: the image is drawn downscaled by a CSS transform and
// the boxes on an SVG kept screen-sized, so every coordinate the page keeps is in the ORIGINAL image's
// pixels and only drawing maps them (lib/annotate.ts: toScreen / toImage).
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import {
  type Box, type Handle, HANDLES, type View, fit, handlePoint, moved, rectBetween, resized, toImage, toScreen, zoomAt,
} from "../lib/annotate";

export type Tool = "draw" | "assist" | "none";
export type Rect = { x: number; y: number; w: number; h: number };

export interface ClassInfo {
  id: number;
  name: string;
  group?: string | null;
  color?: string | null;
}

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#ea580c", "#4f46e5"];
export function colorOf(c: ClassInfo | undefined, i = 0): string {
  return c?.color || PALETTE[(c ? c.id : i) % PALETTE.length];
}

type Drag =
  | { kind: "pan"; sx: number; sy: number; view: View }
  | { kind: "move"; key: string; start: { x: number; y: number }; box: Box }
  | { kind: "resize"; key: string; handle: Handle; box: Box }
  | { kind: "draw" | "assist"; start: { x: number; y: number } };

export function Stage({ src, iw, ih, boxes, selected, classes, tool, crosshair = true, hidden = false, ghosts = [],
  editable = true, onSelect, onCommitBox, onDraw, onAssist, height = "calc(100vh - 190px)" }: {
  src: string;
  iw: number;
  ih: number;
  boxes: Box[];
  selected: string | null;
  classes: Map<number, ClassInfo>;
  tool: Tool;
  crosshair?: boolean;
  hidden?: boolean;
  ghosts?: Box[];
  editable?: boolean;
  onSelect: (key: string | null) => void;
  onCommitBox?: (box: Box) => void;
  onDraw?: (rect: Rect) => void;
  onAssist?: (what: { region?: Rect; point?: { x: number; y: number } }, released: number) => void;
  height?: string;
}) {
  const stage = useRef<HTMLDivElement>(null);
  const [size, setSize] = useState({ w: 0, h: 0 });
  const [view, setView] = useState<View>({ k: 1, tx: 0, ty: 0 });
  const [cursor, setCursor] = useState<{ x: number; y: number } | null>(null);
  const [drag, setDrag] = useState<Drag | null>(null);
  const [preview, setPreview] = useState<Box | Rect | null>(null);
  const space = useRef(false);

  useLayoutEffect(() => {
    const el = stage.current!;
    const measure = () => setSize({ w: el.clientWidth, h: el.clientHeight });
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  useLayoutEffect(() => {
    if (size.w && size.h) setView(fit(iw, ih, size.w, size.h));
  }, [src, iw, ih, size.w, size.h]);
  useEffect(() => {
    const down = (e: KeyboardEvent) => { if (e.code === "Space" && !isTyping(e)) { space.current = true; } };
    const up = (e: KeyboardEvent) => { if (e.code === "Space") space.current = false; };
    const zoomKeys = (e: Event) => {
      const factor = (e as CustomEvent<number>).detail;
      setView((v) => (factor === 0 ? fit(iw, ih, size.w, size.h) : zoomAt(v, factor, size.w / 2, size.h / 2)));
    };
    window.addEventListener("keydown", down);
    window.addEventListener("keyup", up);
    window.addEventListener("loopline-zoom", zoomKeys);
    return () => {
      window.removeEventListener("keydown", down);
      window.removeEventListener("keyup", up);
      window.removeEventListener("loopline-zoom", zoomKeys);
    };
  }, [iw, ih, size.w, size.h]);

  const local = (e: PointerEvent | WheelEvent) => {
    const r = stage.current!.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  };

  const onPointerDown = (e: PointerEvent) => {
    const s = local(e);
    const p = toImage(view, s.x, s.y);
    const target = e.target as Element;
    (e.currentTarget as Element).setPointerCapture(e.pointerId);
    e.preventDefault();
    if (space.current || e.button === 1 || e.button === 2 || e.altKey) {
      setDrag({ kind: "pan", sx: s.x, sy: s.y, view });
      return;
    }
    const handle = target.getAttribute("data-handle") as Handle | null;
    const key = target.closest("[data-key]")?.getAttribute("data-key") ?? null;
    const box = key ? boxes.find((b) => b.key === key) : undefined;
    if (editable && handle && box) {
      setDrag({ kind: "resize", key: box.key, handle, box });
      return;
    }
    if (box && tool !== "assist") {
      onSelect(box.key);
      if (editable) setDrag({ kind: "move", key: box.key, start: p, box });
      return;
    }
    if (tool === "draw" || tool === "assist") {
      onSelect(null);
      setDrag({ kind: tool, start: p });
      return;
    }
    onSelect(null);
  };

  const onPointerMove = (e: PointerEvent) => {
    const s = local(e);
    setCursor(s);
    if (!drag) return;
    const p = toImage(view, s.x, s.y);
    if (drag.kind === "pan") setView({ ...drag.view, tx: drag.view.tx + s.x - drag.sx, ty: drag.view.ty + s.y - drag.sy });
    else if (drag.kind === "move") setPreview(moved(drag.box, p.x - drag.start.x, p.y - drag.start.y, iw, ih));
    else if (drag.kind === "resize") setPreview(resized(drag.box, drag.handle, p, iw, ih));
    else setPreview(rectBetween(drag.start, p, iw, ih));
  };

  const onPointerUp = (e: PointerEvent) => {
    const released = performance.now();
    const s = local(e);
    const p = toImage(view, s.x, s.y);
    const d = drag;
    setDrag(null);
    setPreview(null);
    if (!d || d.kind === "pan") return;
    if (d.kind === "move" || d.kind === "resize") {
      const next = d.kind === "move" ? moved(d.box, p.x - d.start.x, p.y - d.start.y, iw, ih) : resized(d.box, d.handle, p, iw, ih);
      if (next.x !== d.box.x || next.y !== d.box.y || next.w !== d.box.w || next.h !== d.box.h) onCommitBox?.(next);
      return;
    }
    const r = rectBetween(d.start, p, iw, ih);
    const small = r.w * view.k < 4 || r.h * view.k < 4; // under 4 screen pixels: a click
    if (d.kind === "draw" && !small) onDraw?.(r);
    if (d.kind === "assist") {
      if (small) {
        if (d.start.x >= 0 && d.start.y >= 0 && d.start.x < iw && d.start.y < ih) onAssist?.({ point: d.start }, released);
      } else onAssist?.({ region: r }, released);
    }
  };

  const onWheel = (e: WheelEvent) => {
    e.preventDefault();
    const s = local(e);
    setView((v) => zoomAt(v, Math.exp(-e.deltaY * 0.0015), s.x, s.y));
  };

  const shown = hidden ? [] : boxes.filter((b) => b.status !== "rejected");
  const draw = (b: Box, ghost = false) => {
    const live = preview && "key" in preview && preview.key === b.key ? preview : b;
    const a = toScreen(view, live.x, live.y);
    const w = live.w * view.k, h = live.h * view.k;
    const c = classes.get(b.class_id);
    const color = ghost ? "#64748b" : colorOf(c);
    const isSel = !ghost && b.key === selected;
    const proposal = b.source === "model" && b.status === "proposed";
    const label = `${c?.name ?? `class ${b.class_id}`}${b.score != null && b.source === "model" ? ` ${b.score.toFixed(2)}` : ""}`;
    return (
      <g data-key={ghost ? undefined : b.key} data-ghost={ghost ? b.key : undefined} data-id={b.id ?? ""}
        data-class={b.class_id} data-status={b.status} data-source={b.source} class={`box${isSel ? " selected" : ""}${proposal ? " proposal" : ""}`}>
        <rect x={a.x} y={a.y} width={w} height={h} stroke={color} fill={isSel ? `${color}22` : "transparent"}
          stroke-width={isSel ? 2.5 : 2} stroke-dasharray={proposal || ghost ? "6 4" : undefined} />
        <text x={a.x + 3} y={a.y > 16 ? a.y - 4 : a.y + 14} fill={color} class="box-label">{ghost ? `now: ${label}` : label}</text>
        {isSel && editable && HANDLES.map((hd) => {
          const hp = toScreen(view, handlePoint(live, hd).x, handlePoint(live, hd).y);
          return <rect data-handle={hd} class={`handle h-${hd}`} x={hp.x - 5} y={hp.y - 5} width={10} height={10} />;
        })}
      </g>
    );
  };
  const rubber = preview && !("key" in preview) ? preview : null;
  const rs = rubber ? toScreen(view, rubber.x, rubber.y) : null;
  return (
    <div ref={stage} class={`stage tool-${tool}`} style={{ height }} data-testid="stage" data-zoom={view.k.toFixed(4)}
      onPointerDown={onPointerDown} onPointerMove={onPointerMove} onPointerUp={onPointerUp}
      onPointerLeave={() => setCursor(null)} onWheel={onWheel} onContextMenu={(e) => e.preventDefault()}>
      <img src={src} alt="" draggable={false} data-testid="stage-image" width={iw} height={ih}
        style={{ transform: `translate(${view.tx}px, ${view.ty}px) scale(${view.k})`, width: `${iw}px`, height: `${ih}px` }} />
      <svg class="overlay" width={size.w} height={size.h}>
        {ghosts.map((g) => draw(g, true))}
        {shown.map((b) => draw(b))}
        {rubber && rs && <rect class={`rubber ${drag?.kind ?? ""}`} x={rs.x} y={rs.y} width={rubber.w * view.k} height={rubber.h * view.k} />}
        {crosshair && cursor && (
          <g class="crosshair" data-testid="crosshair">
            <line x1={0} x2={size.w} y1={cursor.y} y2={cursor.y} />
            <line x1={cursor.x} x2={cursor.x} y1={0} y2={size.h} />
          </g>
        )}
      </svg>
    </div>
  );
}

export function isTyping(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement | null;
  return !!t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
}

/** Ask the stage to zoom (factor > 1 in, < 1 out, 0 = fit) from a keyboard shortcut. */
export function zoomStage(factor: number): void {
  window.dispatchEvent(new CustomEvent("loopline-zoom", { detail: factor }));
}
