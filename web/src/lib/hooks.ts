import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api/client";

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | null;
  loading: boolean;
  reload: () => Promise<void>;
  set: (value: T) => void;
}

function asApiError(exc: unknown): ApiError {
  return exc instanceof ApiError ? exc : new ApiError(0, "error", String(exc));
}

/** Load with `fn` whenever `deps` change; a newer load wins over an older one still in flight. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const reload = useCallback(async () => {
    const mine = ++generation.current;
    setLoading(true);
    try {
      const value = await fnRef.current();
      if (mine === generation.current) {
        setData(value);
        setError(null);
      }
    } catch (exc) {
      if (mine === generation.current) setError(asApiError(exc));
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }, []);
  useEffect(() => {
    setData(undefined);
    void reload();
  }, deps);
  return { data, error, loading, reload, set: setData };
}

/** Poll `fn` every `ms` while mounted (and once at once). */
export function usePoll<T>(fn: () => Promise<T>, ms: number, deps: unknown[] = []): Loaded<T> {
  const loaded = useLoad(fn, deps);
  useEffect(() => {
    const id = window.setInterval(() => void loaded.reload(), ms);
    return () => window.clearInterval(id);
  }, [ms, ...deps]);
  return loaded;
}

/** An action's state: run it, and keep its error (with `fields`) to show beside the form. */
export function useAction<A extends unknown[], R>(fn: (...args: A) => Promise<R>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const run = async (...args: A): Promise<R | undefined> => {
    setBusy(true);
    setError(null);
    try {
      return await fn(...args);
    } catch (exc) {
      setError(asApiError(exc));
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { run, busy, error, clear: () => setError(null) };
}

/** Re-render every `ms` (ages and durations tick). */
export function useTick(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const id = window.setInterval(() => setNow(Date.now()), ms);
    return () => window.clearInterval(id);
  }, [ms]);
  return now;
}

/** Call `fn` every `ms` while `active`: the fallback that ends a "building" row even if its job's last
 * event was missed (events are the fast path; this is the slow, sure one). */
export function useRefreshWhile(active: boolean, fn: () => void, ms = 5000): void {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    if (!active) return;
    const id = window.setInterval(() => fnRef.current(), ms);
    return () => window.clearInterval(id);
  }, [active, ms]);
}
