import { useEffect } from "preact/hooks";
import { Loading } from "./components/ui";
import { startLive, stopLive, connected } from "./lib/live";
import { location, match, navigate, pathname } from "./lib/router";
import { signOut, user } from "./lib/session";
import { SignIn } from "./pages/SignIn";
import { Projects } from "./pages/Projects";
import { ProjectPage } from "./pages/ProjectPage";
import { Jobs } from "./pages/Jobs";
import { JobPage } from "./pages/JobPage";
import { Queues } from "./pages/Queues";
import { Datasets } from "./pages/Datasets";
import { DatasetPage } from "./pages/DatasetPage";
import { Models } from "./pages/Models";
import { CheckpointPage } from "./pages/CheckpointPage";
import { Gallery, Upload } from "./pages/Images";
import { Annotator } from "./pages/Annotator";
import { Examples, Review } from "./pages/Review";
import { TryModel } from "./pages/TryModel";

type Render = (params: Record<string, string>) => preact.JSX.Element;

const ROUTES: [string, Render][] = [
  ["/projects", () => <Projects />],
  ["/projects/:pid", (p) => <ProjectPage pid={Number(p.pid)} />],
  ["/projects/:pid/images", (p) => <Gallery pid={Number(p.pid)} />],
  ["/projects/:pid/images/:iid", (p) => <Annotator pid={Number(p.pid)} iid={Number(p.iid)} />],
  ["/projects/:pid/upload", (p) => <Upload pid={Number(p.pid)} />],
  ["/projects/:pid/review", (p) => <Review pid={Number(p.pid)} />],
  ["/projects/:pid/examples", (p) => <Examples pid={Number(p.pid)} />],
  ["/projects/:pid/try", (p) => <TryModel pid={Number(p.pid)} />],
  ["/projects/:pid/checkpoints/:cid", (p) => <CheckpointPage pid={Number(p.pid)} cid={Number(p.cid)} />],
  ["/jobs", () => <Jobs />],
  ["/jobs/:id", (p) => <JobPage id={p.id} />],
  ["/queues", () => <Queues />],
  ["/datasets", () => <Datasets />],
  ["/datasets/:key", (p) => <DatasetPage datasetKey={p.key} />],
  ["/models", () => <Models />],
];

const NAV: [string, string][] = [
  ["/projects", "Projects"],
  ["/jobs", "Jobs"],
  ["/queues", "Queues"],
  ["/datasets", "Datasets"],
  ["/models", "Models"],
];

/** The nav entry a path belongs to (a checkpoint page is under Models, a job page under Jobs...). */
function section(path: string): string {
  if (/^\/projects\/\d+\/checkpoints\//.test(path)) return "/models";
  return NAV.find(([href]) => path === href || path.startsWith(`${href}/`))?.[0] ?? "";
}

function Route() {
  const path = pathname();
  if (path === "/" || path === "/signin") {
    navigate("/projects", true);
    return null;
  }
  for (const [pattern, view] of ROUTES) {
    const params = match(pattern, path);
    if (params) return view(params);
  }
  return (
    <div class="page">
      <h1>Not here</h1>
      <p class="error" role="alert">No page at {path}.</p>
    </div>
  );
}

export function App() {
  location.value; // re-render on navigation
  const me = user.value;
  useEffect(() => {
    if (me) startLive();
    else stopLive();
  }, [me?.id]);

  if (me === undefined) return <div class="boot"><Loading /></div>;
  if (me === null) return <SignIn />;
  const path = pathname();
  return (
    <div class="shell">
      <aside class="nav">
        <a class="brand" href="/projects">loopline</a>
        <nav>
          {NAV.map(([href, text]) => (
            <a href={href} class={section(path) === href ? "active" : ""} aria-current={section(path) === href ? "page" : undefined}>
              {text}
            </a>
          ))}
        </nav>
        <div class={`live ${connected.value ? "on" : "off"}`} title="live updates over Socket.IO">
          <span class="dot" /> {connected.value ? "live" : "offline"}
        </div>
      </aside>
      <div class="main">
        <header class="top">
          <div class="spacer" />
          <span class="who" data-testid="user">
            {me.name}
            {me.is_superuser && <span class="badge">superuser</span>}
          </span>
          <button type="button" class="link" onClick={() => void signOut().then(() => navigate("/projects", true))}>
            Sign out
          </button>
        </header>
        <main>
          <Route />
        </main>
      </div>
    </div>
  );
}
