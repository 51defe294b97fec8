// Who is signed in. The session itself is an HttpOnly cookie the page cannot read; what the page keeps
// (the user, the CSRF token, the memberships) lives in memory and is asked again on every load.
import { computed, signal } from "@preact/signals";
import { call, client, setCsrfToken, setUnauthorizedHandler } from "../api/client";
import { allows, type Membership, type Role, type User } from "../api/types";

/** undefined: not known yet (asking); null: signed out. */
export const user = signal<User | null | undefined>(undefined);
export const memberships = signal<Membership[]>([]);

export const projectsById = computed(() => new Map(memberships.value.map((m) => [m.project_id, m])));

export function roleIn(projectId: number | null | undefined): Role | null {
  if (projectId == null) return null;
  if (user.value?.is_superuser) return "admin";
  return projectsById.value.get(projectId)?.role ?? null;
}

export function may(projectId: number | null | undefined, needed: Role): boolean {
  return allows(roleIn(projectId), needed);
}

function signedOut(): void {
  setCsrfToken(null);
  user.value = null;
  memberships.value = [];
}

setUnauthorizedHandler(() => {
  if (user.value) signedOut();
});

export async function refreshMemberships(): Promise<void> {
  const me = await call(client.GET("/api/me"));
  memberships.value = (me.memberships ?? []) as unknown as Membership[];
}

/** On load: the cookie's session, if any. */
export async function restore(): Promise<void> {
  const { data, response } = await client.GET("/api/session").catch(() => ({ data: undefined, response: null }));
  if (!response?.ok || !data) {
    signedOut();
    return;
  }
  setCsrfToken(data.csrf_token);
  await refreshMemberships().catch(() => undefined);
  user.value = data.user as User;
}

export async function signIn(token: string): Promise<void> {
  const data = await call(client.POST("/api/session", { body: { token } }));
  setCsrfToken(data.csrf_token);
  await refreshMemberships();
  user.value = data.user as User;
}

export async function signOut(): Promise<void> {
  try {
    await call(client.DELETE("/api/session"));
  } finally {
    signedOut();
  }
}
