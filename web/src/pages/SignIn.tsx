import { useState } from "preact/hooks";
import { ErrorBox, Field } from "../components/ui";
import { useAction } from "../lib/hooks";
import { signIn } from "../lib/session";

export function SignIn() {
  const [token, setToken] = useState("");
  const action = useAction(signIn);
  return (
    <div class="signin">
      <form
        class="card"
        onSubmit={(e) => {
          e.preventDefault();
          void action.run(token.trim()).then(() => setToken(""));
        }}
      >
        <h1>loopline</h1>
        <p class="muted">
          Sign in with a loopline token: the one <code>make run</code> printed (also in <code>var/admin.token</code>),
          or one from <code>loopline token create &lt;user&gt;</code>.
        </p>
        <Field name="token" label="Token" error={action.error}>
          <input
            name="token"
            type="password"
            autocomplete="off"
            required
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
            autofocus
          />
        </Field>
        <ErrorBox error={action.error} />
        <button type="submit" class="primary" disabled={action.busy || !token.trim()}>
          {action.busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
