import { defineConfig } from "vite";

// The dev server proxies the API and Socket.IO to a running `make run` (127.0.0.1:8000 unless
// LOOPLINE_API says otherwise), so the browser sees one origin, as it does in production.
const api = process.env.LOOPLINE_API ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  worker: { format: "es" }, // onnxruntime-web in a module worker
  build: {
    outDir: "../api/static",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
  },
  server: {
    port: 5173,
    strictPort: true,
    proxy: {
      "/api": { target: api, changeOrigin: false },
      "/socket.io": { target: api, ws: true, changeOrigin: false },
    },
  },
});
