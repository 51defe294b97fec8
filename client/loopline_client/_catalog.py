"""`Loopline` methods for who and what: health, me, projects and members, classes, label maps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from loopline_client import types as t
from loopline_client._http import _body, _Http
from loopline_client.errors import LooplineError


class _Catalog(_Http):
    """Health and identity, projects and their members, classes and label maps."""

    # --- who and what ------------------------------------------------------------------------
    def health(self) -> dict:
        return self._json("GET", "/api/health")

    def me(self) -> t.Me:
        return self._json("GET", "/api/me")

    # --- projects ------------------------------------------------------------------------------
    def projects(self) -> list[t.Project]:
        return list(self._pages("/api/projects"))

    def project(self, project_id: int) -> t.Project:
        return self._json("GET", f"/api/projects/{int(project_id)}")

    def find_project(self, ref: int | str) -> t.Project:
        """A project by id or by exact name (404 `not_found` when none of yours has it)."""
        if isinstance(ref, int) or str(ref).isdigit():
            return self.project(int(ref))
        found = [p for p in self.projects() if p["name"] == ref]
        if not found:
            raise LooplineError(404, "not_found", f"none of your projects is named {ref!r}")
        return found[0]

    def create_project(self, name: str, description: str | None = None) -> t.Project:
        return self._json("POST", "/api/projects", json=_body(name=name, description=description))

    def update_project(self, project_id: int, **changes) -> t.Project:
        return self._json("PATCH", f"/api/projects/{project_id}", json=changes)

    def delete_project(self, project_id: int) -> None:
        self._json("DELETE", f"/api/projects/{project_id}")

    def members(self, project_id: int) -> list[dict]:
        return list(self._pages(f"/api/projects/{project_id}/members"))

    def set_member(self, project_id: int, user_name: str, role: str) -> dict:
        return self._json("PUT", f"/api/projects/{project_id}/members/{user_name}", json={"role": role})

    def remove_member(self, project_id: int, user_name: str) -> None:
        self._json("DELETE", f"/api/projects/{project_id}/members/{user_name}")

    # --- classes and label maps ----------------------------------------------------------------
    def classes(self, project_id: int, group: str | None = None) -> list[t.LabelClass]:
        return list(self._pages(f"/api/projects/{project_id}/classes", {"group": group}))

    def create_class(self, project_id: int, name: str, group: str | None = None, color: str | None = None,
                     description: str | None = None) -> t.LabelClass:
        return self._json("POST", f"/api/projects/{project_id}/classes",
                          json=_body(name=name, group=group, color=color, description=description))

    def update_class(self, project_id: int, class_id: int, **changes) -> t.LabelClass:
        return self._json("PATCH", f"/api/projects/{project_id}/classes/{class_id}", json=changes)

    def delete_class(self, project_id: int, class_id: int) -> None:
        self._json("DELETE", f"/api/projects/{project_id}/classes/{class_id}")

    def class_ids(self, project_id: int, classes: Iterable[int | str]) -> list[int]:
        """Class ids for ids or names (a name the project lacks: 400 naming it)."""
        wanted = list(classes)
        by_name = {c["name"]: c["id"] for c in self.classes(project_id)} if any(
            isinstance(c, str) and not c.isdigit() for c in wanted) else {}
        out, missing = [], []
        for c in wanted:
            if isinstance(c, int) or c.isdigit():
                out.append(int(c))
            elif c in by_name:
                out.append(by_name[c])
            else:
                missing.append(c)
        if missing:
            raise LooplineError(400, "unknown_class", f"project {project_id} has no class named "
                                                      f"{', '.join(map(repr, missing))}", {"classes": missing})
        return out

    def label_maps(self, project_id: int) -> list[t.LabelMap]:
        return list(self._pages(f"/api/projects/{project_id}/label-maps"))

    def label_map(self, project_id: int, map_id: int) -> t.LabelMap:
        return self._json("GET", f"/api/projects/{project_id}/label-maps/{map_id}")

    def create_label_map(self, project_id: int, name: str, classes: Sequence[int | str],
                         description: str | None = None) -> t.LabelMap:
        """A label map of these classes (ids or names) in this order: class i of the map is classes[i - 1]."""
        return self._json("POST", f"/api/projects/{project_id}/label-maps", json=_body(
            name=name, classes=self.class_ids(project_id, classes), description=description))

    def update_label_map(self, project_id: int, map_id: int, **changes) -> t.LabelMap:
        if "classes" in changes:
            changes["classes"] = self.class_ids(project_id, changes["classes"])
        return self._json("PATCH", f"/api/projects/{project_id}/label-maps/{map_id}", json=changes)

    def delete_label_map(self, project_id: int, map_id: int) -> None:
        self._json("DELETE", f"/api/projects/{project_id}/label-maps/{map_id}")

    def distribution(self, project_id: int, map_id: int, subset: str = "all") -> dict:
        return self._json("GET", f"/api/projects/{project_id}/label-maps/{map_id}/distribution",
                          params={"subset": subset})

    def class_stats(self, project_id: int, status: str | None = None) -> dict:
        return self._json("GET", f"/api/projects/{project_id}/stats/classes", params=_body(status=status))
